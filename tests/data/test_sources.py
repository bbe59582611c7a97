import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smollab.data.sources import BUNDLED, reader_for
from smollab.errors import SmollabError
from smollab.recipe import SourceConfig


def texts(name, config, limit=None):
    reader = reader_for(name, config, limit)
    return [doc.text for doc in reader.run()], reader


def bundled_records(name, n):
    with gzip.open(BUNDLED / f"{name}.jsonl.gz", "rt") as f:
        return [json.loads(next(f)) for _ in range(n)]


def test_template_source_builds_documents_from_record_fields():
    config = SourceConfig(bundled="math_gsm8k_train", template="Question: {question}\nAnswer: {answer}")
    got, _ = texts("math", config, limit=3)
    expected = [f"Question: {r['question']}\nAnswer: {r['answer']}" for r in bundled_records("math_gsm8k_train", 3)]
    assert got == expected


def test_parquet_and_jsonl_gz_inputs_give_the_same_documents(tmp_path):
    records = bundled_records("web_c4_samples", 20)
    with gzip.open(tmp_path / "web.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    pq.write_table(pa.Table.from_pylist([{"id": r["id"], "text": r["text"]} for r in records]), tmp_path / "web.parquet")
    from_jsonl, _ = texts("web", SourceConfig(files=[str(tmp_path / "*.jsonl.gz")]))
    from_parquet, _ = texts("web", SourceConfig(files=[str(tmp_path / "*.parquet")]))
    assert from_jsonl == from_parquet == [r["text"] for r in records]


def test_limit_counts_good_documents_only(tmp_path):
    lines = ['{"text": ""}', "{broken", '{"text": "one"}', '{"text": "two"}', '{"text": "three"}']
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    got, reader = texts("a", SourceConfig(files=[str(tmp_path / "a.jsonl")], limit=2))
    assert got == ["one", "two"]
    assert reader.bad_counts == {"empty_text": 1, "malformed_json": 1}


def test_missing_template_field_is_a_counted_bad_record(tmp_path):
    (tmp_path / "qa.jsonl").write_text('{"question": "q1", "answer": "a1"}\n{"question": "q2"}\n')
    got, reader = texts("qa", SourceConfig(files=[str(tmp_path / "qa.jsonl")], template="{question} {answer}"))
    assert got == ["q1 a1"]
    assert reader.bad_counts == {"missing_text_field": 1}
    assert reader.bad_examples["missing_text_field"][0]["where"] == f"{tmp_path / 'qa.jsonl'}:2"


@pytest.mark.parametrize(
    "config, message",
    [
        (SourceConfig(bundled="no_such_sample"), "web_c4_samples"),
        (SourceConfig(files=["/nonexistent/*.jsonl"]), "matches no file"),
        (SourceConfig(bundled="web_c4_samples", template="{}"), "must name record fields"),
    ],
)
def test_source_config_mistakes_are_one_line_errors_naming_the_field(config, message):
    with pytest.raises(SmollabError, match=message) as err:
        reader_for("web", config)
    assert "data.sources.web." in str(err.value)


def test_hf_source_streams_with_datasets_and_counts_bad_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    records = bundled_records("web_c4_samples", 8)
    records[2] = {"id": "blank", "text": " "}
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    got, reader = texts("web", SourceConfig(hf=str(tmp_path), split="train"))
    assert got == [r["text"] for i, r in enumerate(records) if i != 2]
    assert reader.bad_counts == {"empty_text": 1}
