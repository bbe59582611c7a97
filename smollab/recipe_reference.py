"""The recipe reference, ``docs/recipe-reference.md``, rendered from the pydantic schemas themselves.

Every section and field of the four recipe kinds (pretraining, curation, post-training, synthetic
data) with its type, default, constraints and description, read from the models' field information and
class docstrings, so the page cannot drift from the code that validates recipes:
``tests/test_recipe_reference.py`` fails when the committed page differs from a fresh render.

    python -m smollab.recipe_reference > docs/recipe-reference.md

The trade-off: the page says only what the schema says. Checks that live in validators (stage
boundaries increase, exactly one of ``hf``/``files``/``bundled``) appear only where a class docstring or
a description states them, and the reasons behind the defaults stay in the hand-written guides
(docs/recipe.md and one page per stage). A section class met twice within a part is documented once,
at its first path; the curation section, part of pretraining recipes too, is documented in its own part.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union

import annotated_types
import yaml
from pydantic import BaseModel, BeforeValidator, TypeAdapter, WithJsonSchema
from pydantic.fields import FieldInfo

from smollab.curate.config import CurateConfig, CurateRecipe
from smollab.post.config import DPORecipe, SFTRecipe
from smollab.post.synth.config import SynthRecipe
from smollab.recipe import Recipe, parse_count

COMMAND = "python -m smollab.recipe_reference > docs/recipe-reference.md"
LONG_DEFAULT = 100  # characters: a longer mapping default is summarised by its keys


@dataclass(frozen=True)
class Part:
    title: str
    anchor: str
    intro: str
    roots: tuple[tuple[str, type[BaseModel]], ...]
    """(label, schema): the label prefixes section headings when a part has several roots."""
    elsewhere: dict[type[BaseModel], str] = field(default_factory=dict)
    """Section classes documented in another part: a markdown link to it."""


PARTS = (
    Part("Pretraining recipe", "pretraining-recipe",
         "`smollab train` and `smollab tokenize` read it; sweeps and anneals derive theirs from one (`smollab/recipe.py`).",
         (("", Recipe),), {CurateConfig: "[Curation](#curation)"}),
    Part("Curation", "curation",
         "The `curate:` section of a pretraining recipe, or a curate-only recipe of `name` and `curate` "
         "(`smollab curate`; `smollab/curate/config.py`).",
         (("", CurateRecipe),)),
    Part("Post-training", "post-training",
         "`smollab sft` and `smollab dpo` (`smollab/post/config.py`); the two recipes share `name`, `out`, "
         "`model` and `eval`.",
         (("SFT", SFTRecipe), ("DPO", DPORecipe))),
    Part("Synthetic data", "synthetic-data", "`smollab synth` (`smollab/post/synth/config.py`).",
         (("", SynthRecipe),)),
)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _split_annotated(tp: Any) -> tuple[Any, list]:
    if typing.get_origin(tp) is Annotated:
        return tp.__origin__, list(tp.__metadata__)
    return tp, []


def _members(tp: Any) -> tuple:
    return typing.get_args(tp) if typing.get_origin(tp) in (Union, types.UnionType) else (tp,)


def _flat(metadata: list) -> list:
    """Annotation metadata with nested ``Field(...)`` infos (``Annotated[float, Field(gt=0)]``) opened up."""
    return [item for m in metadata for item in (m.metadata if isinstance(m, FieldInfo) else [m])]


def type_text(tp: Any, field_metadata: list | None = None) -> str:
    """A field's type as a reader writes it in YAML: ``int``, ``"a" | "b"``, ``dict[str, float]``, a section's class.

    Constraints on the field itself are ``constraints``' business; those on items inside it (a mapping's
    values) are written after the item's type."""
    tp, inner = _split_annotated(tp)
    metadata = _flat([*(field_metadata or []), *inner])
    schema = next((m.json_schema for m in metadata if isinstance(m, WithJsonSchema)), None)
    if schema is not None:
        return schema["type"].replace("string", "str")
    if any(isinstance(m, BeforeValidator) and m.func is parse_count for m in metadata):
        return " | ".join("token count" if m is int else type_text(m) for m in _members(tp))
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None):
        text = "null"
    elif origin is Literal:
        text = " | ".join(json.dumps(a) for a in args)
    elif origin in (Union, types.UnionType):
        text = " | ".join(type_text(a) for a in args)
    elif origin is dict:
        text = f"dict[{type_text(args[0])}, {type_text(args[1])}]"
    elif origin is list:
        text = f"list[{type_text(args[0])}]"
    elif origin is tuple:
        text = f"[{', '.join(type_text(a) for a in args)}]"
    else:
        text = getattr(tp, "__name__", str(tp))
    inline = constraints(_flat(inner), tp)
    return f"{text} ({', '.join(inline)})" if inline else text


def constraints(metadata: list, tp: Any) -> list[str]:
    """Bounds and lengths, as ``≥ 0``, ``at least 1 entry``; ``tp`` is the constrained type."""
    unit = "character" if str in _members(tp) else "entry"
    signs = ((annotated_types.Ge, "ge", "≥"), (annotated_types.Gt, "gt", ">"), (annotated_types.Le, "le", "≤"),
             (annotated_types.Lt, "lt", "<"))
    found = []
    for m in metadata:
        found += [f"{sign} {getattr(m, attr):g}" for kind, attr, sign in signs if isinstance(m, kind)]
        if isinstance(m, annotated_types.MinLen):
            found.append(f"at least {m.min_length} {_plural(unit, m.min_length)}")
        if isinstance(m, annotated_types.MaxLen):
            found.append(f"at most {m.max_length} {_plural(unit, m.max_length)}")
    return found


