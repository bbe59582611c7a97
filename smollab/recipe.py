"""The recipe: one YAML file, validated by this pydantic schema, is the single source of configuration.

Every default lives here and nowhere else. Command-line overrides (``optim.lr=3e-4``,
``stages.0.mixture.web=0.6``) are applied to the raw YAML tree *before* validation, so they pass
through exactly the same checks as the file. Validation failures become one ``SmollabError`` line
naming the file, the dotted field and the fix. Token counts accept YAML-friendly strings
(``6e12``, ``11T``, ``75B``) and stage boundaries may be relative (``+75e9``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, Field, ValidationError, model_validator

from smollab.curate.config import CurateConfig
from smollab.errors import SmollabError
from smollab.executors import ExecutorConfig
from smollab.llm import HttpConfig
from smollab.mix.config import RebalanceConfig, RulesPolicy, check_rebalance
from smollab.schema import Strict

_SUFFIX = {"K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}


def parse_count(value: Any) -> Any:
    """``2_000_000``, ``2e6``, ``"2e6"`` and ``"2M"`` all mean two million; ``"+75e9"`` stays relative."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return value
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        if text.startswith("+"):
            return text
        match = re.fullmatch(r"([0-9.eE+-]+)\s*([KMBGT]?)", text)
        if not match:
            return value
        number = float(match.group(1)) * _SUFFIX.get(match.group(2), 1)
    else:
        number = float(value)
    return int(number) if math.isfinite(number) and number == int(number) else value


TokenCount = Annotated[int, BeforeValidator(parse_count)]


class ModelConfig(Strict):
    """A preset, optionally with field overrides, or real weights to continue from."""

    preset: str | None = Field("tiny", description="architecture when init_from is not set: smollm2-135m, smollm2-360m, "
                               "smollm2-1.7b, tiny or micro (`smollab presets`)")
    init_from: str | None = Field(None, description="HF dir | hub id | .gguf | run dir | smollm2-135m-instruct")
    num_hidden_layers: int | None = Field(None, description="decoder blocks; replaces the preset's value (not applied with init_from)")
    hidden_size: int | None = Field(None, description="model width; replaces the preset's value (not applied with init_from)")
    num_attention_heads: int | None = Field(None, description="query heads; replaces the preset's value (not applied with init_from)")
    num_key_value_heads: int | None = Field(None, description="key/value heads (GQA); replaces the preset's value (not applied with init_from)")
    intermediate_size: int | None = Field(None, description="SwiGLU hidden size; replaces the preset's value (not applied with init_from)")
    max_position_embeddings: int | None = Field(None, description="positions; replaces the preset's value (not applied with init_from)")
    rope_theta: float | None = Field(None, description="RoPE base; replaces the preset's value (not applied with init_from)")
    rms_norm_eps: float | None = Field(None, description="RMSNorm epsilon; replaces the preset's value (not applied with init_from)")
    initializer_range: float | None = Field(None, description="std of the initial weights; replaces the preset's value (not applied with init_from)")
    tie_word_embeddings: bool | None = Field(None, description="share the embedding and LM-head weights; replaces the preset's value (not applied with init_from)")


class TokenizerTrainConfig(Strict):
    vocab_size: int = Field(8192, ge=512, description="BPE vocabulary, SmolLM2's special tokens included")
    sources: list[str] | None = Field(None, description="sources to train on (default: all)")
    max_docs_per_source: int = Field(2000, ge=1, description="documents read from each source to train on")


class TokenizerConfig(Strict):
    """``source``: ``smollm2`` (bundled), an HF directory or a hub id; or ``train`` a BPE per run."""

    source: str = Field("smollm2", description="smollm2 (the bundled SmolLM2 tokenizer), an HF tokenizer directory or "
                        "a hub id; not read when train is set")
    train: TokenizerTrainConfig | None = Field(None, description="train a byte-level BPE once, under <out>/tokenizer")


