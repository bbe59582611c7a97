"""`smollab synth`: MagPie prompts are the chat template cut at a user turn; every constraint kind is one IFEval's
checkers read; drawn constraints never conflict; synthetic records are ones `smollab sft` reads; bad replies,
failed constraints, contamination and duplicates are dropped and counted; a rerun asks the model nothing."""

import json
import random

import pytest
import torch
import typer
import yaml
from transformers import AutoTokenizer
from typer.testing import CliRunner

from smollab.curate.decontam import NGramIndex
from smollab.errors import SmollabError
from smollab.eval.tasks import TASKS
from smollab.paths import ASSETS
from smollab.post.conversations import ChatDataConfig, load_conversations
from smollab.post.synth.cli import synth
from smollab.post.synth.config import SynthRecipe, load_synth_recipe
from smollab.post.synth.constraints import CATALOGUE, CONFLICTS, SEED_TASKS, Constraint, conflicts, draw
from smollab.post.synth.magpie import query_prompt
from smollab.post.synth.records import eval_items
from smollab.post.synth.rewrite import clip
from smollab.post.synth.run import run_synth
from smollab.post.template import with_chat_template
from tests.conftest import REPO
from tests.eval.conftest import tiny_llama
from tests.openai_stub import ScriptedServer

LLAMA3 = ("{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] + "
          "'<|eot_id|>' }}{% endfor %}")
IFEVAL_PROMPT = TASKS["ifeval"].text_of(next(iter(TASKS["ifeval"].docs())))[0]


