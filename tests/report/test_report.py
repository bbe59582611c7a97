"""`smollab report`: one offline page of whatever a run directory holds, with real figures and the run's own numbers.

One real micro pretraining run (a rule fires at the stage boundary, held-out loss and arc_easy in the loop,
a profiled step) is trained once for the module; copies of it stand in for a run still writing and one
missing its optional parts. Post-training runs get their recipe and data report from the real code and
synthetic logs in the trainers' format; eval result files are real `evaluate` output of a tiny Llama.
"""

import base64
import io
import json
import re
import shutil
import statistics
import subprocess
from pathlib import Path

import numpy as np
import pytest
import typer
import yaml
from PIL import Image
from transformers import AutoTokenizer
from typer.testing import CliRunner

from smollab.errors import SmollabError
from smollab.eval.evaluate import evaluate, run_in_loop
from smollab.eval.harness import SmolLM
from smollab.experiments.sweep import plan_sweep, write_plan
from smollab.experiments.sweep_report import compare, fit_regmix
from smollab.paths import ASSETS
from smollab.post.config import DPORecipe, SFTRecipe
from smollab.post.conversations import load_conversations
from smollab.post.preferences import load_preferences
from smollab.post.template import with_chat_template
from smollab.post.trainer_common import write_run_files
from smollab.recipe import EvalConfig
from smollab.report.build import write_report
from smollab.report.cli import report
from tests.conftest import recipe_tree, smollab
from tests.eval.conftest import tiny_llama
from tests.experiments.test_sweep import HELDOUT, write_sweep

RULES = {"policy": "rules", "rules": [{"name": "more-code", "when": "heldout.code > 0",
                                       "move": {"from": "web", "to": "code", "amount": 0.2}}]}
IMAGE = re.compile(r"<img alt='([^']*)' src='data:image/png;base64,([^']+)'>")


@pytest.fixture(scope="module")
def run(tmp_path_factory, shards) -> Path:
    """A finished micro run: 8 steps in 2 stages, a rule firing at step 4, held-out loss and arc_easy per checkpoint."""
    root = tmp_path_factory.mktemp("pretrain")
    tree = recipe_tree(root / "run", *shards, eval={"heldout": {"tokens": 260, "batch_size": 2}, "tasks": ["arc_easy"],
                                                    "limit": 4, "batch_size": 4},
                       train={"seed": 3, "precision": "fp32", "device": "cpu", "profile": {"start_step": 1, "steps": 1}})
    tree["stages"][1]["rebalance"] = RULES
    (root / "recipe.yaml").write_text(yaml.safe_dump(tree))
    smollab("train", str(root / "recipe.yaml"))
    return root / "run"


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def images(page: str, section: str) -> list[np.ndarray]:
    """The decoded figures of one section of the page, as grey-level arrays."""
    body = re.search(rf"<section id='{section}'>(.*?)</section>", page, re.S)
    assert body, f"no section {section}"
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("L")) for _, data in IMAGE.findall(body[1])]


def assert_drawn(image: np.ndarray) -> None:
    """A real figure, clearly not blank: ink on a good part of it, and contrast."""
    assert image.shape[0] > 150 and image.std() > 20 and (image < 200).mean() > 0.02


def assert_offline(page: str) -> None:
    assert "http://" not in page and "https://" not in page and "<script" not in page and "src='/" not in page


def copy_run(run: Path, to: Path, *skip: str) -> Path:
    shutil.copytree(run, to, ignore=shutil.ignore_patterns("hf", "tensorboard", *skip))
    return to