class SourceConfig(Strict):
    """Where one source's documents are; exactly one of ``hf``, ``files``, ``bundled``."""

    hf: str | None = Field(None, description="HF dataset id, streamed with `datasets`")
    hf_config: str | None = Field(None, description="hf: the dataset's configuration (subset)")
    split: str = Field("train", description="hf: the split read")
    files: list[str] | None = Field(None, description="local globs: .jsonl, .jsonl.gz, .parquet")
    bundled: str | None = Field(None, description="name of a sample in smollab/assets/pretrain")
    text: str = Field("text", description="record field holding the text")
    template: str | None = Field(None, description="format string over record fields, e.g. '{question}\\n{answer}'")
    text_join: str | None = Field(None, description="join a text field that is a list of strings with this; None items are dropped")
    where: dict[str, str | int | float | bool | list[str | int | float | bool]] | None = Field(
        None, description="keep only records whose dotted field equals the value (or is in the list)"
    )
    limit: int | None = Field(None, ge=1, description="read at most this many documents")
    min_doc_tokens: int | None = Field(None, ge=1, description="keep only documents of at least this many tokens "
                                       "(long-context sources); the others are counted as too_short")
    max_epochs: float = Field(4.0, gt=0, description="warn when the sampler repeats the source more")

    @model_validator(mode="after")
    def _one_location(self) -> SourceConfig:
        given = [k for k in ("hf", "files", "bundled") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of hf, files, bundled (got {given or 'none'})")
        if self.text_join is not None and self.template is not None:
            raise ValueError("text_join joins the list in the text field; a template formats fields itself, drop one of them")
        return self


class TokenizeExecutorConfig(ExecutorConfig):
    """Curation's executor block, for ``smollab tokenize``: by default one task per input file, on every core."""

    tasks: int | None = Field(None, ge=1, description="tasks per source (default: one per input file; "
                              "a source with `limit` is one task, a hub source one unless set)")
    workers: int | None = Field(None, ge=1, description="local and ray: tasks run at once "
                                "(`--workers` wins; neither given, `smollab tokenize` uses every CPU core)")


class DataConfig(Strict):
    sources: dict[str, SourceConfig] = Field(description="name → where its documents are; stages' mixtures name them")
    eos: str = Field("<|endoftext|>", description="token written between documents")
    shards_dir: str | None = Field(None, description="default: <out>/shards")
    executor: TokenizeExecutorConfig = Field(TokenizeExecutorConfig(), description="where `smollab tokenize` runs its tasks")


class StageConfig(Strict):
    name: str = Field(description="logged on every step")
    until_tokens: Annotated[int | str, BeforeValidator(parse_count)] = Field(
        description="token count at which the stage ends, above the previous stage's, or '+N' after it; "
        "a step belongs to the stage holding its first token")
    mixture: dict[str, float] = Field(description="source → token share; shares ≥ 0 summing to 1")
    seq_len: int | None = Field(None, ge=8, description="default: batch.seq_len; a longer one extends the context "
                                "(the model's positions grow to it from this stage on)")
    rope_theta: float | None = Field(None, gt=0, description="change RoPE θ from this stage on")
    rebalance: RebalanceConfig | None = Field(
        None, description="rules on the evaluation before this stage, or online data mixing in it (docs/mixing.md)")


class OptimConfig(Strict):
    lr: float = Field(3e-3, gt=0, description="peak learning rate (AdamW, fused where available)")
    betas: tuple[float, float] = Field((0.9, 0.95), description="AdamW β1, β2")
    eps: float = Field(1e-8, description="AdamW ε")
    weight_decay: float = Field(0.01, description="AdamW weight decay, on every parameter")
    clip: float | None = Field(1.0, description="global grad-norm clip; null disables")


class DecayConfig(Strict):
    fraction: float = Field(0.2, ge=0, le=1, description="share of total tokens spent decaying")
    shape: Literal["linear", "1-sqrt", "cosine"] = Field("linear", description="how the LR falls from its peak to `to`")
    to: float = Field(0.0, ge=0, description="final learning rate")


class ScheduleConfig(Strict):
    warmup_steps: int = Field(2000, ge=0, description="steps of linear warmup to the peak LR")
    decay: DecayConfig = Field(DecayConfig(), description="WSD: the decay over the last steps")


class BatchConfig(Strict):
    seq_len: int = Field(2048, ge=8, description="tokens per training sequence (a stage's seq_len overrides it)")
    tokens_per_step: TokenCount = Field(1_048_576, description="tokens per optimizer step over all ranks; divisible by "
                                        "seq_len × micro_batch × ranks (gradient accumulation makes up the rest)")
    micro_batch: int = Field(8, ge=1, description="sequences per forward pass per rank")


class CheckpointConfig(Strict):
    every_tokens: TokenCount | None = Field(None, description="default: at the end of each stage")
    keep: int = Field(3, ge=1, description="newest checkpoints kept")


class HeldoutConfig(Strict):
    """A slice at the end of each source's shards that is never trained on; its loss per source is
    measured at every checkpoint (the signal rebalancing reads at toy scale, where benchmarks sit at chance)."""

    tokens: TokenCount = Field(8192, ge=1, description="tokens held out per source")
    batch_size: int = Field(8, ge=1, description="held-out windows per forward pass, across sources")
    sources: list[str] | None = Field(None, description="sources scored besides those training reads: runs whose "
                                      "mixtures differ (anneals, sweeps) then compare on the same held-out sets")


class JudgeConfig(HttpConfig):
    """The OpenAI-compatible server that grades ``mt_bench`` (``smollab eval --judge-url``), with FastChat's
    single-answer grading settings by default: GPT-4, temperature 0, 2,048 tokens. Without one, mt_bench is skipped."""

    base_url: str = Field(description="judge server's /v1 root, e.g. http://127.0.0.1:8000/v1 (vLLM)")
    model: str = Field("gpt-4", description="judge model name the server expects (FastChat: gpt-4)")
    max_tokens: int = Field(2048, ge=1, description="judgement length (FastChat: 2048)")


class BenchmarksConfig(Strict):
    """Benchmarks scored in the loop: the fields pretraining's ``eval`` and post-training's share."""

    tasks: list[str] = Field([], description="task or group names scored in the loop (`smollab eval --help`)")
    limit: int | None = Field(100, ge=1, description="first N rows of each task; null: all")
    batch_size: int = Field(8, ge=1, description="evaluation batch size")
    allow_unisolated_code: bool = Field(False, description="run generated code (humaneval) where the sandbox cannot "
                                        "cut it off the network; refused by default")
    judge: JudgeConfig | None = Field(None, description="server grading mt_bench; null: $SMOLLAB_JUDGE_URL if set, "
                                      "else mt_bench is skipped")


class EvalConfig(BenchmarksConfig):
    heldout: HeldoutConfig | None = Field(None, description="held-out loss per source at each checkpoint")


class ProfileWindow(Strict):
    start_step: int = Field(ge=0, description="first profiled step (after compilation warm-up)")
    steps: int = Field(2, ge=1, description="steps profiled")


class SpikeGuardConfig(Strict):
    """A step whose loss is ``sigmas`` standard deviations above the mean of the last ``window`` steps of its
    stage, or whose loss or grad-norm is not finite, is undone: back to the last checkpoint, its samples skipped."""

    window: int = Field(50, ge=2, description="steps of loss history the mean and deviation are taken over")
    sigmas: float = Field(6.0, gt=0, description="how far above the rolling mean a loss is a spike")
    min_history: int = Field(10, ge=2, description="steps of the stage seen before losses are judged (non-finite ones always are)")
    max_rewinds: int = Field(3, ge=0, description="rewinds in a row before training gives up with an error")

    @model_validator(mode="after")
    def _history_fits(self) -> SpikeGuardConfig:
        if self.min_history > self.window:
            raise ValueError(f"train.spike_guard.min_history: {self.min_history} exceeds window {self.window}; "
                             "the window holds the history, so lower min_history or raise window")
        return self


class TrainConfig(Strict):
    seed: int = Field(8, description="initial weights and the data order derive from it")
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto: bf16 where the device multiplies it "
                                                       "natively (CUDA, CPUs with AVX512-BF16 or AMX), else fp32 (docs/gpu.md)")
    compile: bool = Field(False, description="torch.compile the model with its loss (one process) or each decoder "
                          "block (under FSDP2)")
    activation_checkpointing: bool = Field(False, description="recompute each decoder block's activations in "
                                           "backward: about a third more compute for a fraction of the activation "
                                           "memory, so larger micro-batches fit")
    deterministic: Literal["auto", True, False] = Field("auto", description="run-to-run reproducible kernels: auto is on "
                                                        "for CPUs, off for GPUs; true on a GPU is strict (docs/gpu.md)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: the first CUDA GPU torch sees, else the CPU")
    log_every: int = Field(1, ge=1, description="a log.jsonl line every N steps")
    profile: ProfileWindow | None = Field(None, description="torch.profiler over a window of steps, written under "
                                          "<out>/profile")
    spike_guard: SpikeGuardConfig | None = Field(SpikeGuardConfig(), description="rewind and skip loss spikes; null disables")


