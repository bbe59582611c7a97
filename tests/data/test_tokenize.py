import gzip
import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from smollab.data.shards import TokenStream, load_streams
from smollab.data.sources import BUNDLED
from smollab.data.tokenize import tokenize, tokenize_recipe
from smollab.errors import SmollabError
from smollab.recipe import validate_tree
from smollab.tokenizer import load_tokenizer


def make_recipe(tmp_path, sources, **tokenizer):
    return validate_tree({
        "name": "t",
        "out": str(tmp_path / "run"),
        "tokenizer": tokenizer or {"source": "smollm2"},
        "data": {"sources": sources},
        "stages": [{"name": "s", "until_tokens": 1024, "mixture": {name: 1 / len(sources) for name in sources}}],
        "batch": {"seq_len": 64, "tokens_per_step": 256, "micro_batch": 4},
    })


def bundled_texts(name, n):
    with gzip.open(BUNDLED / f"{name}.jsonl.gz", "rt") as f:
        return [json.loads(next(f))["text"] for _ in range(n)]


def write_two_files(tmp_path):
    """Two jsonl files (→ two datatrove tasks) of real web text."""
    docs = bundled_texts("web_c4_samples", 12)
    (tmp_path / "in").mkdir()
    for i, part in enumerate((docs[:5], docs[5:])):
        (tmp_path / "in" / f"part{i}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in part))
    return docs


def test_bad_records_are_counted_per_reason_not_fatal(tmp_path):
    good = bundled_texts("web_news_articles", 3)
    lines = [
        json.dumps({"text": good[0]}).encode(),
        b'{"text": "cut off',
        json.dumps({"title": "no text field"}).encode(),
        json.dumps({"text": good[1]}).encode(),
        json.dumps({"text": "   "}).encode(),
        b'{"text": "caf\xe9 latin-1 bytes"}',
        json.dumps({"text": good[2]}).encode(),
    ]
    (tmp_path / "news.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    recipe = make_recipe(tmp_path, {"news": {"files": [str(tmp_path / "news.jsonl")]}})
    overall = tokenize_recipe(recipe)

    summary = json.loads((recipe.shards_dir / "news" / "summary.json").read_text())
    assert summary["bad_records"] == {"empty_text": 1, "invalid_utf8": 1, "malformed_json": 1, "missing_text_field": 1}
    assert summary["bad_examples"]["invalid_utf8"][0]["where"] == f"{tmp_path / 'news.jsonl'}:6"
    assert summary["bad_examples"]["malformed_json"][0]["where"] == f"{tmp_path / 'news.jsonl'}:2"
    assert summary["documents"] == 3
    tok = load_tokenizer("smollm2")
    assert summary["tokens"] == sum(len(tok(t).input_ids) + 1 for t in good)
    assert overall["bad_records"] == summary["bad_records"]
    assert json.loads((recipe.shards_dir / "summary.json").read_text())["sources"]["news"]["documents"] == 3


def test_shards_decode_back_to_documents_with_eos_between(tmp_path):
    recipe = make_recipe(tmp_path, {
        "math": {"bundled": "math_gsm8k_train", "template": "{question}\n{answer}", "limit": 20},
    })
    tokenize_recipe(recipe)
    stream = TokenStream(recipe.shards_dir / "math")
    tok = load_tokenizer("smollm2")
    with gzip.open(BUNDLED / "math_gsm8k_train.jsonl.gz", "rt") as f:
        docs = [f"{r['question']}\n{r['answer']}" for r in map(json.loads, (next(f) for _ in range(20)))]
    tokens = stream.slice(0, stream.num_tokens)
    assert tokens.dtype == np.int64 and stream.token_dtype == np.uint16
    assert stream.num_docs == 20 and tokens[-1] == 0 and (tokens == 0).sum() == 20
    assert tok.decode(tokens) == "".join(d + "<|endoftext|>" for d in docs)


def test_token_stream_slices_across_shard_files_like_one_array(tmp_path):
    write_two_files(tmp_path)
    recipe = make_recipe(tmp_path, {"web": {"files": [str(tmp_path / "in" / "*.jsonl")]}})
    tokenize_recipe(recipe)
    stream = load_streams(recipe.shards_dir, ["web"])["web"]
    parts = [np.fromfile(p, dtype=np.uint16) for p in sorted((recipe.shards_dir / "web").glob("*.ds"))]
    assert len(parts) == 2 and stream.num_docs == 12
    whole = np.concatenate(parts).astype(np.int64)
    boundary = len(parts[0])
    seq_len = 64
    for start in (0, boundary - 10, boundary, stream.num_tokens - seq_len - 1):
        assert np.array_equal(stream.slice(start, start + seq_len + 1), whole[start : start + seq_len + 1])
    with pytest.raises(IndexError):
        stream.slice(stream.num_tokens - 5, stream.num_tokens + 1)


def test_shards_are_identical_whatever_the_number_of_workers(tmp_path):
    write_two_files(tmp_path)
    sources = {"web": {"files": [str(tmp_path / "in" / "*.jsonl")]}}
    one, two = (make_recipe(tmp_path / f"w{n}", sources) for n in (1, 2))
    tokenize_recipe(one, workers=1)
    tokenize_recipe(two, workers=2)
    files = sorted(p.name for p in (one.shards_dir / "web").glob("*.ds*"))
    assert files == sorted(p.name for p in (two.shards_dir / "web").glob("*.ds*"))
    for name in files:
        assert (one.shards_dir / "web" / name).read_bytes() == (two.shards_dir / "web" / name).read_bytes()


def test_retokenize_skips_finished_shards(tmp_path):
    write_two_files(tmp_path)
    recipe = make_recipe(tmp_path, {"web": {"files": [str(tmp_path / "in" / "*.jsonl")]}})
    first = tokenize_recipe(recipe)
    out = recipe.shards_dir / "web"
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.ds")}

    assert tokenize_recipe(recipe) == first
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.ds")} == stamps

    (out / "logs" / "completions" / "00001").unlink()  # as if the run died during the second task
    assert tokenize_recipe(recipe) == first
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*.ds")}
    assert after["00000_unshuffled.ds"] == stamps["00000_unshuffled.ds"]
    assert after["00001_unshuffled.ds"] != stamps["00001_unshuffled.ds"]


def test_changed_tokenizer_is_refused_not_mixed_into_existing_shards(tmp_path):
    sources = {"web": {"bundled": "web_c4_samples", "limit": 5}}
    tokenize_recipe(make_recipe(tmp_path, sources))
    trained = make_recipe(tmp_path, sources, train={"vocab_size": 600, "max_docs_per_source": 30})
    with pytest.raises(SmollabError, match="another tokenizer .* delete that directory or set data.shards_dir"):
        tokenize_recipe(trained)
    with pytest.raises(SmollabError, match="different data.sources.web"):
        tokenize_recipe(make_recipe(tmp_path, {"web": {"bundled": "web_c4_samples", "limit": 6}}))


def tokenize_cli(*args):
    app = typer.Typer()
    app.command()(tokenize)
    app.command("other")(lambda: None)  # keep `tokenize` a named subcommand
    return CliRunner().invoke(app, ["tokenize", *args, "--workers", "1"])


def write_code_recipe(tmp_path):
    (tmp_path / "r.yaml").write_text(json.dumps({
        "name": "t",
        "data": {"sources": {"code": {"bundled": "code_thealgorithms_python", "limit": 10}}},
        "stages": [{"name": "s", "until_tokens": 1024, "mixture": {"code": 1.0}}],
        "batch": {"seq_len": 64, "tokens_per_step": 256, "micro_batch": 4},
    }))
    return tmp_path / "r.yaml"


def test_tokenize_cli_prints_a_table_and_writes_summary(tmp_path):
    result = tokenize_cli(str(write_code_recipe(tmp_path)), f"out={tmp_path / 'run'}")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "shards" / "summary.json").read_text())
    assert summary["documents"] == 10 and summary["dtype"] == "uint16" and summary["vocab_size"] == 49152
    assert "code" in result.output and f"{summary['tokens']:,}" in result.output


