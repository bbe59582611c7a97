"""The ``curate:`` section of a recipe: every curation default lives here, documented field by field.

The section mirrors the pipeline's steps (read → filters → dedup → decontam → annotate → classifier
→ score), each optional: a step set to ``null`` is skipped. Heuristic-filter options are passed
verbatim to datatrove's filter constructors, so any knob datatrove has is reachable without
smollab re-declaring it; the cost is that a misspelt option is caught when the pipeline is built,
not at schema validation (the error still names the field). ``CurateRecipe`` validates a
curate-only YAML (``name`` + ``curate``) so users need not invent ``data``/``stages`` to curate.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from smollab.executors import ExecutorConfig
from smollab.llm import HttpConfig
from smollab.schema import Strict


class InputConfig(Strict):
    """One named input corpus; exactly one of ``files``, ``bundled``, ``hf``."""

    format: Literal["jsonl", "parquet", "hf", "html"] = Field(
        "jsonl", description="jsonl/parquet/hf: text records; html: raw pages, text extracted with trafilatura"
    )
    files: list[str] | None = Field(None, description="local globs, e.g. data/*.jsonl.gz (one datatrove reader per glob)")
    bundled: str | None = Field(None, description="a bundled sample: name of a file in smollab/assets/{pretrain,curate}")
    hf: str | None = Field(None, description="HF dataset id, read with datatrove's HuggingFaceDatasetReader")
    hf_config: str | None = Field(None, description="hf: the dataset's configuration (subset)")
    split: str = Field("train", description="hf: the split read")
    text: str | None = Field(None, description="record field holding the text (default: 'text', or 'html' for format html)")
    template: str | None = Field(None, description="format string over record fields instead of `text`, e.g. '{question}\\n{answer}'")
    id: str = Field("id", description="record field holding a document id (default: file path in the input folder + line number)")
    limit: int | None = Field(None, gt=0, description="read at most this many documents per task")
    filters: bool = Field(True, description="apply the heuristic web filters (turn off for code: they judge prose)")

    @model_validator(mode="after")
    def _one_location(self) -> InputConfig:
        given = [k for k in ("files", "bundled", "hf") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of files, bundled, hf (got {given or 'none'})")
        if (self.format == "hf") != bool(self.hf):
            raise ValueError("format 'hf' goes with an `hf:` dataset id and only with it")
        return self


class FiltersConfig(Strict):
    """datatrove's heuristic filters, in FineWeb's order; a mapping is passed as constructor kwargs, null disables."""

    gopher_repetition: dict[str, Any] | None = Field(default_factory=dict, description="GopherRepetitionFilter kwargs")
    gopher_quality: dict[str, Any] | None = Field(default_factory=dict, description="GopherQualityFilter kwargs")
    c4: dict[str, Any] | None = Field(
        default_factory=lambda: {"filter_no_terminal_punct": False},
        description="C4QualityFilter kwargs (FineWeb keeps lines without terminal punctuation)",
    )
    fineweb_quality: dict[str, Any] | None = Field(default_factory=dict, description="FineWebQualityFilter kwargs")


class DedupConfig(Strict):
    """datatrove's multi-stage MinHash (signatures → LSH buckets → clusters → filter)."""

    n_grams: int = Field(5, ge=1, description="word shingle size")
    num_buckets: int = Field(14, ge=1, description="LSH bands")
    hashes_per_bucket: int = Field(8, ge=1, description="rows per band; (1/buckets)^(1/hashes) ≈ similarity cut-off")
    seed: int = Field(1, description="seed of the MinHash hash functions")


class DecontamConfig(Strict):
    """Drop documents sharing an n-gram of words with any eval question or gold answer."""

    n_gram: int = Field(13, ge=4, description="n-gram length in lower-cased \\w+ words (SmolLM2/FineMath: 13)")
    tasks: list[str] | None = Field(None, description="eval tasks to index (default: every vendored task)")


class AnnotateConfig(Strict):
    """LLM-judge annotation of a document sample with one rubric."""

    rubric: Literal["edu", "math", "math_recall", "code"] = Field(
        "edu", description="edu: FineWeb-Edu 0-5; math: FineMath 0-5; math_recall: FineMath 0-3; code: Stack-Edu 0-5"
    )
    language: str = Field("Python", description="programming language named in the code rubric")
    sample: int = Field(100, ge=1, description="documents to annotate (per task), chosen by a seeded hash of their id")
    seed: int = Field(0, description="which documents are sampled: the smallest hashes of (seed, document id)")
    max_doc_chars: int = Field(2000, ge=100, description="documents are truncated to this many characters in the prompt")
    backend: Literal["local", "http"] = Field("local", description="local: the transformers model `model`; "
                                              "http: the OpenAI-compatible server `http`")
    model: str = Field("smollm2-135m-instruct", description="local backend: anything smollab.pretrained.load accepts")
    mode: Literal["logits", "generate"] = Field(
        "logits",
        description="local backend: logits = read the score digit's distribution after the final-line prefix "
        "(one forward pass, always parseable); generate = greedy justification + final line, parsed",
    )
    max_new_tokens: int = Field(160, ge=1, description="local backend, generate mode")
    batch_size: int = Field(4, ge=1, description="local backend: documents per forward pass")
    http: HttpConfig = Field(HttpConfig(), description="http backend: the judge's server")