class AnnealConfig(Strict):
    """Branch from a checkpoint of another run: its weights (and AdamW moments) start this run.

    ``smollab anneal`` writes this section together with the schedule that decays from the parent's
    LR at ``step``; a recipe may also state it by hand. It only matters when the run starts: a
    resumed child continues from its own checkpoints."""

    from_run: str = Field(description="the parent run directory")
    step: int | None = Field(None, ge=1, description="the parent checkpoint's step; default its newest")
    optimizer: bool = Field(True, description="start from the parent's AdamW moments; false: fresh ones")


class Recipe(Strict):
    name: str = Field(description="run name")
    out: str | None = Field(None, description="run directory; default runs/<name>")
    model: ModelConfig = ModelConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    data: DataConfig
    stages: list[StageConfig] = Field(min_length=1, description="trained in order, each up to its until_tokens")
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    batch: BatchConfig = BatchConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    eval: EvalConfig = EvalConfig()
    train: TrainConfig = TrainConfig()
    curate: CurateConfig | None = Field(None, description="the curation pipeline `smollab curate` runs")
    anneal: AnnealConfig | None = Field(None, description="start from a checkpoint of another run (smollab anneal)")

    @model_validator(mode="after")
    def _check_stages(self) -> Recipe:
        previous = 0
        for i, stage in enumerate(self.stages):
            boundary = stage.until_tokens
            if isinstance(boundary, str):
                relative = parse_count(boundary[1:])
                if not isinstance(relative, int):
                    raise ValueError(f"stages.{i}.until_tokens: cannot read '{boundary}'; write e.g. 6e12 or +75e9")
                if relative <= 0:
                    raise ValueError(
                        f"stages.{i}.until_tokens: '{boundary}' adds {relative:,} tokens to the previous boundary "
                        f"{previous:,}; a relative boundary must add a positive count, e.g. +75e9"
                    )
                boundary = stage.until_tokens = previous + relative
            if boundary <= previous:
                raise ValueError(
                    f"stages.{i}.until_tokens: {boundary:,} is not above the previous boundary {previous:,}; "
                    "stage boundaries are absolute token counts and must increase"
                )
            previous = boundary
            _check_mixture(f"stages.{i}.mixture", stage.mixture, self.data.sources)
            if stage.rebalance is not None:
                self._check_rebalance(i, stage)
            seq_len = stage.seq_len or self.batch.seq_len
            per_micro = seq_len * self.batch.micro_batch
            if self.batch.tokens_per_step % per_micro:
                raise ValueError(
                    f"batch.tokens_per_step: {self.batch.tokens_per_step:,} is not divisible by seq_len × micro_batch "
                    f"= {seq_len} × {self.batch.micro_batch}; pick a multiple of {per_micro:,}"
                )
        return self

    @model_validator(mode="after")
    def _check_heldout_sources(self) -> Recipe:
        for name in (self.eval.heldout.sources or []) if self.eval.heldout else []:
            if name not in self.data.sources:
                raise ValueError(f"eval.heldout.sources: unknown source '{name}'; use names from data.sources "
                                 f"({', '.join(self.data.sources)})")
        return self

    def _check_rebalance(self, i: int, stage: StageConfig) -> None:
        if i == 0 and isinstance(stage.rebalance, RulesPolicy):
            raise ValueError("stages.0.rebalance: rules read the evaluation at the end of the previous stage and "
                             "stage 0 has none; move the rules to a later stage, or use policy: odm")
        from smollab.eval.tasks import GROUPS  # task groups expand as `smollab eval` expands them

        tasks = [task for name in self.eval.tasks for task in GROUPS.get(name, [name])]
        check_rebalance(f"stages.{i}.rebalance", stage.rebalance, set(stage.mixture), set(self.data.sources),
                        tasks, self.eval.heldout is not None)

    @property
    def total_tokens(self) -> int:
        return self.stages[-1].until_tokens

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"runs/{self.name}")

    def check_out_dir(self) -> None:
        """The run directory may be missing (it is created) but not a file."""
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise SmollabError(f"--out {self.out_dir} is a file, not a directory; give a directory path for the run")

    @property
    def shards_dir(self) -> Path:
        return Path(self.data.shards_dir) if self.data.shards_dir else self.out_dir / "shards"


