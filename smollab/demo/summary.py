"""What ``smollab demo`` prints at the end: one line of numbers per step with its wall time, then the
commands that run the same recipes at scale.

Everything is read from the state entries (``OUT/demo.json``), never from the objects a step left in
memory, so a resumed demo prints the steps it skipped exactly as the ones it ran. A step with a
formatter below gets a sentence of numbers; a step without one (one added later) shows its scalar
numbers as ``key value``. The trade-off: the formatters know the summary keys ``loop.py`` writes,
so the two change together.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

SCALE_UP = (
    ("one GPU", "smollab train recipes/smollm2-135m.yaml"),
    ("8 GPUs", "torchrun --nproc_per_node 8 -m smollab train recipes/smollm2-135m.yaml"),
    ("a Slurm cluster", "sbatch launch/slurm.sbatch recipes/smollm2-1.7b.yaml"),
)
"""The same loop at SmolLM2's scale: the paper's recipes, after ``smollab tokenize`` of the same recipe."""


def duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s" if minutes else f"{rest}s"


def _shares(before: dict, after: dict) -> str:
    return ", ".join(f"{source} {before.get(source, 0):.0%}→{share:.0%}" for source, share in after.items()
                     if abs(share - before.get(source, 0)) > 1e-3)


def _curate(s: dict) -> str:
    docs = s["docs"]
    filtered = [n for step, n in docs.items() if step not in ("read", "dedup", "decontam", "score")] or [docs["read"]]
    histogram = " ".join(f"{score}:{n}" for score, n in sorted(s["annotation_histogram"].items()))
    held = s["classifier_heldout"]
    return (f"{docs['read']} web docs → {filtered[-1]} after filters → {docs['dedup']} after MinHash "
            f"(−{s['duplicates_removed']}) → {docs['decontam']} decontaminated → {docs['score']} kept "
            f"({s['tokens_kept']:,} of {s['tokens_read']:,} tokens); {s['annotated']} judged by {s['judge']} "
            f"(scores {histogram}); classifier held-out MSE {held['mse']:.2f} (n={held['n']})")


def _tokenize(s: dict) -> str:
    per_source = s["tokens_per_source"]
    short = sum(s["too_short"].values())
    return (f"BPE of {s['vocab_size']:,}; {len(per_source)} sources, {s['tokens']:,} tokens, of which web "
            f"{per_source['web']:,} from {s['web_documents']} curated documents"
            + (f"; {short} documents too short for the long-document sources" if short else ""))


def _rule(decision: dict) -> str:
    if not decision["fired"]:
        return f"rule {decision['rule']} did not fire at step {decision['step']} ({decision['reason']})"
    read = "/".join(f"{value:.3f}" for value in decision["metrics"].values())
    names = "/".join(metric.removeprefix("heldout.") for metric in decision["metrics"])
    return (f"rule {decision['rule']} fired at step {decision['step']} (held-out {names} {read}: "
            f"{_shares(decision['shares_before'], decision['shares_after'])})")


def _pretrain(s: dict) -> str:
    stages, heldout = s["stages"], s["heldout_mean"]
    parts = [f"{s['steps']} steps, {s['tokens']:,} tokens, {s['parameters'] / 1e6:.1f}M parameters ({s['precision']})",
             ", ".join(f"{stage['name']} {stage['steps'][0]}–{stage['steps'][1]}" for stage in stages),
             *(_rule(decision) for decision in s["decisions"]),
             f"context {stages[0]['seq_len']} → {stages[-1]['seq_len']} tokens, RoPE θ {s['rope_theta']:,.0f}",
             f"loss {s['final_loss']:.2f}, mean held-out loss {heldout[0]['loss']:.2f} (step {heldout[0]['step']}) → "
             f"{heldout[-1]['loss']:.2f}"]
    return "; ".join(parts)


def _sft(s: dict) -> str:
    line = f"{s['steps']} steps on {s['train']} conversations ({s['train_tokens']:,} tokens)"
    if s["heldout_first"]:
        line += (f"; held-out assistant-token loss {s['heldout_first']['loss']:.2f} → {s['heldout_last']['loss']:.2f} "
                 f"({s['heldout']} conversations)")
    return line


def _dpo(s: dict) -> str:
    line = f"{s['steps']} steps on {s['train']} preference pairs"
    if s["heldout_first"]:
        first, last = s["heldout_first"], s["heldout_last"]
        line += (f"; held-out reward accuracy {first['rewards/accuracies']:.2f} → {last['rewards/accuracies']:.2f}, "
                 f"margin {first['rewards/margins']:.3f} → {last['rewards/margins']:.3f} ({s['heldout']} pairs)")
    return line


def _eval(s: dict) -> str:
    def scores(model: dict) -> str:
        return " ".join(f"{task} {100 * r['value']:.0f}" for task, r in model.items())

    return f"{s['limit']} items per task, in %: base {scores(s['base'])} · chat {scores(s['chat'])}"


def _report(s: dict) -> str:
    return f"{s['outputs'][0]}: {len(s['sections'])} sections ({', '.join(s['sections'])})"


FORMATS = {"curate": _curate, "tokenize": _tokenize, "pretrain": _pretrain, "sft": _sft, "dpo": _dpo, "eval": _eval,
           "report": _report}


def _generic(s: dict) -> str:
    return ", ".join(f"{key} {value}" for key, value in s.items() if isinstance(value, int | float | str) and key != "mode")


def describe(record: dict) -> str:
    """What a step did, in one line of numbers (or why it failed, or that it is still to run)."""
    if record["status"] == "failed":
        return f"failed: {record['error']}"
    if record["status"] != "done":
        return "pending"
    return FORMATS.get(record["name"], _generic)(record["summary"])


def print_summary(records: list[dict], out: Path, console: Console) -> None:
    done = [record for record in records if record["status"] == "done"]
    mode = done[0]["summary"].get("mode", "") if done else ""
    table = Table(box=None, title=f"smollab demo → {out} ({mode} mode): {len(done)}/{len(records)} steps done in "
                                  f"{duration(sum(r['seconds'] for r in done))}", title_justify="left")
    table.add_column("step", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("what it did")
    for i, record in enumerate(records):
        table.add_row(f"{i + 1} {record['name']}", duration(record["seconds"]) if record["status"] != "pending" else "",
                      describe(record))
    console.print(table)
    if records[-1]["name"] == "report" and records[-1]["status"] == "done":
        console.print(f"report: {out / records[-1]['summary']['outputs'][0]}", highlight=False, soft_wrap=True)
    console.print(f"state: {out / 'demo.json'}; pretraining schedule: smollab mixture {out / 'pretrain'}; "
                  f"talk to the chat model: smollab chat {out / 'dpo'}", highlight=False, soft_wrap=True)
    console.print("The same loop at SmolLM2's scale (train reads the shards `smollab tokenize RECIPE` writes):",
                  highlight=False)
    for where, command in SCALE_UP:
        console.print(f"  {command:<75} # {where}", highlight=False, soft_wrap=True)