def test_a_finished_run_has_every_section_with_real_figures_and_its_own_numbers(run, tmp_path):
    written = write_report(run, tmp_path / "out")
    assert written["sections"] == ["overview", "loss", "lr", "mixture", "evaluation"]
    assert written["html"] == tmp_path / "out" / "report.html" and not (run / "report.html").exists()
    page, md = written["html"].read_text(), written["md"].read_text()
    assert_offline(page)
    for section, figures in {"loss": 1, "lr": 1, "mixture": 1, "evaluation": 2}.items():
        drawn = images(page, section)
        assert len(drawn) == figures, section
        for image in drawn:
            assert_drawn(image)
            assert image.shape[1] == 900  # the page's figure width: legible at laptop width without scaling

    log, evals, [decision] = jsonl(run / "log.jsonl"), jsonl(run / "evals.jsonl"), jsonl(run / "decisions.jsonl")
    last = log[-1]
    order = ("code", "web", "math")  # the schedule's order: the resolved recipe's mixtures, keys sorted, stage by stage
    per_source = " | ".join(f"{last['loss_per_source'][s]:.4f}" for s in order)
    assert f"| two | 7 | 8,192 | {last['loss']:.4f} | {per_source} |" in md  # the final loss, overall and per source
    assert f"| final training loss | {last['loss']:.4f} |" in md and "| precision (logged per step) | float32 |" in md
    assert f"| median throughput (tokens/s, all ranks) | {statistics.median(r['tok_s'] for r in log):.1f} over 8 steps |" in md
    assert decision["step"] == 4
    assert ("| 4 | 4,096 | two | rule more-code fired: code 20.0% → 40.0%, web 40.0% → 20.0% | heldout.code > 0; read "
            f"heldout.code {decision['metrics']['heldout.code']:.4f} (evaluation of step 4) |") in md
    assert "| 1 | two | 4–8 | 4,096 | 40.0% | 20.0% | 40.0% | rules: more-code |" in md  # the realised segment
    heldout = " | ".join(f"{evals[-1]['heldout'][s]:.4f}" for s in order)
    assert f"| 8 | 8,192 | two | {heldout} |" in md
    arc = evals[-1]["metrics"]["arc_easy"]["acc_norm"], evals[-1]["stderr"]["arc_easy"]["acc_norm"]
    assert f"| 8 | 8,192 | {arc[0]:.4f} ± {arc[1]:.4f} |" in md
    assert "| rank0 | 1–1 | 1,024 |" in md  # the profiled window
    assert "| warmup | 0–1 |" in md and "| decay | 6–7 |" in md