def _check_mixture(where: str, mixture: dict[str, float], sources: dict[str, SourceConfig]) -> None:
    for name, share in mixture.items():
        if name not in sources:
            raise ValueError(f"{where}: unknown source '{name}'; define it under data.sources or fix the name ({', '.join(sources)})")
        if not math.isfinite(share) or share < 0:
            what = "is negative" if share < 0 else "is not a finite number"
            raise ValueError(f"{where}.{name}: share {share} {what}; shares are token fractions in [0, 1]")
    total = sum(mixture.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"{where}: shares sum to {total:g}, not 1; scale them so they add up to 1")


class _RecipeLoader(yaml.SafeLoader):
    """YAML that keeps ``+N`` as written: YAML reads ``+75000`` as the integer 75000, which would turn a
    relative stage boundary into an absolute one; pydantic still reads the string as a number elsewhere."""


def _signed_as_text(constructor):
    def construct(loader, node):
        return node.value if node.value.startswith("+") else constructor(loader, node)
    return construct


_RecipeLoader.add_constructor("tag:yaml.org,2002:int", _signed_as_text(yaml.SafeLoader.construct_yaml_int))
_RecipeLoader.add_constructor("tag:yaml.org,2002:float", _signed_as_text(yaml.SafeLoader.construct_yaml_float))


