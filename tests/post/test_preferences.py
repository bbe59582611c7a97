"""Preference pairs: TRL-ready records, the shared prompt split off whole conversations, faults counted per reason."""

import json

import pytest
from transformers import AutoTokenizer

from smollab.errors import SmollabError
from smollab.paths import ASSETS
from smollab.post.preferences import PREFERENCE_REASONS, PreferenceDataConfig, load_preferences, split_shared_prompt


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(ASSETS / "tokenizer" / "smollm2")


def turns(*pairs):
    return [{"role": role, "content": content} for role, content in pairs]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def load(tmp_path, tokenizer, rows, **config):
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    return load_preferences(PreferenceDataConfig(sources={"mine": {"files": [str(path)]}}, **config), tokenizer)


def test_bundled_pairs_are_trl_records_with_one_prompt_and_differing_completions(tokenizer):
    sources = {"oasst": {"bundled": "dpo_oasst_en100"}, "demo": {"bundled": "dpo_llamafactory_dpo_en_demo", "limit": 100},
               "hh": {"bundled": "dpo_hh_rlhf_harmless_base_test", "limit": 300}}
    data = load_preferences(PreferenceDataConfig(sources=sources, heldout_fraction=0.1), tokenizer)
    report = data.report()["sources"]
    assert {name: source["read"] for name, source in report.items()} == {"oasst": 212, "demo": 100, "hh": 300}
    for source in report.values():
        assert source["read"] == source["train"] + source["heldout"] + sum(source["dropped"].values())
    assert min(source["train"] for source in report.values()) > 50
    for pair in data.train + data.heldout:
        record = pair.record()
        assert set(record) == {"prompt", "chosen", "rejected"}
        assert record["chosen"] != record["rejected"]
        assert record["prompt"] and record["prompt"][-1]["role"] == "user"
        assert record["chosen"][0]["role"] == record["rejected"][0]["role"] == "assistant"
        assert pair.prompt_tokens <= 512 and max(pair.chosen_tokens, pair.rejected_tokens) <= 1024


def test_ultrafeedback_style_whole_conversations_are_split_at_the_shared_prompt(tmp_path, tokenizer):
    question = turns(("user", "Name a prime number."))
    ultrafeedback = {"prompt": "Name a prime number.", "chosen": question + turns(("assistant", "7")),
                     "rejected": question + turns(("assistant", "8"))}
    multi_turn = {"chosen": turns(("system", "Be exact."), ("user", "2+2?"), ("assistant", "4"), ("user", "And 3+3?"),
                                  ("assistant", "6")),
                  "rejected": turns(("system", "Be exact."), ("user", "2+2?"), ("assistant", "4"), ("user", "And 3+3?"),
                                    ("assistant", "Seven."))}
    data = load(tmp_path, tokenizer, [ultrafeedback, multi_turn], heldout_fraction=0)
    first, second = sorted(data.train, key=lambda pair: len(pair.prompt))
    assert first.record() == {"prompt": question, "chosen": turns(("assistant", "7")), "rejected": turns(("assistant", "8"))}
    assert second.prompt == multi_turn["chosen"][:4]
    assert second.chosen == turns(("assistant", "6")) and second.rejected == turns(("assistant", "Seven."))
    assert split_shared_prompt(multi_turn["chosen"], multi_turn["rejected"]) == (second.prompt, second.chosen, second.rejected)


def test_broken_pairs_are_counted_per_reason(tmp_path, tokenizer):
    ask, yes, no = turns(("user", "Is water wet?")), turns(("assistant", "Yes.")), turns(("assistant", "No."))
    broken = {
        "identical_pair": [{"prompt": ask, "chosen": yes, "rejected": yes}],
        "no_prompt": [{"prompt": [], "chosen": yes, "rejected": no}, {"chosen": yes, "rejected": no}],
        "empty_turn": [{"prompt": ask, "chosen": turns(("assistant", " ")), "rejected": no}],
        "unknown_role": [{"prompt": turns(("human", "Is water wet?")), "chosen": yes, "rejected": no}],
        "not_alternating": [{"prompt": ask + yes, "chosen": ask + yes, "rejected": ask + no},
                            {"prompt": ask, "chosen": yes + yes, "rejected": no}],
        "too_long": [{"prompt": turns(("user", "why " * 600)), "chosen": yes, "rejected": no},
                     {"prompt": ask, "chosen": turns(("assistant", "because " * 1200)), "rejected": no}],
        "malformed": [{"prompt": ask, "chosen": "Yes.", "rejected": "No."}, {"prompt": ask, "rejected": no},
                      {"prompt": ask, "chosen": [], "rejected": no}],
    }
    good = [{"id": f"ok-{i}", "prompt": turns(("user", f"Is {i} even?")), "chosen": turns(("assistant", "Yes" if i % 2 == 0 else "No")),
             "rejected": turns(("assistant", "No" if i % 2 == 0 else "Yes"))} for i in range(4)]
    data = load(tmp_path, tokenizer, [row for rows in broken.values() for row in rows] + good, heldout_fraction=0)
    report = data.report()["sources"]["mine"]
    assert report["dropped"] == dict.fromkeys(PREFERENCE_REASONS, 0) | {reason: len(rows) for reason, rows in broken.items()}
    assert sorted(pair.id for pair in data.train) == [f"ok-{i}" for i in range(4)]
    examples = report["examples"]
    assert "max_prompt_length 512" in examples["too_long"][0]["detail"]
    assert "max_length 1,024" in examples["too_long"][1]["detail"]


def test_pairs_sharing_a_prompt_land_on_the_same_side_of_the_heldout_split(tmp_path, tokenizer):
    rows = [{"id": f"{i}-{j}", "prompt": turns(("user", f"Prompt {i}")), "chosen": turns(("assistant", f"good {j}")),
             "rejected": turns(("assistant", f"bad {j}"))} for i in range(40) for j in range(3)]
    data = load(tmp_path, tokenizer, rows, heldout_fraction=0.3, seed=1)
    side = {}
    for name, pairs in (("train", data.train), ("heldout", data.heldout)):
        for pair in pairs:
            side.setdefault(pair.id.split("-")[0], set()).add(name)
    assert all(len(sides) == 1 for sides in side.values())
    assert 0 < len(data.heldout) < len(rows)


def test_max_prompt_length_must_leave_room_for_a_completion():
    with pytest.raises(ValueError, match="max_prompt_length 1024 leaves no room"):
        PreferenceDataConfig(sources={"a": {"bundled": "dpo_oasst_en100"}}, max_length=1024, max_prompt_length=1024)


def test_an_unreachable_hub_preference_source_is_one_line(tokenizer, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = PreferenceDataConfig(sources={"ultrafeedback": {"hf": "HuggingFaceH4/ultrafeedback_binarized",
                                                             "split": "train_prefs"}})
    with pytest.raises(SmollabError) as err:
        load_preferences(config, tokenizer)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("data.sources.ultrafeedback: the Hugging Face hub is unreachable")