def test_a_run_still_writing_renders_and_counts_its_half_written_line(run, tmp_path):
    live = copy_run(run, tmp_path / "live", "checkpoints", "profile", "decisions.jsonl")
    lines = (run / "log.jsonl").read_text().splitlines()
    (live / "log.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2])
    (live / "evals.jsonl").write_text((run / "evals.jsonl").read_text().splitlines()[0] + "\n")
    app = typer.Typer()
    app.command()(report)
    result = CliRunner().invoke(app, [str(live)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [str(live / "report.html"), str(live / "report.md")]
    md = (live / "report.md").read_text()
    assert "| live | pretraining run | in progress: 3 of 8 steps logged | 4 | 1 |" in md
    assert "> log.jsonl: 1 unreadable line(s) skipped, line 4 (the last one" in md
    assert "realised mixture schedule from the recipe (no checkpoint yet)" in md and "| newest checkpoint | none yet |" in md
    assert f"| one | 2 | 3,072 | {json.loads(lines[2])['loss']:.4f} |" in md
    page = (live / "report.html").read_text()
    for section in ("loss", "lr", "mixture", "evaluation"):
        drawn = images(page, section)
        assert drawn, section
        for image in drawn:
            assert_drawn(image)


def test_missing_optional_parts_leave_their_sections_out_without_error(run, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run / "recipe.resolved.yaml", bare)
    shutil.copy(run / "log.jsonl", bare)
    recipe = yaml.safe_load((bare / "recipe.resolved.yaml").read_text())
    recipe["data"]["shards_dir"] = str(tmp_path / "deleted-shards")  # shards gone: no mixture schedule to rebuild
    (bare / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe))
    written = write_report(bare)
    assert written["sections"] == ["overview", "loss", "lr"]
    md = written["md"].read_text()
    assert "> bare: mixture schedule unavailable:" in md and "has no token shards" in md
    assert "Held-out" not in md and "decisions.jsonl" not in md and "gemm" not in md
    assert len(images(written["html"].read_text(), "loss")) == 1


def tokenizer():
    return with_chat_template(AutoTokenizer.from_pretrained(ASSETS / "tokenizer" / "smollm2"))


def post_run(out: Path, kind: str, chat_tokenizer) -> tuple[list[dict], list[dict]]:
    """A post-training run directory: the real recipe.resolved.yaml and data_report.json, logs in the trainers' format."""
    train = {"epochs": 1, "global_batch": 4, "micro_batch": 2, "precision": "fp32", "device": "cpu", "eval_every_steps": 4}
    if kind == "sft":
        data = {"sources": {"oasst": {"bundled": "sft_oasst_en100", "limit": 24}}, "max_length": 160, "heldout_fraction": 0.15}
        recipe = SFTRecipe.model_validate({"name": "sft", "out": str(out), "model": {"init_from": "base"}, "data": data,
                                           "train": train})
        write_run_files(recipe, load_conversations(recipe.data, chat_tokenizer))
    else:
        data = {"sources": {"oasst": {"bundled": "dpo_oasst_en100", "limit": 24}}, "max_length": 384,
                "max_prompt_length": 192, "heldout_fraction": 0.25}
        recipe = DPORecipe.model_validate({"name": "dpo", "out": str(out), "model": {"init_from": str(out.parent / "sft")},
                                           "data": data, "train": train | {"beta": 0.1}})
        write_run_files(recipe, load_preferences(recipe.data, chat_tokenizer))
    log, evals = [], []
    for step in range(1, 9):
        line = {"step": step, "loss": 2.0 - 0.1 * step, "lr": 1e-4, "grad_norm": 1.0, "epoch": step / 8,
                "tokens": 500 * step, "tok_s": 100.0 + step, "entropy": 2.0, "mean_token_accuracy": 0.4 + 0.01 * step}
        if kind == "dpo":
            line |= {"rewards/chosen": 0.01 * step, "rewards/rejected": -0.01 * step, "rewards/accuracies": step / 10,
                     "rewards/margins": 0.02 * step, "logps/chosen": -100.0, "logps/rejected": -110.0}
        log.append(line)
    for step in (0, 4, 8):
        held = {"loss": 2.1 - 0.05 * step, "entropy": 2.0, "mean_token_accuracy": 0.4 + 0.005 * step}
        if kind == "dpo":
            held |= {"rewards/accuracies": 0.05 * step, "rewards/margins": 0.01 * step}
        evals.append({"step": step, "epoch": step / 8, "tokens": 500 * step, "heldout": held, "seconds": 1.5})
    (out / "log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in log))
    (out / "evals.jsonl").write_text("".join(json.dumps(line) + "\n" for line in evals))
    return log, evals


def curation_report() -> dict:
    """curation_report.json as smollab.curate.report.build_report writes it (funnel, dedup, score bands, classifier)."""
    def row(step, docs, tokens, dropped, kept_docs, kept_tokens):
        heuristic = {"exempt": 140} if step in ("gopher_quality", "c4") else {}
        return {"step": step, "docs_in": docs, "docs_out": kept_docs, "tokens_in": tokens, "tokens_out": kept_tokens,
                **heuristic, "dropped": dropped}
    matrix = [[0] * 6 for _ in range(6)]
    matrix[1][1], matrix[2][1], matrix[3][3] = 3, 1, 4
    held = {"n": 8, "mse": 0.4, "macro_f1": 0.6, "binary_f1": 1.0, "positives": 4, "confusion_matrix": matrix}
    return {"out": "curate", "funnel": [
        row("read", 701, 1285272, {}, 701, 1285272),
        row("gopher_quality", 701, 1285272, {"gopher_below_alpha_threshold": 178, "gopher_short_doc": 21}, 502, 598356),
        row("c4", 502, 598356, {"too_few_sentences": 13}, 489, 568251),
        row("dedup", 489, 568251, {"removed": 14}, 475, 541000),
        row("score", 475, 541000, {"removed": 100}, 375, 400000)],
        "seconds_this_run": {}, "dedup": {"clusters": 3, "duplicates_removed": 14},
        "classifier": {"embedder": "all-MiniLM-L6-v2", "prefix": "", "max_length": 32, "max_score": 5, "dim": 384,
                       "metrics": {"train": held | {"n": 32}, "held_out": held}, "threshold": 3},
        "score": {"threshold": 3, "keep": {}, "seed": 0,
                  "bands": {"1": {"scored": 200, "keep_fraction": 0.5, "kept": 100, "dropped": 100},
                            "3": {"scored": 275, "keep_fraction": 1.0, "kept": 275, "dropped": 0}}}}


def test_the_whole_loop_directory_reports_every_part_it_holds(run, tmp_path):
    out = tmp_path / "loop"
    pretrain = copy_run(run, out / "pretrain")
    chat_tokenizer = tokenizer()
    model = tiny_llama(chat_tokenizer)
    # the newest in-loop line as it reads when eval.tasks has passkey: the real line's metrics for arc_easy and passkey
    cells = run_in_loop(model, chat_tokenizer, EvalConfig(tasks=["passkey"], limit=15, batch_size=4), tokens=0, stage="two",
                        step=8, out_path=tmp_path / "passkey.jsonl")
    evals = jsonl(pretrain / "evals.jsonl")
    for key in ("metrics", "stderr", "items"):
        evals[-1][key] |= cells[key]
    (pretrain / "evals.jsonl").write_text("".join(json.dumps(line) + "\n" for line in evals))
    (out / "curate").mkdir(parents=True)
    (out / "curate" / "curation_report.json").write_text(json.dumps(curation_report(), indent=2))
    sft_log, _ = post_run(out / "sft", "sft", chat_tokenizer)
    _, dpo_evals = post_run(out / "dpo", "dpo", chat_tokenizer)
    (out / "eval").mkdir()
    scored = {}
    for name, chat in (("base", False), ("chat", True)):
        lm = SmolLM(model, chat_tokenizer, batch_size=4, max_length=1024, chat_template=chat, name=name)
        scored[name], _ = evaluate(lm, ["arc_easy", "passkey"], limit=15)
        (out / "eval" / f"{name}.json").write_text(json.dumps(scored[name], indent=2, default=str) + "\n")
    steps = [{"name": "curate", "status": "done", "seconds": 41.25, "summary": {"mode": "quick"}, "error": None},
             {"name": "pretrain", "status": "done", "seconds": 12.5, "summary": {"mode": "quick"}, "error": None},
             {"name": "sft", "status": "failed", "seconds": 3.0, "summary": {}, "error": "sft: data.sources: no rows"},
             {"name": "dpo", "status": "pending", "seconds": 0.0, "summary": {}, "error": None}]
    (out / "demo.json").write_text(json.dumps(steps))  # as smollab.demo.steps writes its state

    written = write_report(out)
    assert written["sections"] == ["overview", "steps", "loss", "lr", "mixture", "evaluation", "curation", "sft", "dpo",
                                   "scores"]
    page, md = written["html"].read_text(), written["md"].read_text()
    assert_offline(page)
    for section, figures in {"evaluation": 3, "curation": 3, "sft": 1, "dpo": 2, "scores": 3}.items():
        drawn = images(page, section)
        assert len(drawn) == figures, section
        for image in drawn:
            assert_drawn(image)
    assert "| 2 | pretrain | done | 12.5 |  |" in md and "| 3 | sft | failed | 3.0 | sft: data.sources: no rows |" in md
    assert "| 4 | dpo | pending | – |  |" in md and "demo.json: 2 of 4 steps done, 56.8 s in all" in md
    assert ("| gopher_quality | 701 | 502 | 71.6% | 1,285,272 | 598,356 | 140 | gopher_below_alpha_threshold 178, "
            "gopher_short_doc 21 |") in md and "| dedup | 489 | 475 | 97.1% | 568,251 | 541,000 | – | removed 14 |" in md
    assert "| held_out | 8 | 0.4000 | 0.6000 | 1.0000 | 4 |" in md
    assert f"| final training loss | {sft_log[-1]['loss']:.4f} |" in md
    assert f"| 8 | 1.000 | 4,000 | {dpo_evals[-1]['heldout']['loss']:.4f} | 0.4400 | 0.4000 | 0.0800 |" in md
    report_counts = json.loads((out / "dpo" / "data_report.json").read_text())["sources"]["oasst"]
    assert f"| oasst | {report_counts['read']} | {report_counts['train']} | {report_counts['heldout']} |" in md
    for metric in ("acc", "acc_norm"):
        values = [scored[n]["tasks"]["arc_easy"]["metrics"][metric] for n in ("base", "chat")]
        assert f"| arc_easy | {metric} | " + " | ".join(f"{v['value']:.4f} ± {v['stderr']:.4f}" for v in values) + " |" in md
    assert "acc@256@0" not in md  # passkey cells are in the heat maps, not the table
    assert "| eval/base.json | base | arc_easy (15), passkey (15) |" in md
    assert "| pretrain | pretraining run | finished: 8 of 8 steps |" in md and "| eval | evaluation results | 2 file(s)" in md


def fake_proxy(variant: dict, out: Path) -> None:
    """What training leaves in a finished one-step proxy: log, evals (held-out loss tied to its mixture), checkpoint, export."""
    run, mixture = out / variant["name"], variant["values"]["stages.0.mixture"]
    heldout = {"web": 6.0 + 2.0 * mixture.get("code", 0.0), "code": 6.0 + 1.0 * mixture.get("web", 0.0)}
    (run / "log.jsonl").write_text(json.dumps({"step": 0, "tokens": 1024, "loss": 7.0 + mixture["web"]}) + "\n")
    (run / "evals.jsonl").write_text(json.dumps({"step": 1, "tokens": 1024, "stage": "only", "metrics": {},
                                                 "heldout": heldout}) + "\n")
    (run / "checkpoints" / "step-1").mkdir(parents=True)
    (run / "checkpoints" / "step-1" / "meta.json").write_text("{}")
    (run / "hf" / "step-1").mkdir(parents=True)


def test_a_regmix_sweep_reports_the_comparison_and_the_fit_of_sweep_report(tmp_path, shards):
    base = recipe_tree(tmp_path / "unused", *shards, eval=HELDOUT,
                       stages=[{"name": "only", "until_tokens": 1024, "mixture": {"web": 0.6, "code": 0.4}}])
    plan = plan_sweep(write_sweep(tmp_path, shards, base=base, regmix={"stage": 0, "method": "linear"}), regmix_k=8)
    write_plan(plan)
    sweep_dir = tmp_path / "sweep"
    for variant in json.loads((sweep_dir / "sweep.json").read_text())["variants"]:
        fake_proxy(variant, sweep_dir)
    written = write_report(sweep_dir, tmp_path / "out")
    assert written["sections"] == ["overview", "sweep", "regmix"]
    comparison = compare(sweep_dir)
    fitted, _ = fit_regmix(sweep_dir, comparison)
    page, md = written["html"].read_text(), written["md"].read_text()
    assert_offline(page)
    for section, figures in {"sweep": 2, "regmix": 1}.items():
        drawn = images(page, section)
        assert len(drawn) == figures, section
        for image in drawn:
            assert_drawn(image)
    best = comparison["rows"][0]
    assert best["best"]
    assert f"| 1 best | {best['config']} | base | finished | 1,024 / 1,024 | {best['target']['mean']:.4f} |" in md
    fit = fitted["fit"]
    predicted = fitted["prediction"]["predicted"]
    assert f"| linear | 8 | {fit['folds']} | {fit['cv_r2']:.3f} | {fit['cv_spearman']:.3f} | {predicted:.4f} |" in md
    assert md.count("| sweep | ablation sweep | 8 of 8 configurations finished (8 variants) |") == 1
    assert "pretraining run" not in md  # the variants are the sweep's, not parts of their own


def test_errors_name_the_path_and_the_fix(tmp_path):
    with pytest.raises(SmollabError, match=r"missing is not a directory; pass the --out directory of smollab train"):
        write_report(tmp_path / "missing")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(SmollabError, match=r"empty has none of the known parts \(recipe.resolved.yaml, .*\), nor do its "
                                           r"subdirectories; pass the --out directory"):
        write_report(tmp_path / "empty")


def test_the_page_renders_in_headless_chromium(run, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed: apt install chromium")
    written = write_report(run, tmp_path)
    shot = tmp_path / "report.png"
    subprocess.run([chromium, "--headless", "--disable-gpu", "--no-sandbox", f"--screenshot={shot}", "--window-size=1280,4000",
                    written["html"].resolve().as_uri()], check=True, capture_output=True, timeout=120)
    image = np.asarray(Image.open(shot).convert("L"))
    assert image.shape == (4000, 1280)
    content = image[:, 160:1120]  # the 960-pixel column the page lays out
    assert content.std() > 20 and (content < 128).mean() > 0.01  # text and figures, not a blank or error page
