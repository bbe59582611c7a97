import json

from datatrove.data import Document

from curate_helpers import rows
from smollab.curate.decontam import Decontaminate, NGramIndex, words


def _gsm8k_items(limit=200):
    for row in rows("eval/gsm8k_test", limit):
        yield "gsm8k", row["id"], row["question"]
        yield "gsm8k", row["id"], row["answer"]


def test_document_quoting_a_benchmark_question_is_removed_and_listed(tmp_path):
    question = rows("eval/gsm8k_test", 200)[57]
    web = rows("web_c4_samples", 30)
    leaked = Document(text=web[0]["text"] + "\n\nHomework help: " + question["question"] + "\nThanks!", id="web/leaked")
    docs = [leaked] + [Document(text=r["text"], id=f"web/{i}") for i, r in enumerate(web[1:])]
    block = Decontaminate(_gsm8k_items(), tmp_path, n_gram=13)
    kept = list(block.run(iter(docs), rank=0))
    assert [d.id for d in kept] == [d.id for d in docs[1:]]
    removed = [json.loads(line) for line in (tmp_path / "removed_00000.jsonl").read_text().splitlines()]
    assert removed == [{"id": "web/leaked", "task": "gsm8k", "item_id": question["id"], "ngram": removed[0]["ngram"]}]
    assert removed[0]["ngram"] in " ".join(words(question["question"])) and len(removed[0]["ngram"].split()) == 13
    assert block.stats["task_gsm8k"].total == 1


def test_short_items_are_counted_not_indexed_and_match_is_word_level():
    index = NGramIndex([("t", "a", "too short to index"), ("t", "b", " ".join(f"w{i}" for i in range(20)))], n=13)
    assert index.unindexed == {"t": 1} and len(index) == 8
    assert index.match("prefix W3, w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 suffix") == ("t", "b", "w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15")
    assert index.match("w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w16") is None