class ClassifierConfig(Strict):
    """Frozen sentence-transformers embedder + linear regression head (the FineWeb-Edu recipe)."""

    pretrained: str | None = Field(None, description="directory of an already trained smollab classifier; skips annotate + training")
    embedder: str = Field(
        "all-MiniLM-L6-v2",
        description="all-MiniLM-L6-v2 (bundled, offline) or a hub id: Snowflake/snowflake-arctic-embed-m, intfloat/e5-small-v2",
    )
    prefix: str = Field("", description="text prepended before embedding (e5 models expect 'query: ')")
    max_length: int = Field(256, ge=16, description="embedder truncation in tokens (FineWeb-Edu: 512)")
    epochs: int = Field(200, ge=1, description="head training epochs (small samples need many)")
    lr: float = Field(3e-3, gt=0, description="head training: AdamW learning rate (MSE on the judge's scores)")
    weight_decay: float = Field(0.01, ge=0, description="head training: AdamW weight decay")
    batch_size: int = Field(256, ge=1, description="head training: embeddings per optimizer step")
    val_fraction: float = Field(0.2, gt=0, lt=1, description="held out, stratified by int score")
    seed: int = Field(0, description="the held-out split and the order of the head's batches")


class ScoreConfig(Strict):
    """Scoring, and what is kept of each ``int_score`` band.

    A band listed in ``keep`` keeps that fraction of its documents; any other band is kept whole at
    or above ``threshold`` and dropped below it. ``{threshold: 1, keep: {1: 0.3, 2: 0.6}}`` drops
    score 0, keeps 30 % of score 1, 60 % of score 2 and every document scoring 3 or more.
    """

    threshold: int = Field(
        3, ge=0, description="bands not listed in `keep`: kept whole if int_score ≥ threshold, else dropped (FineWeb-Edu: 3)"
    )
    keep: dict[int, float] = Field(
        default_factory=dict,
        description="int_score band → fraction of its documents kept, in [0, 1], e.g. {1: 0.3, 2: 0.6}; overrides `threshold`",
    )
    seed: int = Field(0, ge=0, description="which documents of a downsampled band are kept: a hash of (seed, document id)")
    batch_size: int = Field(64, ge=1, description="documents embedded per batch")

    @field_validator("keep", mode="before")
    @classmethod
    def _bands_and_fractions(cls, keep: Any) -> Any:
        if not isinstance(keep, dict):
            return keep
        checked = {}
        for band, fraction in keep.items():
            if isinstance(band, bool) or not str(band).isdigit():
                raise ValueError(f"band {band!r} is not an int_score; bands are whole scores 0, 1, 2, …, e.g. keep: {{1: 0.3}}")
            if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 <= fraction <= 1:
                raise ValueError(f"band {band}: keep fraction {fraction!r} is not in [0, 1]; give the share of the band to keep, e.g. 0.3")
            checked[int(band)] = float(fraction)
        return checked

    def keep_fraction(self, int_score: int) -> float:
        """The share of documents scoring ``int_score`` that are kept."""
        return self.keep.get(int_score, 1.0 if int_score >= self.threshold else 0.0)


class CurateConfig(Strict):
    """A curation pipeline: read → filters → dedup → decontam → annotate → classifier → score."""

    inputs: dict[str, InputConfig] = Field(min_length=1, description="name → corpus; the name is kept as metadata.source")
    filters: FiltersConfig | None = Field(FiltersConfig(), description="heuristic web filters; null skips the step")
    dedup: DedupConfig | None = Field(DedupConfig(), description="MinHash near-duplicate removal; null skips the step")
    decontam: DecontamConfig | None = Field(DecontamConfig(), description="n-gram decontamination against the "
                                            "evaluation sets; null skips the step")
    annotate: AnnotateConfig | None = Field(AnnotateConfig(), description="LLM-judge annotation of a sample; "
                                            "null skips the step")
    classifier: ClassifierConfig | None = Field(ClassifierConfig(), description="quality classifier trained on the "
                                                "annotations; null skips the step")
    score: ScoreConfig | None = Field(ScoreConfig(), description="score every document and keep by band; "
                                      "null skips the step")
    executor: ExecutorConfig = Field(ExecutorConfig(), description="where the datatrove stages run")
    out: str | None = Field(None, description="output directory (default: runs/<name>/curate; --out wins)")

    @model_validator(mode="after")
    def _steps_fit(self) -> CurateConfig:
        if self.score is not None and self.classifier is None:
            raise ValueError("curate.score needs curate.classifier; add one or set score: null")
        if self.classifier is not None and self.classifier.pretrained is None and self.annotate is None:
            raise ValueError("curate.classifier trains on annotations: enable curate.annotate or give classifier.pretrained")
        return self


class CurateRecipe(Strict):
    """A curate-only recipe: just a name and the ``curate:`` section."""

    name: str = Field(description="recipe name; the output directory defaults to runs/<name>/curate")
    curate: CurateConfig
