"""Shared fixtures: one tokenizer and one set of real token shards per test session.

Tokenizing is done once (a small BPE trained on bundled real samples, then datatrove shards), and
every training test points its recipe at those shards, so tests pay only for the training they check.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]

SOURCES = {
    "web": {"bundled": "web_c4_samples", "limit": 200},
    "code": {"bundled": "code_thealgorithms_python", "limit": 150},
    "math": {"bundled": "math_gsm8k_train", "template": "Question: {question}\nAnswer: {answer}", "limit": 600},
}


def recipe_tree(out: Path, shards: Path, tokenizer: Path, **sections) -> dict:
    """A micro-model recipe over the session's shards: 2 stages of 4 steps, fp32, 64-token sequences."""
    tree = {
        "name": "test",
        "out": str(out),
        "model": {"preset": "micro"},
        "tokenizer": {"source": str(tokenizer)},
        "data": {"sources": SOURCES, "shards_dir": str(shards)},
        "stages": [
            {"name": "one", "until_tokens": 4 * 1024, "mixture": {"web": 0.7, "code": 0.3}},
            {"name": "two", "until_tokens": 8 * 1024, "mixture": {"web": 0.4, "code": 0.2, "math": 0.4}},
        ],
        "optim": {"lr": 3e-3},
        "schedule": {"warmup_steps": 2, "decay": {"fraction": 0.25}},
        "batch": {"seq_len": 64, "tokens_per_step": 1024, "micro_batch": 4},
        "checkpoint": {"every_tokens": 2048, "keep": 5},
        "train": {"seed": 3, "precision": "fp32", "device": "cpu"},
    }
    for key, value in sections.items():
        tree[key] = {**tree.get(key, {}), **value} if isinstance(value, dict) else value
    return tree


@pytest.fixture(scope="session")
def shards(tmp_path_factory) -> tuple[Path, Path]:
    """(shards_dir, tokenizer_dir): a 1024-token BPE and shards of three real bundled sources."""
    from smollab.data.tokenize import tokenize_recipe
    from smollab.recipe import validate_tree
    from smollab.tokenizer import tokenizer_for_recipe

    root = tmp_path_factory.mktemp("corpus")
    tree = recipe_tree(root, root / "shards", root / "unused")
    tree["tokenizer"] = {"train": {"vocab_size": 1024, "max_docs_per_source": 150}}
    recipe = validate_tree(tree)
    tokenizer_for_recipe(recipe)
    tokenize_recipe(recipe, workers=1)
    return root / "shards", root / "tokenizer"


@pytest.fixture
def write_recipe(tmp_path, shards):
    """Write a test recipe (sections merged over the defaults) and return its path."""

    def write(name: str = "recipe.yaml", out: str = "run", **sections) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(recipe_tree(tmp_path / out, *shards, **sections)))
        return path

    return write


def python(torchrun: int = 0) -> list[str]:
    """The interpreter, or ``torchrun`` with that many local ranks (gloo on CPU)."""
    if not torchrun:
        return [sys.executable]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(torchrun), "--master_port", "29533"]


def smollab(*args: str, check: bool = True, threads: int = 1, torchrun: int = 0, **kwargs) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh process (or ``torchrun`` ranks), as a user would."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    result = subprocess.run([*python(torchrun), "-m", "smollab", *args], capture_output=True, text=True, env=env,
                            cwd=REPO, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"smollab {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result
