"""Curation, the SmolLM2 way: datatrove pipelines that filter, deduplicate, decontaminate, annotate with an
LLM judge, train a quality classifier and keep the documents it scores highly (see docs/curation.md)."""
