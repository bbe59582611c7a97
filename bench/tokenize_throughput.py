"""Tokens/s of `smollab tokenize` (datatrove DocumentTokenizer on local tasks) vs raw `tokenizers` encode_batch.

The bundled web_c4_samples documents, cycled to --docs, are split into --files .jsonl files and tokenized as that many tasks
with 1 and 2 local workers (each worker process limited to one Rayon thread); the peer encodes the same
texts with the SmolLM2 `tokenizers.Tokenizer.encode_batch` on 1 and 2 Rayon threads. Every measurement
runs in a fresh process (Rayon's thread count is fixed per process) and includes what a user waits for:
for smollab, worker start-up, shard writing and the summary. Median of --runs runs.
Run:  .venv/bin/python bench/tokenize_throughput.py [--runs 3] [--docs 20000] [--files 4]
"""

import argparse
import gzip
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from smollab.paths import ASSETS


def write_inputs(folder: Path, docs: int, files: int) -> list[str]:
    """``docs`` documents cycled from the bundled sample (340 documents; a larger input amortises the start-up of
    the tasks' processes, which is fixed), split into ``files`` files."""
    with gzip.open(ASSETS / "pretrain" / "web_c4_samples.jsonl.gz", "rt") as f:
        texts = list(itertools.islice(itertools.cycle([json.loads(line)["text"] for line in f]), docs))
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        part = texts[i * len(texts) // files : (i + 1) * len(texts) // files]
        (folder / f"part{i:03d}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in part))
    return texts


def run_smollab(inputs: Path, out: Path, workers: int) -> tuple[int, float]:
    from smollab.data.tokenize import tokenize_recipe
    from smollab.recipe import validate_tree

    recipe = validate_tree({
        "name": "bench", "out": str(out),
        "data": {"sources": {"web": {"files": [str(inputs / "*.jsonl")]}}, "executor": {"workers": workers}},
        "stages": [{"name": "s", "until_tokens": 1024, "mixture": {"web": 1.0}}],
        "batch": {"seq_len": 64, "tokens_per_step": 256, "micro_batch": 4},
    })
    start = time.perf_counter()
    tokens = tokenize_recipe(recipe)["tokens"]
    return tokens, time.perf_counter() - start


def run_peer(inputs: Path) -> tuple[int, float]:
    from tokenizers import Tokenizer

    from smollab.tokenizer import tokenizer_file

    texts = [json.loads(line)["text"] for p in sorted(inputs.glob("*.jsonl")) for line in p.read_text().splitlines()]
    tokenizer = Tokenizer.from_file(str(tokenizer_file("smollm2")))
    start = time.perf_counter()
    tokens = sum(len(e.ids) + 1 for i in range(0, len(texts), 1000) for e in tokenizer.encode_batch(texts[i : i + 1000]))
    return tokens, time.perf_counter() - start


def measure(kind: str, inputs: Path, threads: int, out: Path) -> tuple[int, float]:
    """One run in a fresh process: (tokens, seconds)."""
    env = {**os.environ, "RAYON_NUM_THREADS": str(1 if kind == "smollab" else threads), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, __file__, "--one", kind, "--inputs", str(inputs), "--threads", str(threads), "--out", str(out)]
    result = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    tokens, seconds = json.loads(result.stdout.strip().splitlines()[-1])
    return tokens, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--one", choices=["smollab", "peer"], help=argparse.SUPPRESS)
    parser.add_argument("--inputs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        tokens, seconds = run_smollab(args.inputs, args.out, args.threads) if args.one == "smollab" else run_peer(args.inputs)
        print(json.dumps([tokens, seconds]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "in"
        docs = len(write_inputs(inputs, args.docs, args.files))
        print(f"{docs} documents of web_c4_samples in {args.files} files, {os.cpu_count()} cores, median of {args.runs}")
        print(f"{'peer':<32} {'threads':>7} {'tokens':>10} {'tokens/s':>12}")
        for kind, label in (("smollab", "smollab tokenize (local tasks)"), ("peer", "tokenizers encode_batch")):
            for threads in (1, 2):
                runs = [measure(kind, inputs, threads, Path(tmp) / f"{kind}{threads}-{i}") for i in range(args.runs)]
                tokens = runs[0][0]
                rate = statistics.median(tokens / seconds for _, seconds in runs)
                print(f"{label:<32} {threads:>7} {tokens:>10,} {rate:>12,.0f}")


if __name__ == "__main__":
    main()