def parse_yaml(text: str):
    return yaml.load(text, Loader=_RecipeLoader)


def apply_overrides(tree: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.0.c=value`` overrides to a raw YAML tree (values parsed as YAML scalars)."""
    for item in overrides:
        if "=" not in item:
            raise SmollabError(f"override '{item}' has no '='; write it as key.path=value, e.g. optim.lr=3e-4")
        path, raw = item.split("=", 1)
        keys = path.split(".")
        node: Any = tree
        for depth, key in enumerate(keys[:-1]):
            node = _child(node, key, ".".join(keys[: depth + 1]), create=True)
        last = keys[-1]
        value = parse_yaml(raw)
        if isinstance(node, list):
            node[_index(node, last, path)] = value
        else:
            node[last] = value
    return tree


def _index(node: list, key: str, path: str) -> int:
    if not key.isdigit() or int(key) >= len(node):
        raise SmollabError(f"override '{path}': '{key}' is not an index of a list of {len(node)}; use 0..{len(node) - 1}")
    return int(key)


def _child(node: Any, key: str, path: str, create: bool) -> Any:
    if isinstance(node, list):
        return node[_index(node, key, path)]
    if not isinstance(node, dict):
        raise SmollabError(f"override '{path}': the parent is a value, not a section; check the dotted path")
    if key not in node or node[key] is None:
        node[key] = {}
    return node[key]


def format_validation_error(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    parts = [str(part) for part in first["loc"]]
    # a discriminated union (rebalance) puts its tag into the path: stages.1.rebalance.rules.rules.0 → …rebalance.rules.0
    parts = [p for i, p in enumerate(parts) if not (i and parts[i - 1] == "rebalance" and p in ("rules", "odm"))]
    loc = ".".join(parts)
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field; check its spelling against the recipe reference (docs/recipe-reference.md)"
    elif first["type"] == "missing":
        message = "required field is missing; add it"
    # Cross-field checks carry their own dotted location in the message.
    return f"{source}: {message}" if not loc or re.match(r"[a-z_]+\.\S+:", message) else f"{source}: {loc}: {message}"


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a recipe; any problem is one ``SmollabError`` line."""
    path = Path(path)
    tree = read_tree(path, "name, data, stages")
    apply_overrides(tree, overrides or [])
    return validate_tree(tree, str(path))


def read_tree(path: Path, sections: str, example: str = "recipes/") -> dict:
    """The raw YAML mapping of a recipe file; a missing, unreadable or malformed file is one SmollabError line."""
    if not path.exists():
        raise SmollabError(f"recipe {path} does not exist; pass the path of a YAML recipe (see {example})")
    if not path.is_file():
        raise SmollabError(f"recipe {path} is a directory, not a file; pass the path of a YAML recipe (see {example})")
    try:
        tree = parse_yaml(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise SmollabError(f"{path}: byte {err.start} is not UTF-8 text; a recipe is a UTF-8 YAML file, re-save it as UTF-8") from None
    except OSError as err:
        raise SmollabError(f"recipe {path} cannot be read ({err.strerror}); check its permissions") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise SmollabError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)}); fix the syntax") from None
    if not isinstance(tree, dict):
        raise SmollabError(f"{path}: a recipe is a YAML mapping with {sections}; found {type(tree).__name__}")
    return tree


def validate_tree(tree: dict, source: str = "recipe") -> Recipe:
    try:
        return Recipe.model_validate(tree)
    except ValidationError as err:
        raise SmollabError(format_validation_error(source, err)) from None


def dump_recipe(recipe: Recipe, path: Path) -> None:
    path.write_text(yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False))
