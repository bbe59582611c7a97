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


def write_parquet_of_real_text(path, n):
    records = bundled_records("web_c4_samples", n)
    pq.write_table(pa.Table.from_pylist([{"text": r["text"]} for r in records]), path, row_group_size=10)
    return [r["text"] for r in records]


def test_damaged_parquet_keeps_the_rows_before_the_damage_and_counts_the_file(tmp_path):
    path = tmp_path / "web.parquet"
    docs = write_parquet_of_real_text(path, 40)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 200] = b"\xff" * 200
    path.write_bytes(bytes(data))
    got, reader = texts("web", SourceConfig(files=[str(path)]))
    assert 0 < len(got) < len(docs) and got == docs[: len(got)]
    assert reader.bad_counts == {"corrupt_file": 1}
    assert reader.bad_examples["corrupt_file"][0]["where"] == f"{path}:{len(got) + 1}"


@pytest.mark.parametrize("damage", ["truncated", "overwritten", "not-gzip"])
def test_damaged_jsonl_gz_is_a_counted_bad_record_not_a_crash(tmp_path, damage):
    records = bundled_records("web_news_articles", 30)
    complete = gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode())
    middle = len(complete) // 2
    broken = {
        "truncated": complete[:middle],
        "overwritten": complete[:middle] + b"\xff" * 64 + complete[middle + 64 :],
        "not-gzip": b"these bytes were never compressed\n",
    }[damage]
    (tmp_path / "news.jsonl.gz").write_bytes(broken)
    got, reader = texts("news", SourceConfig(files=[str(tmp_path / "news.jsonl.gz")]))
    assert got == [r["text"] for r in records[: len(got)]]
    assert reader.bad_counts["corrupt_file"] == 1 and "unreadable after line" in reader.bad_examples["corrupt_file"][0]["detail"]


def test_truncated_parquet_is_a_counted_bad_record(tmp_path):
    path = tmp_path / "web.parquet"
    write_parquet_of_real_text(path, 20)
    path.write_bytes(path.read_bytes()[:-100])
    got, reader = texts("web", SourceConfig(files=[str(path)]))
    assert got == [] and reader.bad_counts == {"corrupt_file": 1}


def test_text_join_drops_image_slots_and_where_accepts_a_list_of_values(tmp_path):
    rows = [
        {"text_list": ["a", None, "b"], "meta": {"lang": "en"}},
        {"text_list": ["c"], "meta": json.dumps({"lang": "fr"})},
        {"text_list": ["d", 3], "meta": {"lang": "en"}},
        {"text_list": ["e"], "meta": {"lang": "zh"}},
        {"text_list": ["f"]},
    ]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = SourceConfig(files=[str(tmp_path / "p.jsonl")], text="text_list", text_join=" | ", where={"meta.lang": ["en", "fr"]})
    got, reader = texts("p", config)
    assert got == ["a | b", "c"]
    assert reader.bad_counts == {"text_not_a_string": 1} and reader.filtered_out == 2
