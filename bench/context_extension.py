"""Context extension on the demo: 256 → 1024 tokens with a new RoPE θ, and what it buys at the new length.

The demo model (trained at 256 tokens, θ 10k) is branched at its stable-phase checkpoint twice with
``smollab anneal``, for the same tokens and the same mixture — 40% documents of ≥ 1024 tokens
(``min_doc_tokens``, cut from the bundled Wikipedia and Python-docs samples) + 60% of the demo's —
once at 256 tokens (the control: more training, no extension) and once at 1024 tokens with θ 100k
(the extension, SmolLM2's recipe at toy scale). Reported for the parent ("before"), the control and
the extension ("after"): the held-out loss per position range of 1025-token held-out windows of
every source (tokens 0–255, the length trained before, and 256–1023, beyond it), and passkey
accuracy at 256, 512 and 1024 tokens. Losses do not depend on the machine's load; seconds do.

    .venv/bin/python bench/context_extension.py --out bench/context_extension.json
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SOURCES = ["web", "news", "edu", "wiki", "code", "math"]
LONG = ["data.sources.long_wiki.bundled=edu_wikipedia", "data.sources.long_wiki.min_doc_tokens=1024",
        "data.sources.long_docs.bundled=edu_python_docs", "data.sources.long_docs.min_doc_tokens=1024"]


def smollab(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "smollab", *args], cwd=REPO, check=True, capture_output=True, text=True)
    return time.perf_counter() - started


def loss_by_position(model_dir: Path, windows: list[torch.Tensor], cut: int) -> dict[str, float]:
    """Mean next-token loss over positions [0, cut) and [cut, end) of the windows."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    losses = []
    with torch.no_grad():
        for window in windows:
            logits = model(window[None, :-1]).logits[0]
            losses.append(torch.nn.functional.cross_entropy(logits, window[1:], reduction="none"))
    per_token = torch.stack(losses)
    return {f"0-{cut - 1}": per_token[:, :cut].mean().item(), f"{cut}-{per_token.shape[1] - 1}": per_token[:, cut:].mean().item()}


def passkey(model_dir: Path, work: Path, limit: int) -> dict[str, float]:
    out = work / f"passkey-{model_dir.parent.parent.name}.json"
    smollab("eval", str(model_dir), "--tasks", "passkey", "--max-length", "1024", "--limit", str(limit), "--out", str(out))
    return json.loads(out.read_text())["tasks"]["passkey"]["metrics"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=int, default=25, help="the parent checkpoint to branch (the demo's stable phase)")
    parser.add_argument("--tokens", default="163840", help="tokens per branch (10 demo steps)")
    parser.add_argument("--passkey-limit", type=int, default=75, help="items: 5 per (length, depth) cell at 256–1024")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from smollab.data.heldout import training_streams
    from smollab.demo import DEMO_RECIPE
    from smollab.recipe import load_recipe

    work = Path(tempfile.mkdtemp(prefix="smollab-extension-"))
    parent = work / "parent"
    held_out = ["eval.heldout.tokens=2050", "checkpoint.keep=8"]  # two 1025-token windows per source
    smollab("tokenize", str(DEMO_RECIPE), "--out", str(parent), "--workers", "2")
    seconds = {"parent": smollab("train", str(DEMO_RECIPE), "--out", str(parent), *held_out)}
    mixture = "long_wiki=0.2,long_docs=0.2"
    children = {"control": [], "extension": ["stages.0.seq_len=1024", "stages.0.rope_theta=100000"]}
    for name, extra in children.items():
        seconds[name] = smollab("anneal", str(parent), "--step", str(args.step), "--tokens", args.tokens, "--mixture", mixture,
                                "--out", str(work / name), *LONG, *extra)
    recipe = load_recipe(parent / "recipe.resolved.yaml")
    _, heldout = training_streams(recipe, SOURCES)
    windows = [torch.from_numpy(view.slice(start, start + 1025)) for view in heldout.values() for start in (0, 1025)]
    models = {"before": parent / "hf" / f"step-{args.step}", "control": work / "control" / "hf",
              "after": work / "extension" / "hf"}
    models = {name: path if path.name.startswith("step-") else max(path.glob("step-*"), key=lambda p: int(p.name[5:]))
              for name, path in models.items()}
    results = {"config": vars(args) | {"out": str(args.out)}, "seconds": seconds, "models": {}}
    for name, path in models.items():
        metrics = passkey(path, work, args.passkey_limit)
        results["models"][name] = {"dir": str(path), "heldout_loss_by_position": loss_by_position(path, windows, 256),
                                   "passkey": {k: v["value"] for k, v in metrics.items()}}
        print(name, json.dumps(results["models"][name]), flush=True)
    for name, row in results["models"].items():
        cells = {length: statistics.fmean(v for k, v in row["passkey"].items() if k.startswith(f"acc@{length}@"))
                 for length in (256, 512, 1024)}
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row["heldout_loss_by_position"].values()) + " | "
              + " | ".join(f"{v:.0%}" for v in cells.values()) + " |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
