import json
import random

import numpy as np
import torch

from smollab.eval.evaluate import run_in_loop
from smollab.recipe import EvalConfig

from tests.eval.conftest import tiny_llama


def train(tokenizer, evals_path=None, steps=3):
    """A few AdamW steps with dropout and data drawn from the global RNGs, optionally evaluating between."""
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    model = tiny_llama(tokenizer, dropout=0.2).train()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for step in range(steps):
        ids = torch.randint(0, 1000, (2, 16)) + random.randint(0, 10) + int(np.random.randint(0, 10))
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
        losses.append(loss.item())
        if evals_path is not None:
            run_in_loop(model, tokenizer, EvalConfig(tasks=["arc_easy", "winogrande"], limit=2, batch_size=2),
                        tokens=(step + 1) * 32, stage="stable", step=step + 1, out_path=evals_path)
            assert model.training
    return losses


def test_in_loop_eval_leaves_training_losses_unchanged(tokenizer, tmp_path):
    evals = tmp_path / "evals.jsonl"
    assert train(tokenizer) == train(tokenizer, evals_path=evals)
    lines = [json.loads(line) for line in evals.read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3]
    assert lines[-1]["tokens"] == 96 and lines[-1]["stage"] == "stable"
    assert set(lines[0]["metrics"]) == {"arc_easy", "winogrande"} and lines[0]["items"]["arc_easy"] == 2


def test_in_loop_eval_restores_rngs_even_when_evaluation_draws_from_them(tokenizer, tmp_path, monkeypatch):
    import smollab.eval.evaluate as evaluate_module

    original = evaluate_module.evaluate

    def drawing(*args, **kwargs):
        torch.rand(3), random.random(), np.random.rand()
        return original(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "evaluate", drawing)
    model = tiny_llama(tokenizer).train()
    torch.manual_seed(5), random.seed(5), np.random.seed(5)
    run_in_loop(model, tokenizer, EvalConfig(tasks=["arc_easy"], limit=1, batch_size=1), tokens=0, stage="s",
                step=0, out_path=tmp_path / "evals.jsonl")
    after = (torch.rand(1).item(), random.random(), float(np.random.rand()))
    torch.manual_seed(5), random.seed(5), np.random.seed(5)
    assert after == (torch.rand(1).item(), random.random(), float(np.random.rand()))
    assert model.training
