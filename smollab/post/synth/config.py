"""The ``smollab synth`` recipe: ``name``, ``out`` and a ``synth`` section, checked like every other recipe.

``synth`` holds the one model that writes (``llm``, smollab.llm's config), the generators (``magpie``,
``constraints``, ``rewrite``; each optional, null disables it) and the screens every kept conversation
passes (``decontam``, ``dedup``). Overrides (``synth.magpie.n=8``) are applied to the raw tree before
validation and a failure is one ``SmollabError`` line, through the pretraining recipe's helpers. The
defaults are SmolTalk's where the paper or its pipeline code gives one (sampling, lengths, the 10-gram
IFEval check); the trade-off is one llm per recipe: SmolTalk wrote MagPie-Ultra with Llama-3.1-405B and
the Smol-* sets with Qwen2.5-72B, which here are two runs of two recipes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from smollab.curate.config import DecontamConfig
from smollab.errors import SmollabError
from smollab.llm import LLMConfig
from smollab.paths import ASSETS
from smollab.recipe import SourceConfig, Strict, apply_overrides, format_validation_error, read_tree

KINDS = ("summarize", "concise", "formal", "friendly")


class Sampling(Strict):
    """How one kind of turn is sampled; defaults are SmolTalk's MagPie-Ultra / Smol-Constraints settings."""

    temperature: float = Field(0.8, ge=0, description="0: greedy (SmolTalk MagPie-Ultra and Smol-Constraints: 0.8)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus mass (SmolTalk: 1.0)")
    max_tokens: int = Field(1024, ge=1, description="longest turn; one that reaches it is dropped as truncated "
                            "(SmolTalk: 1024)")
    stop: list[str] | None = Field(None, description="strings that end the turn (cut off, not kept)")

    def request(self, seed: int, **content) -> dict:
        """A smollab.llm request (``messages=`` or ``prompt=``) with this sampling and its own seed, so that
        identical prompts (MagPie's are) stay distinct requests and get distinct samples."""
        request = {**content, "max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p,
                   "seed": seed}
        return request | ({"stop": self.stop} if self.stop else {})


class Category(Strict):
    """A MagPie-Ultra task category: its system prompt steers both the query and the answer."""

    system_prompt: str = Field(min_length=1, description="system prompt of the category's conversations")
    weight: float = Field(gt=0, description="relative chance a conversation is of this category")


def _categories() -> dict[str, Category]:
    from smollab.post.synth.magpie import CATEGORIES

    return {name: Category(system_prompt=prompt, weight=weight) for name, (weight, prompt) in CATEGORIES.items()}


class MagpieConfig(Strict):
    """MagPie: the model writes the user turn itself, continuing a prompt that ends where a user turn begins."""

    n: int = Field(ge=1, description="conversations requested")
    turns: int = Field(1, ge=1, le=8, description="user/assistant exchanges per conversation (MagPie-Ultra: 3); each "
                       "later query continues the conversation so far plus a new user-turn opening")
    categories: dict[str, Category] = Field(default_factory=_categories, min_length=1, description="system prompt "
                                            "and weight per category (default: MagPie-Ultra's 11 categories and "
                                            "weights, prompts in our words)")
    query: Sampling = Field(Sampling(), description="the user turns (MagPie-Ultra: 0.8, top_p 1.0, 1024 tokens)")
    answer: Sampling = Field(Sampling(), description="the assistant turns (MagPie-Ultra: 0.8, top_p 1.0, 1024)")


class ConstraintsConfig(Strict):
    """Smol-Constraints: a task plus 1-3 verifiable IFEval constraints; kept only if IFEval's checkers accept."""

    n: int = Field(ge=1, description="prompts requested")
    tasks: Literal["seed", "magpie"] = Field("seed", description="seed: drawn from smollab's seed tasks; magpie: "
                                             "written by the model from a pre-query prompt with task_system_prompt")
    task_system_prompt: str = Field(
        "You are a writing assistant. Users ask you for short pieces of writing: emails, stories, explanations, "
        "product descriptions, letters and essays.", min_length=1,
        description="tasks: magpie: the system prompt the task queries are written under")
    max_constraints: int = Field(3, ge=1, le=3, description="constraints per prompt are drawn from 1..this")
    query: Sampling = Field(Sampling(max_tokens=256), description="tasks: magpie: the task queries")
    answer: Sampling = Field(Sampling(), description="the constrained answers (Smol-Constraints: 0.8, 1024 tokens)")


