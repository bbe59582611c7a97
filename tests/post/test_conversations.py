"""Chat sources: broken conversations are counted per reason, the held-out split is stable, the mixture meets its shares."""

import gzip
import json
import re

import pytest
from transformers import AutoTokenizer

from smollab.errors import SmollabError
from smollab.paths import ASSETS
from smollab.post.conversations import BUNDLED, CHAT_REASONS, ChatDataConfig, SourceLocation, load_conversations, read_records
from smollab.post.template import assistant_mask

BUNDLED_CHAT = ["sft_oasst_en100", "sft_self_instruct_user_oriented", "sft_self_instruct_seed_tasks",
                "sft_llamafactory_alpaca_en_demo", "sft_llamafactory_glaive_toolcall_en_demo"]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(ASSETS / "tokenizer" / "smollm2")


def turns(*pairs):
    return [{"role": role, "content": content} for role, content in pairs]


def exchange(i: int) -> dict:
    return {"id": f"conv-{i}", "messages": turns(("user", f"Question number {i}?"), ("assistant", f"Answer number {i}."))}


def write_jsonl(path, rows):
    path.write_text("".join(row if isinstance(row, str) else json.dumps(row) + "\n" for row in rows))
    return path


LONG = "word " * 300
BROKEN = {
    "malformed": [{"id": "m1", "messages": "user: hi"}, {"id": "m2", "text": "no messages field"},
                  "{not json\n", {"id": "m3", "messages": [{"role": "user"}]}],
    "unknown_role": [{"id": "u1", "messages": turns(("user", "hi"), ("bot", "hello"))}],
    "empty_turn": [{"id": "e1", "messages": turns(("user", "hi"), ("assistant", "   "))}],
    "no_assistant_turn": [{"id": "n1", "messages": turns(("system", "Be kind."), ("user", "hi"))}],
    "not_alternating": [{"id": "a1", "messages": turns(("user", "hi"), ("user", "again"), ("assistant", "yes"))},
                        {"id": "a2", "messages": turns(("user", "hi"), ("assistant", "yes"), ("user", "and?"))},
                        {"id": "a3", "messages": turns(("user", "hi"), ("tool", "{}"), ("assistant", "yes"))}],
    "merges_across_turn": [{"id": "w1", "messages": turns(("user", "hi"), ("assistant", "\n\nhello"))}],
    "too_long": [{"id": "l1", "messages": turns(("user", "hi"), ("assistant", LONG))}],
}
GOOD = [
    {"id": "g1", "messages": turns(("user", "hi"), ("assistant", "hello"))},
    {"id": "g2", "messages": turns(("system", "Be brief."), ("user", "2+2?"), ("assistant", "4"), ("user", "3+3?"), ("assistant", "6"))},
    {"id": "g3", "messages": turns(("user", "Weather?"), ("tool_call", '{"name": "weather"}'), ("tool", '{"c": 21}'),
                                   ("assistant", "21 °C."))},
    {"id": "cut", "messages": turns(("user", "hi"), ("assistant", "hello"), ("user", "more"), ("assistant", LONG))},
]


def test_broken_conversations_are_counted_per_reason_and_the_good_ones_kept(tmp_path, tokenizer):
    rows = [row for rows in BROKEN.values() for row in rows] + GOOD
    path = write_jsonl(tmp_path / "chat.jsonl", rows)
    config = ChatDataConfig(sources={"mine": {"files": [str(path)]}}, max_length=200, heldout_fraction=0)
    data = load_conversations(config, tokenizer)
    report = data.report()["sources"]["mine"]
    assert report["dropped"] == dict.fromkeys(CHAT_REASONS, 0) | {reason: len(rows) for reason, rows in BROKEN.items()}
    assert report["read"] == len(rows) == report["train"] + sum(report["dropped"].values())
    assert sorted(c.id for c in data.train) == ["cut", "g1", "g2", "g3"]
    assert report["truncated"] == 1
    cut = next(c for c in data.train if c.id == "cut")
    assert cut.messages == GOOD[3]["messages"][:2] and cut.num_tokens <= 200
    for reason, rows_of_reason in BROKEN.items():
        examples = report["examples"][reason]
        assert len(examples) == min(3, len(rows_of_reason))
        assert all(re.fullmatch(rf"{re.escape(str(path))}:\d+", e["where"]) and e["detail"] for e in examples)
    assert "role 'bot'" in report["examples"]["unknown_role"][0]["detail"]
    assert json.loads(json.dumps(data.report())) == data.report()  # what a trainer writes to data_report.json