def test_missing_shards_hint_is_the_tokenize_command_that_fills_that_run_dir(tmp_path):
    recipe, run = write_code_recipe(tmp_path), tmp_path / "elsewhere"
    with pytest.raises(SmollabError, match="run `smollab tokenize RECIPE --out .*` first") as err:
        load_streams(run / "shards", ["code"])
    command = str(err.value).split("`")[1].split()  # smollab tokenize RECIPE --out <run>
    assert command[:3] == ["smollab", "tokenize", "RECIPE"] and command[4] == str(run)
    result = tokenize_cli(str(recipe), *command[3:])
    assert result.exit_code == 0, result.output
    assert load_streams(run / "shards", ["code"])["code"].num_docs == 10


def test_source_whose_records_lack_the_text_field_fails_tokenize_naming_the_fields_seen(tmp_path):
    recipe = make_recipe(tmp_path, {"math": {"bundled": "math_gsm8k_train", "limit": 50}})  # no `text` field
    with pytest.raises(SmollabError, match=r"data.sources.math: none of its 7,473 records has the document text "
                       r"\(no 'text' field \(fields: id, question, answer, final_answer\)\); set data.sources.math.text"):
        tokenize_recipe(recipe)
    summary = json.loads((recipe.shards_dir / "summary.json").read_text())
    assert summary["sources"]["math"]["documents"] == 0
    assert summary["bad_records"] == {"missing_text_field": 7473}
    with pytest.raises(SmollabError, match="fix data.sources.math.text, .template or .where"):
        load_streams(recipe.shards_dir, ["math"])
    fixed = make_recipe(tmp_path, {"math": {"bundled": "math_gsm8k_train", "limit": 50, "template": "{question}\n{answer}"}})
    assert tokenize_recipe(fixed)["documents"] == 50  # a source with no tokens yet is redone, not refused


