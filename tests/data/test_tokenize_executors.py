import json

import numpy as np
import pytest
from datatrove.executor import RayPipelineExecutor, SlurmPipelineExecutor

from smollab.data.shards import TokenStream
from smollab.data.sources import BUNDLED
from smollab.data.tokenize import tokenize_recipe
from smollab.errors import SmollabError
from smollab.recipe import validate_tree

EOS_ID = 0  # <|endoftext|> in the SmolLM2 tokenizer


def make_recipe(root, sources, executor=None):
    return validate_tree({
        "name": "t",
        "out": str(root / "run"),
        "data": {"sources": sources, "executor": executor or {}},
        "stages": [{"name": "s", "until_tokens": 1024, "mixture": {name: 1 / len(sources) for name in sources}}],
        "batch": {"seq_len": 64, "tokens_per_step": 256, "micro_batch": 4},
    })


def write_parts(folder, parts, docs_per_part=3, bad=()):
    """``parts`` .jsonl files of real web text (``bad[i]`` extra bad lines in file i)."""
    import gzip

    with gzip.open(BUNDLED / "web_c4_samples.jsonl.gz", "rt") as f:
        texts = [json.loads(next(f))["text"] for _ in range(parts * docs_per_part)]
    folder.mkdir(parents=True)
    for i in range(parts):
        lines = [json.dumps({"text": t}) for t in texts[i * docs_per_part : (i + 1) * docs_per_part]]
        lines += ['{"text": "cut off', json.dumps({"title": "no text"})][: bad[i] if i < len(bad) else 0]
        (folder / f"part{i}.jsonl").write_text("\n".join(lines) + "\n")
    return texts


def stream_tokens(recipe, name):
    stream = TokenStream(recipe.shards_dir / name)
    return stream.slice(0, stream.num_tokens)


def documents(tokens):
    """The documents of a token stream, each a tuple of token ids, split at the EOS."""
    ends = np.flatnonzero(tokens == EOS_ID)
    return [tuple(d) for d in np.split(tokens, ends + 1)[:-1]]


def shard_bytes(recipe, name):
    return {p.name: p.read_bytes() for p in sorted((recipe.shards_dir / name).glob("*.ds*"))}


def test_two_local_tasks_give_the_same_token_stream_as_one_and_reruns_are_byte_identical(tmp_path):
    texts = write_parts(tmp_path / "in", 4)
    sources = {"web": {"files": [str(tmp_path / "in" / "*.jsonl")]}}
    one = make_recipe(tmp_path / "one", sources, {"tasks": 1})
    two = make_recipe(tmp_path / "two", sources, {"tasks": 2})
    again = make_recipe(tmp_path / "again", sources, {"tasks": 2})
    tokenize_recipe(one, workers=1)
    tokenize_recipe(two, workers=2)
    tokenize_recipe(again, workers=1)

    assert len(list((two.shards_dir / "web").glob("*.ds"))) == 2
    assert json.loads((two.shards_dir / "web" / "summary.json").read_text())["tasks"] == 2
    assert len(documents(stream_tokens(two, "web"))) == len(texts)
    # Contiguous file blocks per task: the same documents in the same order whatever the task count.
    assert np.array_equal(stream_tokens(one, "web"), stream_tokens(two, "web"))
    assert shard_bytes(two, "web") == shard_bytes(again, "web")


def test_hub_source_split_over_tasks_keeps_the_same_documents(tmp_path):
    write_parts(tmp_path / "hub", 2)  # a local folder read by datatrove's HuggingFaceDatasetReader: 2 files = 2 shards
    sources = {"web": {"hf": str(tmp_path / "hub")}}
    one, two = make_recipe(tmp_path / "one", sources), make_recipe(tmp_path / "two", sources, {"tasks": 2})
    tokenize_recipe(one, workers=1)
    tokenize_recipe(two, workers=1)
    assert len(list((two.shards_dir / "web").glob("*.ds"))) == 2
    assert sorted(documents(stream_tokens(one, "web"))) == sorted(documents(stream_tokens(two, "web")))


