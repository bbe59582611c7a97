"""SFT throughput: ``smollab sft`` vs TRL's ``SFTTrainer`` configured by hand, same model, data, threads.

smollab's ``sft`` is a wrapper around ``SFTTrainer``; this checks it costs nothing. Both train the same
conversations (``recipes/demo-sft.yaml``'s bundled sources, read by smollab's loader so that the two see
identical examples) on the same model, each run in a fresh process, runs alternating. The peer is TRL's
documented configuration for multi-turn chat SFT, written here by hand: ``messages`` rows and
``assistant_only_loss=True`` with a copy of SmolLM2's template carrying ``{% generation %}`` markers
(TRL's way to find assistant tokens), ``packing=True`` with the ``bfd`` strategy (padding-free, per-example
positions), ``bf16=True`` where the CPU multiplies bf16 natively, ``optim=adamw_torch_fused``, the same
micro-batch, accumulation, LR and schedule; ``--compile`` adds ``torch_compile=True`` to both.

The figure is tokens/s of optimizer steps (trained tokens over wall time between logged steps; the
median over steps after ``--skip``, then the median over ``--runs``); the whole command's wall time
(model load and data preparation included) is reported beside it.

    .venv/bin/python bench/sft_throughput.py --runs 3 --model smollm2-135m-instruct
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RECIPE = REPO / "recipes" / "demo-sft.yaml"

# SmolLM2's template (smollab/assets/tokenizer/smollm2/chat_template.jinja) with TRL's generation markers
# around what SFT trains on: assistant and tool_call contents and their <|im_end|>.
PEER_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] in ['assistant', 'tool_call'] %}{% generation %}{{ message['content'] + '<|im_end|>' }}"
    "{% endgeneration %}{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}{{ '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def load_recipe(model: str, out: Path, extra: list[str]):
    from smollab.post.config import SFTRecipe, load_post_recipe

    overrides = [f"model.init_from={model}", f"out={out}", "train.eval_every_steps=null", "data.heldout_fraction=0"]
    return load_post_recipe(RECIPE, [*overrides, *extra], SFTRecipe)


def peer(model: str, out: Path, extra: list[str], compile_: bool) -> None:
    """The hand-configured SFTTrainer; writes ``log.jsonl`` lines like smollab's (step, tokens, tok_s)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from smollab.post.conversations import load_conversations
    from smollab.pretrained import resolve
    from smollab.train.parallel import resolve_precision

    recipe = load_recipe(model, out, extra)
    path = resolve(model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    data = load_conversations(recipe.data, tokenizer)
    tokenizer.chat_template = PEER_TEMPLATE
    train = recipe.train
    bf16 = resolve_precision(train.precision, torch.device("cpu")) == torch.bfloat16
    config = SFTConfig(
        output_dir=str(out / "checkpoints"), num_train_epochs=train.epochs, learning_rate=train.lr,
        lr_scheduler_type="cosine", warmup_steps=train.warmup_ratio, per_device_train_batch_size=train.micro_batch,
        gradient_accumulation_steps=train.global_batch // train.micro_batch, seed=train.seed, bf16=bf16,
        use_cpu=True, optim="adamw_torch_fused", torch_compile=compile_, max_length=recipe.data.max_length,
        packing=True, packing_strategy="bfd", assistant_only_loss=True, eos_token="<|im_end|>", logging_steps=1,
        save_strategy="no", report_to="none", include_num_input_tokens_seen="all", disable_tqdm=True)
    model_ = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")
    dataset = Dataset.from_list([c.record() for c in data.train])

    class Log(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.last = (time.perf_counter(), state.num_input_tokens_seen)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if "loss" not in logs:
                return
            now, tokens = time.perf_counter(), state.num_input_tokens_seen
            line = {"step": state.global_step, "loss": logs["loss"], "tokens": tokens,
                    "tok_s": (tokens - self.last[1]) / max(now - self.last[0], 1e-9)}
            self.last = (now, tokens)
            with (out / "log.jsonl").open("a") as f:
                f.write(json.dumps(line) + "\n")

    trainer = SFTTrainer(model=model_, args=config, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[Log()])
    trainer.train()


def run(variant: str, model: str, work: Path, extra: list[str], compile_: bool) -> dict:
    out = work / f"{variant}-{time.monotonic_ns()}"
    out.mkdir(parents=True)
    if variant == "smollab":
        command = [sys.executable, "-m", "smollab", "sft", str(RECIPE), f"model.init_from={model}", f"out={out}",
                   "train.eval_every_steps=null", "data.heldout_fraction=0", f"train.compile={str(compile_).lower()}",
                   "--overwrite", *extra]
    else:
        command = [sys.executable, __file__, "--peer-run", str(out), "--model", model,
                   *(["--compile"] if compile_ else []), *[f"--extra={e}" for e in extra]]
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    return {"lines": [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()], "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip", type=int, default=3, help="optimizer steps left out of the median (warm-up)")
    parser.add_argument("--compile", action="store_true", help="torch_compile=True for both")
    parser.add_argument("--extra", action="append", default=[], help="a recipe override for both, e.g. train.lr=1e-5")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "sft_throughput.json")
    parser.add_argument("--peer-run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_run:
        peer(args.model, args.peer_run, args.extra, args.compile)
        return

    threads = os.environ.get("OMP_NUM_THREADS", str(os.cpu_count()))
    work = Path(tempfile.mkdtemp(prefix="sft-bench-"))
    runs: dict[str, list[dict]] = {"smollab": [], "trl_sfttrainer": []}
    for index in range(args.runs):
        for variant in runs:
            result = run(variant, args.model, work, args.extra, args.compile)
            rates = [line["tok_s"] for line in result["lines"][args.skip:]]
            runs[variant].append({"tok_s": statistics.median(rates), "seconds": result["seconds"],
                                  "steps": result["lines"][-1]["step"], "tokens": result["lines"][-1]["tokens"],
                                  "final_loss": result["lines"][-1]["loss"]})
            print(f"run {index + 1}/{args.runs} {variant}: {runs[variant][-1]['tok_s']:,.0f} tok/s, "
                  f"{result['seconds']:.1f} s end to end", flush=True)
    summary = {variant: {"tok_s_median": statistics.median(r["tok_s"] for r in rs),
                         "seconds_median": statistics.median(r["seconds"] for r in rs), "runs": rs}
               for variant, rs in runs.items()}
    ratio = summary["smollab"]["tok_s_median"] / summary["trl_sfttrainer"]["tok_s_median"]
    result = {"model": args.model, "recipe": str(RECIPE.relative_to(REPO)), "threads": threads,
              "compile": args.compile, "extra": args.extra, "skip": args.skip, **summary, "ratio": ratio}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"smollab / TRL SFTTrainer: {ratio:.3f}× tokens/s (median of {args.runs})")


if __name__ == "__main__":
    main()