class RewriteConfig(Strict):
    """Smol-Rewrite / Smol-Summarization: real pretraining documents summarised or rewritten in a register."""

    n: int = Field(ge=1, description="rewrites requested; each takes a document and a kind")
    kinds: list[Literal[KINDS]] = Field(list(KINDS), min_length=1, description="summarize | concise | formal | "
                                        "friendly; each document gets one, drawn with the seed")
    source: SourceConfig = Field(SourceConfig(bundled="web_news_articles"), description="documents, as a pretraining "
                                 "source: bundled, files or hf (its first n documents are read)")
    max_doc_chars: int = Field(3000, ge=200, description="longer documents are cut at the last paragraph or sentence "
                               "end before this")
    temperature: float = Field(0.2, ge=0, description="SmolTalk's rewrite and summary pipelines: 0.2")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus mass")
    summary_max_tokens: int = Field(256, ge=1, description="summaries (SmolTalk: 256)")
    rewrite_max_tokens: int = Field(1024, ge=1, description="rewrites (SmolTalk: 1024)")

    @field_validator("kinds")
    @classmethod
    def _distinct(cls, kinds: list[str]) -> list[str]:
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"{kinds} names a kind twice; list each once")
        return kinds

    @field_validator("source")
    @classmethod
    def _bundled_exists(cls, source: SourceConfig) -> SourceConfig:
        samples = ASSETS / "pretrain"
        if source.bundled and not (samples / f"{source.bundled}.jsonl.gz").exists():
            available = ", ".join(sorted(p.name.removesuffix(".jsonl.gz") for p in samples.glob("*.jsonl.gz")))
            raise ValueError(f"no bundled sample '{source.bundled}'; use one of {available}")
        return source


class SynthDecontamConfig(DecontamConfig):
    n_gram: int = Field(10, ge=4, description="n-gram length in lower-cased \\w+ words (SmolLM2 checked "
                        "Smol-Constraints against IFEval with 10-grams)")

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[str] | None) -> list[str] | None:
        from smollab.eval.tasks import TASKS

        unknown = [t for t in tasks or [] if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown task {unknown[0]!r}; choose from {', '.join(TASKS)}")
        return tasks


class SynthDedupConfig(Strict):
    """Exact duplicates after normalisation (lower-cased ``\\w+`` words), across all generators."""

    user: bool = Field(True, description="drop a conversation whose user turns, together, match a kept one's")
    assistant: bool = Field(True, description="drop a conversation with an answer a kept one already has")


class SynthConfig(Strict):
    llm: LLMConfig = Field(LLMConfig(), description="the model that writes every turn (smollab.llm)")
    seed: int = Field(0, description="draws (categories, constraints, documents' kinds) and each request's seed")
    chat_template: str | None = Field(None, description="http backend: a jinja chat template for the raw prompts "
                                      "MagPie continues, in the server model's format, special tokens written "
                                      "literally; null: SmolLM2's ChatML, which the local backend always renders")
    magpie: MagpieConfig | None = Field(None, description="MagPie conversations; null: off")
    constraints: ConstraintsConfig | None = Field(None, description="constraint-following prompts; null: off")
    rewrite: RewriteConfig | None = Field(None, description="rewrites and summaries of documents; null: off")
    decontam: SynthDecontamConfig | None = Field(SynthDecontamConfig(), description="null: no decontamination")
    dedup: SynthDedupConfig | None = Field(SynthDedupConfig(), description="null: duplicates are kept")

    @model_validator(mode="after")
    def _something_to_do(self) -> SynthConfig:
        if not (self.magpie or self.constraints or self.rewrite):
            raise ValueError("every generator is off; set at least one of magpie, constraints, rewrite")
        if self.chat_template is not None and self.llm.backend == "local":
            raise ValueError("synth.chat_template: the local backend renders every prompt with SmolLM2's chat template "
                             "(smollab.llm.LocalClient); remove chat_template or use llm.backend: http")
        return self

    @property
    def generators(self) -> dict[str, MagpieConfig | ConstraintsConfig | RewriteConfig]:
        """The generators that are on, in the order they run."""
        named = {"magpie": self.magpie, "constraints": self.constraints, "rewrite": self.rewrite}
        return {name: cfg for name, cfg in named.items() if cfg is not None}


class SynthRecipe(Strict):
    name: str = Field(description="recipe name")
    out: str | None = Field(None, description="output directory; default runs/<name>")
    synth: SynthConfig

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"runs/{self.name}")


def load_synth_recipe(path: str | Path, overrides: list[str]) -> SynthRecipe:
    """Read, override and validate a synth recipe; any problem is one ``SmollabError`` line."""
    path = Path(path)
    tree = read_tree(path, "name and synth", example="recipes/demo-synth.yaml")
    apply_overrides(tree, overrides)
    try:
        return SynthRecipe.model_validate(tree)
    except ValidationError as err:
        raise SmollabError(format_validation_error(str(path), err)) from None