def test_a_damaged_gzip_keeps_the_records_before_the_damage(tmp_path, tokenizer):
    blob = gzip.compress("".join(json.dumps(exchange(i)) + "\n" for i in range(200)).encode())
    (tmp_path / "cut.jsonl.gz").write_bytes(blob[: len(blob) // 2])
    data = load_conversations(ChatDataConfig(sources={"cut": {"files": [str(tmp_path / "*.jsonl.gz")]}},
                                             heldout_fraction=0), tokenizer)
    report = data.report()["sources"]["cut"]
    assert {reason: n for reason, n in report["dropped"].items() if n} == {"corrupt_file": 1} and report["train"] > 0
    assert report["read"] == report["train"] + 1


def test_heldout_split_is_deterministic_and_stable_when_the_source_grows(tmp_path, tokenizer):
    config = {"heldout_fraction": 0.25, "seed": 3}
    small = write_jsonl(tmp_path / "small.jsonl", [exchange(i) for i in range(120)])
    grown = write_jsonl(tmp_path / "grown.jsonl", [exchange(i) for i in reversed(range(200))])  # more, and re-ordered

    def sides(path, **changes):
        data = load_conversations(ChatDataConfig(sources={"s": {"files": [str(path)]}}, **(config | changes)), tokenizer)
        return {c.id: "train" for c in data.train} | {c.id: "heldout" for c in data.heldout}

    before, again, after = sides(small), sides(small), sides(grown)
    assert before == again
    assert {i: after[i] for i in before} == before
    assert 0.1 < list(before.values()).count("heldout") / len(before) < 0.4
    assert sides(small, seed=4) != before


def test_mixture_shares_match_the_weights_in_tokens_over_an_epoch(tokenizer):
    shares = {"alpaca": 0.3, "oasst": 0.5, "seed": 0.2}
    sources = {"alpaca": {"bundled": "sft_llamafactory_alpaca_en_demo", "limit": 200},
               "oasst": {"bundled": "sft_oasst_en100"}, "seed": {"bundled": "sft_self_instruct_seed_tasks", "limit": 80}}
    config = ChatDataConfig(sources=sources, mixture=shares, max_length=1024, heldout_fraction=0.1, seed=5)
    data = load_conversations(config, tokenizer)
    natural = {name: sum(c.num_tokens for c in items) for name, items in data.train_by_source.items()}
    total = sum(natural.values())
    report = data.report()
    epoch_tokens = {name: source["epoch"]["tokens"] for name, source in report["sources"].items()}
    for name, share in shares.items():
        longest = max(c.num_tokens for c in data.train_by_source[name])
        # the stated bound: each source is within half its longest conversation of its token target
        assert abs(epoch_tokens[name] - share * total) <= longest / 2
        assert report["sources"][name]["epoch"]["share"] == pytest.approx(share, abs=0.02)
    assert report["sources"]["oasst"]["epoch"]["repeats"] > 1 > report["sources"]["alpaca"]["epoch"]["repeats"]
    assert [c.id for c in data.epoch(0)] == [c.id for c in data.train]
    assert [c.id for c in data.epoch(1)] != [c.id for c in data.train]
    assert {c.id for c in data.train} & {c.id for c in data.heldout} == set()


@pytest.mark.parametrize("mixture, message", [
    ({"a": 0.5, "b": 0.6}, "shares sum to 1.1, not 1"),
    ({"a": 1.0}, "source 'b' has no share"),
    ({"a": 0.5, "b": 0.25, "c": 0.25}, "unknown source 'c'"),
    ({"a": 1.5, "b": -0.5}, "outside \\[0, 1\\]"),
])
def test_a_wrong_mixture_is_a_config_error_naming_the_fix(mixture, message):
    with pytest.raises(ValueError, match=message):
        ChatDataConfig(sources={"a": {"bundled": "x"}, "b": {"bundled": "y"}}, mixture=mixture)


def test_bundled_samples_hold_the_row_counts_licenses_md_documents():
    table = re.findall(r"^\| (\w+)\.jsonl\.gz \| (\d+) \|", (BUNDLED / "LICENSES.md").read_text(), re.MULTILINE)
    documented = {name: int(rows) for name, rows in table}
    assert set(documented) == {p.name.removesuffix(".jsonl.gz") for p in BUNDLED.glob("*.jsonl.gz")}
    for name, rows in documented.items():
        assert sum(1 for _ in read_records(name, SourceLocation(bundled=name))) == rows, name


def test_bundled_chat_samples_load_whole(tokenizer):
    config = ChatDataConfig(sources={name: {"bundled": name} for name in BUNDLED_CHAT}, max_length=16384, heldout_fraction=0)
    data = load_conversations(config, tokenizer)
    report = data.report()["sources"]
    assert {name: source["read"] for name, source in report.items()} == {
        "sft_oasst_en100": 100, "sft_self_instruct_user_oriented": 252, "sft_self_instruct_seed_tasks": 175,
        "sft_llamafactory_alpaca_en_demo": 999, "sft_llamafactory_glaive_toolcall_en_demo": 300}
    assert all(sum(source["dropped"].values()) == 0 for source in report.values())
    tool_turns = [t for c in data.train_by_source["sft_llamafactory_glaive_toolcall_en_demo"] for t in c.messages]
    assert {"tool_call", "tool"} <= {t["role"] for t in tool_turns}
    sample = data.train[0]
    assert sample.record() == {"messages": sample.messages}
    assert len(assistant_mask(sample.messages, tokenizer).input_ids) == sample.num_tokens


def test_an_unreachable_hub_source_is_one_line_naming_the_source_and_the_fix(tokenizer, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = ChatDataConfig(sources={"smoltalk": {"hf": "HuggingFaceTB/smoltalk", "hf_config": "all"}})
    with pytest.raises(SmollabError) as err:
        load_conversations(config, tokenizer)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("data.sources.smoltalk: the Hugging Face hub is unreachable")
    assert "HuggingFaceTB/smoltalk" in message and "data.sources.smoltalk.files" in message


def test_a_source_left_with_nothing_to_train_on_is_an_error_not_an_empty_run(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "bad.jsonl", BROKEN["empty_turn"] + BROKEN["unknown_role"])
    with pytest.raises(SmollabError, match=r"data.sources.bad: none of its 2 records is left for training .*empty_turn: 1"):
        load_conversations(ChatDataConfig(sources={"bad": {"files": [str(path)]}}), tokenizer)
    with pytest.raises(SmollabError, match="no bundled sample 'nope'; use one of .*sft_oasst_en100"):
        load_conversations(ChatDataConfig(sources={"x": {"bundled": "nope"}}), tokenizer)