def write_gzip_of_real_text(path, n):
    docs = bundled_texts("web_news_articles", n)
    path.write_bytes(gzip.compress("".join(json.dumps({"text": t}) + "\n" for t in docs).encode()))
    return docs


def test_truncated_jsonl_gz_keeps_its_readable_records_and_a_fixed_copy_is_retokenized(tmp_path):
    (tmp_path / "in").mkdir()
    source = tmp_path / "in" / "news.jsonl.gz"
    docs = write_gzip_of_real_text(source, 60)
    complete = source.read_bytes()
    source.write_bytes(complete[: len(complete) // 2])
    recipe = make_recipe(tmp_path, {"news": {"files": [str(source)]}})
    summary = tokenize_recipe(recipe)["sources"]["news"]
    assert summary["bad_records"] == {"corrupt_file": 1} and 0 < summary["documents"] < len(docs)
    stream = TokenStream(recipe.shards_dir / "news")
    kept = "".join(d + "<|endoftext|>" for d in docs[: summary["documents"]])
    assert load_tokenizer("smollm2").decode(stream.slice(0, stream.num_tokens)) == kept
    example = json.loads((recipe.shards_dir / "news" / "summary.json").read_text())["bad_examples"]["corrupt_file"][0]
    assert example["where"].startswith(f"{source}:") and "unreadable after line" in example["detail"]

    source.write_bytes(complete)
    fixed = tokenize_recipe(recipe)["sources"]["news"]
    assert fixed == {"tokens": fixed["tokens"], "documents": len(docs), "bad_records": {}, "filtered_out": 0, "too_short": 0}


def test_unreachable_hub_is_one_line_naming_the_source(tmp_path, capfd):
    recipe = make_recipe(tmp_path, {"fineweb": {"hf": "some/unknown-id"}})
    with pytest.raises(SmollabError, match="data.sources.fineweb: the Hugging Face hub is unreachable .* for 'some/unknown-id'; "
                       "download the dataset .* point data.sources.fineweb.files at the local copy"):
        tokenize_recipe(recipe)
    assert "Traceback" not in capfd.readouterr().err


def test_ids_only_hub_release_fails_tokenize_saying_how_to_fetch_the_contents(tmp_path):
    rows = [{"blob_id": f"{i:040x}", "repo_name": "octo/repo", "path": f"src/m{i}.py", "language": "Python",
             "length_bytes": 1000 + i, "score": 3.2, "int_score": 3} for i in range(5)]
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = make_recipe(tmp_path, {"stack_edu": {"hf": str(tmp_path / "hub")}})
    with pytest.raises(SmollabError, match=r"fields: blob_id, repo_name, path, language, length_bytes, score, int_score\)\); "
                       r"this release may hold only ids .* point data.sources.stack_edu.files at them"):
        tokenize_recipe(recipe)


def test_where_filter_keeps_infimm_english_text_and_counts_the_rest_as_filtered(tmp_path):
    pages = [
        ("__label__en", ["Let x = 2.", None, "Then x^2 = 4."]),
        ("__label__zh", ["设 x = 2。", None, "则 x^2 = 4。"]),
        ("__label__en", [None, "The area of a circle is pi r^2."]),
    ]
    records = [{"URL": f"https://example.org/{i}", "text_list": texts, "image_list": [None if t else "img.png" for t in texts],
                "metadata": {"ft_lang_label": label} if i % 2 else json.dumps({"ft_lang_label": label})}
               for i, (label, texts) in enumerate(pages)]
    (tmp_path / "infimm.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    source = {"files": [str(tmp_path / "infimm.jsonl")], "text": "text_list", "text_join": "\n\n",
              "where": {"metadata.ft_lang_label": "__label__en"}}
    recipe = make_recipe(tmp_path, {"infimm": source})
    summary = tokenize_recipe(recipe)["sources"]["infimm"]
    assert summary["documents"] == 2 and summary["filtered_out"] == 1 and summary["bad_records"] == {}
    stream = TokenStream(recipe.shards_dir / "infimm")
    expected = "Let x = 2.\n\nThen x^2 = 4.<|endoftext|>The area of a circle is pi r^2.<|endoftext|>"
    assert load_tokenizer("smollm2").decode(stream.slice(0, stream.num_tokens)) == expected
    with pytest.raises(SmollabError, match="different data.sources.infimm.where"):
        tokenize_recipe(make_recipe(tmp_path, {"infimm": {**source, "where": {"metadata.ft_lang_label": "__label__zh"}}}))


def test_min_doc_tokens_keeps_exactly_the_long_documents_and_counts_the_others(tmp_path):
    docs = bundled_texts("web_c4_samples", 40)
    tok = load_tokenizer("smollm2")
    lengths = [len(tok(t, add_special_tokens=False).input_ids) for t in docs]
    threshold = sorted(lengths)[len(lengths) // 2]  # about half are long enough
    long_docs = [t for t, n in zip(docs, lengths) if n >= threshold]
    recipe = make_recipe(tmp_path, {"long": {"bundled": "web_c4_samples", "limit": 40, "min_doc_tokens": threshold}})
    overall = tokenize_recipe(recipe)
    stream = TokenStream(recipe.shards_dir / "long")
    assert 0 < len(long_docs) < len(docs) and stream.num_docs == len(long_docs)
    assert tok.decode(stream.slice(0, stream.num_tokens)) == "".join(t + "<|endoftext|>" for t in long_docs)
    assert overall["sources"]["long"]["too_short"] == len(docs) - len(long_docs)


def test_min_doc_tokens_that_keeps_nothing_names_the_threshold(tmp_path):
    recipe = make_recipe(tmp_path, {"long": {"bundled": "web_c4_samples", "limit": 5, "min_doc_tokens": 10**7}})
    with pytest.raises(SmollabError, match=r"data.sources.long: min_doc_tokens 10,000,000 left no document \(5 shorter"):
        tokenize_recipe(recipe)
