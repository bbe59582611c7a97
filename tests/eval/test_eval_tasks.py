import gzip
import json
from dataclasses import replace

import pytest

from smollab.errors import SmollabError
from smollab.eval.tasks import GROUPS, TASKS, decontamination_items, expand
from smollab.eval.tasks import hellaswag, mmlu_pro, winogrande

# Row counts from shared/data/README.md, verified there by reading every file back.
EXPECTED_ROWS = {
    "hellaswag": 10042, "arc_easy": 2376, "arc_challenge": 1172, "piqa": 1838, "commonsense_qa": 1221,
    "openbookqa": 500, "winogrande": 1267, "siqa": 1954, "boolq": 3270, "mmlu_pro": 12032, "gsm8k": 1319,
    "math": 5000, "humaneval": 164, "triviaqa": 3000, "ifeval": 541, "mt_bench": 80, "lambada": 5153,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_every_vendored_task_file_loads_with_its_exact_row_count(name):
    task = TASKS[name]
    docs = task.docs()
    assert len(docs) == task.rows == EXPECTED_ROWS[name]
    assert len({d["id"] for d in docs}) == len(docs)


def test_every_task_is_registered_with_a_hub_source_and_a_licence_note():
    licences = (TASKS["arc_easy"].path.parent / "LICENSES.md").read_text()
    vendored = {name: task for name, task in TASKS.items() if name != "passkey"}  # passkey generates its rows
    assert set(vendored) == set(EXPECTED_ROWS)
    for task in vendored.values():
        assert task.hub and task.file and task.file in licences


def test_malformed_task_row_names_the_file_and_line(tmp_path):
    path = tmp_path / "arc_broken.jsonl"
    good = {"id": "a/0", "question": "q", "choices": ["x", "y"], "gold": 0}
    path.write_text(json.dumps(good) + "\n" + json.dumps({"id": "a/1", "question": "q"}) + "\n")
    task = replace(TASKS["arc_easy"], source_file=path)
    with pytest.raises(SmollabError, match=r"arc_broken.jsonl:2: row lacks field\(s\) choices, gold"):
        task.docs()
    gz = tmp_path / "bad.jsonl.gz"
    with gzip.open(gz, "wt") as handle:
        handle.write(json.dumps(good) + "\n{not json\n")
    with pytest.raises(SmollabError, match=r"bad.jsonl.gz:2: not valid JSON"):
        replace(TASKS["arc_easy"], source_file=gz).docs()


def test_hellaswag_uses_lighteval_preprocessing():
    row = {"activity_label": "Cooking", "ctx": "A man [header] cuts onions. he",
           "endings": ["chops [step] them.", "cries [title] a lot"], "label": 1}
    item = hellaswag.prompt(row)
    assert item.contexts[0] == "Cooking: A man cuts onions. He"
    assert item.continuations == [" chops them.", " cries. a lot"]
    assert item.gold == 1


def test_mmlu_pro_scores_letters_in_multiple_choice_format():
    row = TASKS["mmlu_pro"].docs()[0]
    item = mmlu_pro.prompt(row)
    assert item.continuations[:3] == [" A", " B", " C"] and len(item.continuations) == len(row["options"])
    assert item.contexts[0].startswith("The following are multiple choice questions (with answers) about ")
    assert item.contexts[0].endswith("Answer:") and "\nI. " in item.contexts[0]


def test_winogrande_scores_the_shared_continuation_under_each_option():
    item = winogrande.prompt(TASKS["winogrande"].docs()[0])
    assert item.contexts[0] != item.contexts[1]
    assert item.continuations[0] == item.continuations[1] == " always got the easier cases."


def test_groups_mirror_the_paper_lists_and_unknown_tasks_fail_clearly():
    assert [t.name for t in expand(["smollm2-instruct"])][:2] == ["ifeval", "hellaswag"]
    assert "gsm8k" in GROUPS["smollm2-base"] and "winogrande" in GROUPS["smollm2-base"]
    assert [t.name for t in expand(["arc_easy", "smollm2-base"])].count("arc_easy") == 1
    with pytest.raises(SmollabError, match="unknown task 'mmlu'"):
        expand(["mmlu"])


def test_decontamination_items_cover_questions_and_gold_answers():
    items = list(decontamination_items())
    tasks = {t for t, _, _ in items}
    assert tasks == set(TASKS) - {"passkey"}  # generated filler and numbers: nothing a corpus could contain
    gsm = [text for t, i, text in items if i == "gsm8k/test/00000"]
    assert any("Janet" in text for text in gsm) and any("#### 18" in text for text in gsm)
    arc = [text for t, i, text in items if i == "arc_challenge/test/00000"]
    assert "Planetary days will become shorter." in arc