def _plural(unit: str, n: int) -> str:
    return unit if n == 1 else {"entry": "entries"}.get(unit, unit + "s")


def yaml_text(value: Any) -> str:
    """``value`` as YAML in flow style, on one line."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**6, sort_keys=False).strip()
    return text.removesuffix("\n...").strip()


def default_text(info: FieldInfo) -> str:
    """The default as a table cell: a YAML value in a code span, or words (``required``, a section's defaults)."""
    if info.is_required():
        return "required"
    value = info.default_factory() if info.default_factory is not None else info.default
    if isinstance(value, BaseModel):
        changed = value.model_dump(mode="json", exclude_defaults=True, by_alias=True)
        return "its section's defaults" if not changed else f"`{yaml_text(changed)}`, the rest its section's defaults"
    dumped = TypeAdapter(info.annotation).dump_python(value, mode="json", by_alias=True)
    text = yaml_text(dumped)
    if len(text) > LONG_DEFAULT and isinstance(dumped, dict):
        return f"{len(dumped)} entries: {', '.join(f'`{key}`' for key in dumped)}"
    return f"`{text}`"


def nested(tp: Any) -> list[tuple[str, type[BaseModel], str]]:
    """The section classes a field's type holds: (path suffix, class, label of a discriminated union member)."""
    tp, metadata = _split_annotated(tp)
    discriminator = next((m.discriminator for m in metadata if isinstance(m, FieldInfo) and m.discriminator), None)
    origin = typing.get_origin(tp)
    if _is_model(tp):
        return [("", tp, "")]
    if origin in (Union, types.UnionType):
        found = [item for member in typing.get_args(tp) for item in nested(member)]
        if discriminator:
            return [(suffix, cls, f"{discriminator}: {typing.get_args(cls.model_fields[discriminator].annotation)[0]}")
                    for suffix, cls, _ in found]
        return found
    if origin is dict:
        return [(f".<name>{suffix}", cls, label) for suffix, cls, label in nested(typing.get_args(tp)[1])]
    if origin is list:
        return [(f".<i>{suffix}", cls, label) for suffix, cls, label in nested(typing.get_args(tp)[0])]
    return []


def _doc(cls: type) -> str:
    doc = cls.__dict__.get("__doc__")
    if not doc:
        return ""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs).replace("``", "`")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _prose(text: str) -> str:
    """Markdown-safe text: ``<name>`` outside code spans would be read as an HTML tag and vanish."""
    parts = text.split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;").replace(">", "&gt;") for i, p in enumerate(parts))


def _sentence(text: str, more: str) -> str:
    """``more`` as a sentence after ``text``."""
    text = text.strip()
    if text and not text.endswith("."):
        text += "."
    return f"{text} {more}".strip()


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


class _PartWriter:
    """One part's sections, depth first; ``seen`` maps each section class to where it is documented."""

    def __init__(self, part: Part):
        self.part, self.lines, self.seen = part, [], {}

    @staticmethod
    def where(label: str, path: str) -> str:
        place = f"`{path}`" if path else "top level"
        return f"{label} recipe's {place}" if label else place

    def root(self, label: str, cls: type[BaseModel]) -> None:
        self.seen.setdefault(cls, self.where(label, ""))
        self.section(label, "", cls, "")

    def section(self, label: str, path: str, cls: type[BaseModel], variant: str) -> None:
        title = (f"`{path}`" if path else "top level") + (f" ({variant})" if variant else "")
        self.lines += [f"### {f'{label} recipe · ' if label else ''}{title} — {cls.__name__}", ""]
        if doc := _doc(cls):
            self.lines += [_prose(doc), ""]
        self.lines += ["| field | type | default | constraints | description |", "|---|---|---|---|---|"]
        children = []
        for name, info in cls.model_fields.items():
            key = info.alias or name
            description = _prose(info.description or "")
            for suffix, child, child_variant in nested(info.annotation):
                child_path = f"{path}.{key}{suffix}" if path else f"{key}{suffix}"
                if child in self.part.elsewhere:
                    description = _sentence(description, f"Its fields: see {self.part.elsewhere[child]}.")
                elif child in self.seen:
                    description = _sentence(description, f"Its fields: as the {self.seen[child]} section.")
                else:
                    self.seen[child] = self.where(label, child_path)
                    children.append((child_path, child, child_variant))
            row = [_code(key), _code(type_text(info.annotation, info.metadata)), default_text(info),
                   ", ".join(constraints(info.metadata, info.annotation)), description]
            self.lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
        self.lines.append("")
        for child_path, child, child_variant in children:
            self.section(label, child_path, child, child_variant)


def render() -> str:
    lines = [
        "# Recipe reference",
        "",
        f"Generated from the pydantic schemas by `{COMMAND}`; do not edit by hand "
        "(`tests/test_recipe_reference.py` fails when this page and the schemas disagree). "
        "docs/recipe.md is the guide: what the fields are for and how they interact.",
        "",
        "Every section rejects unknown fields. A recipe's values can be overridden on the command line with "
        "dotted paths (`optim.lr=3e-4`, `stages.0.mixture.web=0.6`), validated like the file. A *token count* "
        "accepts `2000000`, `2e6`, `\"2M\"`, `\"11T\"`; a stage boundary may also be relative to the previous "
        "one (`\"+75e9\"`). In paths, `<name>` is a key of a mapping and `<i>` an index into a list; "
        "`null` in a type means the field may be set to null.",
        "",
        *[f"- [{part.title}](#{part.anchor})" for part in PARTS],
        "",
    ]
    for part in PARTS:
        writer = _PartWriter(part)
        for label, root in part.roots:
            writer.root(label, root)
        lines += [f"## {part.title}", "", part.intro, "", *writer.lines]
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(render(), end="")