@pytest.fixture(scope="module")
def tokenizer():
    return with_chat_template(AutoTokenizer.from_pretrained(ASSETS / "tokenizer" / "smollm2"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer):
    """A tiny random Llama that ends its turn after a few tokens, or at once, or not within 16: every embedding
    shares one direction, <|im_end|>'s a little more of it, so its logit stands a little above the rest."""
    model = tiny_llama(tokenizer)
    with torch.no_grad():
        embeddings = model.model.embed_tokens.weight  # tied: the output layer too
        embeddings[:, 0] = 1.0
        embeddings[tokenizer.eos_token_id, 0] = 1.9
    path = tmp_path_factory.mktemp("ending-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def local_recipe(model_dir, out, **synth) -> SynthRecipe:
    tree = {"name": "test-synth", "out": str(out), "synth": {
        "llm": {"backend": "local", "model": str(model_dir), "batch_size": 4},
        "magpie": {"n": 8, "turns": 2, "query": {"max_tokens": 16}, "answer": {"max_tokens": 16}},
        "constraints": {"n": 6, "max_constraints": 2, "answer": {"max_tokens": 16}},
        "rewrite": {"n": 6, "max_doc_chars": 300, "summary_max_tokens": 16, "rewrite_max_tokens": 16},
        "decontam": {"tasks": ["ifeval"]}, **synth}}
    return SynthRecipe.model_validate(tree)


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def reads_with_no_drops(out, tokenizer) -> int:
    """Conversations `smollab sft` loads from synth.jsonl; fails if it drops any."""
    config = ChatDataConfig(sources={"synth": {"files": [str(out / "synth.jsonl")]}}, heldout_fraction=0.0)
    data = load_conversations(config, tokenizer)
    report = data.report()["sources"]["synth"]
    assert sum(report["dropped"].values()) == 0, report["examples"]
    return report["read"]


# ---- MagPie's pre-query prompt ----------------------------------------------------------------------------

def test_pre_query_prompt_is_the_chat_template_cut_where_the_user_turn_begins():
    system = {"role": "system", "content": "You write short answers."}
    assert query_prompt([system]) == "<|im_start|>system\nYou write short answers.<|im_end|>\n<|im_start|>user\n"
    history = [system, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    assert query_prompt(history).endswith("<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n")
    assert query_prompt([system], LLAMA3) == ("<|start_header_id|>system<|end_header_id|>\n\nYou write short "
                                              "answers.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n")


# ---- the constraint catalogue --------------------------------------------------------------------------------

def _count(k, number, relation, unit):
    target = k[number]
    passing, failing = (target, target - 1) if k[relation] == "at least" else (target - 1, target)
    return unit(passing), unit(failing)


def _paragraphs(k, first):
    parts = ["Some words here."] * k["num_paragraphs"]
    parts[k["nth_paragraph"] - 1] = f"{first} the rest of it."
    return "\n\n".join(parts)


FOREIGN = {"fr": "Le petit chat dort tranquillement sur le canapé pendant que la pluie tombe doucement sur la ville.",
           "de": "Die kleine Katze schläft ruhig auf dem Sofa, während draußen der Regen leise auf die Stadt fällt.",
           "es": "El pequeño gato duerme tranquilamente en el sofá mientras la lluvia cae suavemente sobre la ciudad.",
           "it": "Il piccolo gatto dorme tranquillamente sul divano mentre la pioggia cade dolcemente sulla città.",
           "pt": "O pequeno gato dorme tranquilamente no sofá enquanto a chuva cai suavemente sobre a cidade."}
# Per instruction id: kwargs → (a response that follows it, one that does not), written by hand.
RESPONSES = {
    "change_case:capital_word_frequency": lambda k: _count(k, "capital_frequency", "capital_relation",
                                                           lambda n: " ".join(["LOUD"] * n + ["quiet", "words."])),
    "change_case:english_capital": lambda k: ("THIS REPLY IS WRITTEN ENTIRELY IN CAPITAL LETTERS ABOUT THE WEATHER.",
                                              "This reply is not in capitals."),
    "change_case:english_lowercase": lambda k: ("this reply is written in lowercase letters about the weather today.",
                                                "This Reply Has Capitals."),
    "combination:repeat_prompt": lambda k: (f"{k['prompt_to_repeat']} Here is my answer.",
                                            f"Here is my answer. {k['prompt_to_repeat']}"),
    "combination:two_responses": lambda k: ("The first version.\n******\nThe second version.", "Only one version."),
    "detectable_content:number_placeholders": lambda k: (
        " ".join(f"[slot {i}]" for i in range(k["num_placeholders"])),
        "Only " + " ".join(f"[slot {i}]" for i in range(k["num_placeholders"] - 1))),
    "detectable_content:postscript": lambda k: (f"The main text.\n\n{k['postscript_marker']} One more note.",
                                                "The main text, and nothing after it."),
    "detectable_format:json_format": lambda k: ('```json\n{"title": "Notes", "items": [1, 2]}\n```', "title: Notes"),
    "detectable_format:multiple_sections": lambda k: tuple(
        "\n".join(f"{k['section_spliter']} {i}\nSome text." for i in range(1, n + 1))
        for n in (k["num_sections"], k["num_sections"] - 1)),
    "detectable_format:number_bullet_lists": lambda k: tuple(
        "A list:\n" + "\n".join("* an item" for _ in range(n)) for n in (k["num_bullets"], k["num_bullets"] + 1)),
    "detectable_format:number_highlighted_sections": lambda k: (
        " ".join("*a key idea*" for _ in range(k["num_highlights"])), "No emphasis anywhere."),
    "detectable_format:title": lambda k: ("<<Notes from the Harbor>>\nThe body.", "Notes from the Harbor\nThe body."),
    "keywords:existence": lambda k: (" and ".join(k["keywords"]) + ".", "Nothing relevant is said here."),
    "keywords:forbidden_words": lambda k: ("Nothing relevant is said here.",
                                           f"It mentions {k['forbidden_words'][-1]}."),
    "keywords:frequency": lambda k: _count(k, "frequency", "relation", lambda n: " ".join([k["keyword"]] * n) + "."),
    "keywords:letter_frequency": lambda k: _count(k, "let_frequency", "let_relation",
                                                  lambda n: " ".join([k["letter"]] * n)),
    "language:response_language": lambda k: (FOREIGN[k["language"]],
                                             "The small cat sleeps quietly on the sofa while the rain falls softly."),
    "length_constraints:nth_paragraph_first_word": lambda k: (_paragraphs(k, k["first_word"].capitalize()),
                                                              _paragraphs(k, "Elsewhere")),
    "length_constraints:number_paragraphs": lambda k: tuple(
        "\n***\n".join(["A paragraph."] * n) for n in (k["num_paragraphs"], k["num_paragraphs"] + 1)),
    "length_constraints:number_sentences": lambda k: _count(k, "num_sentences", "relation",
                                                            lambda n: " ".join(["This is a sentence."] * n)),
    "length_constraints:number_words": lambda k: _count(k, "num_words", "relation", lambda n: " ".join(["word"] * n)),
    "punctuation:no_comma": lambda k: ("No commas appear in this reply.", "One, two and three."),
    "startend:end_checker": lambda k: (f"The body of the reply. {k['end_phrase']}", f"{k['end_phrase']} The body."),
    "startend:quotation": lambda k: ('"The whole reply is quoted."', "The reply is not quoted."),
}


def test_every_catalogue_kind_has_handwritten_responses():
    assert set(RESPONSES) == set(CATALOGUE)


@pytest.mark.parametrize("kind", sorted(CATALOGUE))
def test_checkers_accept_and_reject_handwritten_responses_for_the_drawn_kwargs(kind):
    for seed in range(8):
        kwargs = CATALOGUE[kind].draw(random.Random(seed), SEED_TASKS[seed])
        constraint = Constraint(kind, kwargs)
        passing, failing = RESPONSES[kind](kwargs)
        assert constraint.followed_by(passing), (kwargs, passing)
        assert not constraint.followed_by(failing), (kwargs, failing)
        assert constraint.text.strip()


def test_drawn_constraint_sets_never_hold_a_conflicting_pair():
    sizes = set()
    for seed in range(3000):
        drawn = draw(random.Random(seed), "Write a poem about the sea.", 3)
        ids = [c.id for c in drawn]
        sizes.add(len(ids))
        assert len(set(ids)) == len(ids)
        assert not any(conflicts(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]), ids
    assert sizes == {1, 2, 3}


def test_conflict_table_names_catalogue_ids_in_distinct_pairs():
    assert all(len(pair) == 2 and pair <= set(CATALOGUE) for pair in CONFLICTS)
    assert conflicts("change_case:english_capital", "change_case:english_lowercase")
    assert conflicts("detectable_format:number_bullet_lists", "detectable_format:json_format")


def test_constraint_wordings_and_seed_tasks_share_no_10_gram_with_ifeval():
    index = NGramIndex(eval_items(["ifeval"]), 10)
    texts = list(SEED_TASKS) + [CATALOGUE[kind].text(CATALOGUE[kind].draw(random.Random(seed), SEED_TASKS[0]))
                                for kind in CATALOGUE for seed in range(10)]
    assert [t for t in texts if index.match(t)] == []
    assert index.match(IFEVAL_PROMPT)  # the index itself works


def test_documents_are_cut_at_a_sentence_end():
    text = "First sentence here. Second sentence is longer. Third one."
    assert clip(text, 50) == "First sentence here. Second sentence is longer."
    assert clip(text, 1000) == text


# ---- the local backend end to end ----------------------------------------------------------------------------

def test_local_synth_writes_records_sft_reads_and_a_rerun_asks_nothing(model_dir, tokenizer, tmp_path):
    recipe = local_recipe(model_dir, tmp_path / "run")
    report = run_synth(recipe)
    out = recipe.out_dir
    kept, dropped = lines(out / "synth.jsonl"), lines(out / "dropped.jsonl")
    assert kept and dropped
    assert reads_with_no_drops(out, tokenizer) == len(kept) == report["total"]["kept"]
    for name, generator in report["generators"].items():
        assert generator["kept"] + sum(generator["dropped"].values()) == generator["records"]
        assert generator["generated"] == generator["requests"] > 0 and generator["cached"] == 0
    assert report["generators"]["magpie"]["records"] == 8 and report["generators"]["rewrite"]["records"] == 6
    reasons = {record["reason"] for record in dropped}
    assert {"truncated", "empty_answer"} & reasons
    assert reasons <= {"empty_user", "empty_answer", "truncated", "duplicate"} | {
        f"constraint_failed:{kind}" for kind in CATALOGUE}
    for record in kept:
        assert record["source"] in ("magpie", "constraints", "rewrite")
        turns = record["messages"]
        assert [t["role"] for t in turns] == ["user", "assistant"] * (len(turns) // 2)
        if record["source"] == "magpie":
            assert len(turns) == 4 and record["category"]
        if record["source"] == "constraints":
            assert all(Constraint(c["id"], c["kwargs"]).followed_by(turns[1]["content"])
                       for c in record["constraints"])
    stages = [line["stage"] for line in lines(out / "log.jsonl")]
    assert stages == ["query 1", "answer 1", "query 2", "answer 2", "answer", "answer"]

    cache_lines = (out / "cache.jsonl").read_text()
    before = {name: (out / name).read_bytes() for name in ("synth.jsonl", "dropped.jsonl")}
    rerun = run_synth(recipe)
    assert (out / "cache.jsonl").read_text() == cache_lines  # no new answer
    assert {name: (out / name).read_bytes() for name in before} == before
    assert rerun["total"]["generated"] == 0 and rerun["total"]["cached"] == report["total"]["requests"]


def test_answers_cut_to_nothing_or_at_max_tokens_are_dropped_and_counted(model_dir, tmp_path):
    one_token = {"max_tokens": 1}
    recipe = local_recipe(model_dir, tmp_path / "run", magpie=None, constraints={"n": 8, "answer": one_token},
                          rewrite={"n": 4, "summary_max_tokens": 1, "rewrite_max_tokens": 1, "max_doc_chars": 300})
    report = run_synth(recipe)
    assert report["total"]["kept"] == 0 and lines(recipe.out_dir / "synth.jsonl") == []
    dropped = report["generators"]["constraints"]["dropped"]
    assert dropped["truncated"] + dropped["empty_answer"] == 8 and dropped["truncated"] > 0

    ends_at_once = {"max_tokens": 8, "stop": [""]}  # "" is found at the start of every answer
    stopped = local_recipe(model_dir, tmp_path / "stop", magpie=None, rewrite=None,
                           constraints={"n": 3, "answer": ends_at_once})
    assert run_synth(stopped)["generators"]["constraints"]["dropped"]["empty_answer"] == 3


# ---- an OpenAI-compatible server, scripted ---------------------------------------------------------------------

@pytest.fixture
def serve():
    servers = []

    def start(respond):
        servers.append(ScriptedServer(respond))
        return servers[-1]

    yield start
    for server in servers:
        server.shutdown()


def http_recipe(url, out, **synth) -> SynthRecipe:
    return SynthRecipe.model_validate({"name": "test-synth-http", "out": str(out), "synth": {
        "llm": {"backend": "http", "http": {"base_url": url, "concurrency": 1}},
        "decontam": {"tasks": ["ifeval"]}, **synth}})


def test_contaminated_duplicate_empty_and_cut_off_conversations_are_dropped(serve, tmp_path):
    queries = iter([IFEVAL_PROMPT, "How do I bake sourdough bread at home?", "how do I bake  sourdough bread at home",
                    "   ", "Name a good book about the ocean.", "What should I name my cat?"])
    answers = {"Name a good book about the ocean.": ("A long answer that never", "length"),
               "What should I name my cat?": ("An answer to: How do I bake sourdough bread at home?", "stop")}

    def respond(path, body):
        if "prompt" in body:
            assert body["prompt"].endswith("<|im_start|>user\n") and body["temperature"] == 0.8
            return next(queries), "stop"
        user = body["messages"][-1]["content"]
        return answers.get(user, (f"An answer to: {user}", "stop"))

    server = serve(respond)
    recipe = http_recipe(server.url, tmp_path / "run", magpie={"n": 6})
    report = run_synth(recipe)
    reasons = {record["id"]: record["reason"] for record in lines(recipe.out_dir / "dropped.jsonl")}
    assert reasons == {"magpie-0": "contaminated:ifeval", "magpie-2": "duplicate", "magpie-3": "empty_user",
                       "magpie-4": "truncated", "magpie-5": "duplicate"}  # 5: magpie-1's answer, word for word
    assert [r["id"] for r in lines(recipe.out_dir / "synth.jsonl")] == ["magpie-1"]
    assert report["generators"]["magpie"]["dropped"]["duplicate"] == 2
    assert "contaminated:ifeval" in (recipe.out_dir / "report.md").read_text()
    asked = len(server.bodies)
    assert asked == 6 + 5  # no answer is asked for an empty query
    assert run_synth(recipe)["total"]["generated"] == 0 and len(server.bodies) == asked


def test_constraint_answers_are_kept_only_when_ifeval_checkers_accept_them(serve, tmp_path):
    script = {}
    server = serve(lambda path, body: (script.get(body["messages"][-1]["content"], "no idea"), "stop"))
    constraints = {"n": 2, "max_constraints": 1}
    first = http_recipe(server.url, tmp_path / "probe", constraints=constraints)
    run_synth(first)
    probed = lines(first.out_dir / "synth.jsonl") + lines(first.out_dir / "dropped.jsonl")
    for record in probed:  # learn each prompt's constraint, then answer it
        (constraint,) = record["constraints"]
        passing, failing = RESPONSES[constraint["id"]](constraint["kwargs"])
        script[record["messages"][0]["content"]] = passing if record["id"] == "constraints-0" else failing
    assert len(script) == 2
    recipe = http_recipe(server.url, tmp_path / "run", constraints=constraints)
    report = run_synth(recipe)
    (kept,) = lines(recipe.out_dir / "synth.jsonl")
    (dropped,) = lines(recipe.out_dir / "dropped.jsonl")
    assert kept["id"] == "constraints-0" and dropped["id"] == "constraints-1"
    assert dropped["reason"] == f"constraint_failed:{dropped['constraints'][0]['id']}"
    assert report["generators"]["constraints"]["dropped"][dropped["reason"]] == 1


def test_magpie_tasks_for_constraints_come_from_the_task_system_prompt(serve, tmp_path):
    def respond(path, body):
        if "prompt" in body:
            assert "You are a writing assistant." in body["prompt"]
            return "Write a limerick about a teapot.", "stop"
        return "A teapot once sang.", "stop"

    server = serve(respond)
    recipe = http_recipe(server.url, tmp_path / "run", constraints={"n": 2, "tasks": "magpie"}, dedup=None)
    run_synth(recipe)
    records = lines(recipe.out_dir / "synth.jsonl") + lines(recipe.out_dir / "dropped.jsonl")
    assert {r["task"] for r in records} == {"Write a limerick about a teapot."}
    assert all(r["messages"][0]["content"].startswith("Write a limerick about a teapot.\n\n") for r in records)


# ---- the verb ------------------------------------------------------------------------------------------------

def test_dry_run_prints_the_plan_without_loading_a_model(tmp_path):
    app = typer.Typer()
    app.command()(synth)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [str(REPO / "recipes" / "demo-synth.yaml"), "--dry-run", "--out", str(out),
                                      "synth.llm.model=/no/such/model"])
    assert result.exit_code == 0, result.output
    assert "≤ 16 requests" in result.output and "constraints" in result.output and "/no/such/model" in result.output
    assert not out.exists()


def test_paper_and_demo_recipes_validate():
    demo = load_synth_recipe(REPO / "recipes" / "demo-synth.yaml", [])
    assert demo.synth.llm.backend == "local" and set(demo.synth.generators) == {"magpie", "constraints", "rewrite"}
    paper = load_synth_recipe(REPO / "recipes" / "smoltalk-synth.yaml", [])
    assert paper.synth.llm.http.model == "meta-llama/Llama-3.1-405B-Instruct-FP8"
    assert paper.synth.magpie.turns == 3 and paper.synth.decontam.n_gram == 10
    assert query_prompt([{"role": "system", "content": "S"}], paper.synth.chat_template).endswith(
        "<|start_header_id|>user<|end_header_id|>\n\n")
    qwen = load_synth_recipe(REPO / "recipes" / "smoltalk-synth.yaml", [
        "synth.magpie=null", "synth.chat_template=null", "synth.llm.http.model=Qwen/Qwen2.5-72B-Instruct"])
    assert set(qwen.synth.generators) == {"constraints", "rewrite"}


@pytest.mark.parametrize("overrides, message", [
    (["synth.magpie.turn=2"], "synth.magpie.turn: unknown field"),
    (["synth.chat_template=x"], "synth.chat_template: the local backend renders"),
    (["synth.magpie=null", "synth.constraints=null", "synth.rewrite=null"], "synth: every generator is off"),
    (["synth.rewrite.source.bundled=nope"], "synth.rewrite.source: no bundled sample 'nope'; use one of"),
    (["synth.decontam.tasks=[nope]"], "synth.decontam.tasks: unknown task 'nope'"),
])
def test_recipe_errors_are_one_line_naming_the_field(tmp_path, overrides, message):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load((REPO / "recipes" / "demo-synth.yaml").read_text())))
    with pytest.raises(SmollabError) as err:
        load_synth_recipe(path, overrides)
    assert str(err.value).startswith(f"{path}: {message}") and "\n" not in str(err.value)