def test_killed_task_resumes_without_duplicating_shards(tmp_path):
    write_parts(tmp_path / "in", 4)
    recipe = make_recipe(tmp_path, {"web": {"files": [str(tmp_path / "in" / "*.jsonl")]}}, {"tasks": 2})
    first = tokenize_recipe(recipe, workers=1)
    out = recipe.shards_dir / "web"
    complete = shard_bytes(recipe, "web")
    kept = (out / "00000_unshuffled.ds").stat().st_mtime_ns

    # As if task 1 was killed part-way: no completion marker, a half-written shard.
    (out / "logs" / "completions" / "00001").unlink()
    shard = out / "00001_unshuffled.ds"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    assert tokenize_recipe(recipe, workers=1) == first
    assert shard_bytes(recipe, "web") == complete
    assert (out / "00000_unshuffled.ds").stat().st_mtime_ns == kept


def test_changing_the_task_count_redoes_the_source_instead_of_mixing_shard_sets(tmp_path):
    write_parts(tmp_path / "in", 4)
    sources = {"web": {"files": [str(tmp_path / "in" / "*.jsonl")]}}
    two = tokenize_recipe(make_recipe(tmp_path, sources, {"tasks": 2}), workers=1)
    one = make_recipe(tmp_path, sources, {"tasks": 1})
    assert tokenize_recipe(one, workers=1) == two
    assert [p.name for p in sorted((one.shards_dir / "web").glob("*.ds"))] == ["00000_unshuffled.ds"]


def test_bad_record_counts_are_summed_over_tasks(tmp_path):
    write_parts(tmp_path / "in", 3, bad=(2, 0, 1))
    recipe = make_recipe(tmp_path, {"web": {"files": [str(tmp_path / "in" / "*.jsonl")]}}, {"tasks": 3})
    overall = tokenize_recipe(recipe, workers=1)
    assert len(list((recipe.shards_dir / "web" / "logs" / "bad_records").glob("*.json"))) == 3
    assert overall["sources"]["web"]["bad_records"] == {"malformed_json": 2, "missing_text_field": 1}
    assert overall["sources"]["web"]["documents"] == 9


def cluster_recipe(tmp_path, kind):
    (tmp_path / "in").mkdir()
    for i in range(3):
        (tmp_path / "in" / f"p{i}.jsonl").write_text(json.dumps({"text": f"doc {i}"}) + "\n")
    return make_recipe(tmp_path, {"web": {"files": [str(tmp_path / "in" / "*.jsonl")]}, "math": {"bundled": "math_gsm8k_train"}}, {
        "kind": kind, "workers": 3,
        "slurm": {"partition": "cpu-long", "time": "02:00:00", "cpus_per_task": 4, "mem_per_cpu_gb": 3,
                  "venv_path": "/opt/venv/bin/activate", "sbatch_args": {"account": "lab"}},
        "ray": {"cpus_per_task": 2, "mem_per_cpu_gb": 1.5},
    })


def test_slurm_tokenize_submits_a_job_per_source_with_the_recipe_settings(tmp_path, monkeypatch):
    launched = []
    monkeypatch.setattr(SlurmPipelineExecutor, "run", lambda self: launched.append(self))
    recipe = cluster_recipe(tmp_path, "slurm")
    assert tokenize_recipe(recipe) == {"shards_dir": str(recipe.shards_dir), "pending": ["web", "math"]}
    assert not (recipe.shards_dir / "summary.json").exists()
    web, math = launched
    assert (web.world_size, math.world_size) == (3, 1)  # one task per file; a single file is one task
    assert web.job_name == "t-tokenize-web" and web.depends is None
    assert (web.partition, web.time, web.cpus_per_task, web.mem_per_cpu_gb) == ("cpu-long", "02:00:00", 4, 3)
    script = web.get_launch_file_contents(web.get_sbatch_args(), "RUN")
    for line in ("#SBATCH --partition=cpu-long", "#SBATCH --time=02:00:00", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --mem-per-cpu=3G", "#SBATCH --account=lab", "source /opt/venv/bin/activate"):
        assert line in script


def test_ray_tokenize_executor_has_the_recipe_settings(tmp_path, monkeypatch):
    launched = []
    monkeypatch.setattr(RayPipelineExecutor, "run", lambda self: launched.append(self))
    recipe = cluster_recipe(tmp_path, "ray")
    with pytest.raises(SmollabError, match=r"data.sources.web: 3 of 3 tokenize tasks did not finish; see .* run the same command again"):
        tokenize_recipe(recipe)
    (web,) = launched
    assert (web.world_size, web.workers, web.cpus_per_task, web.mem_per_cpu_gb) == (3, 3, 2, 1.5)
