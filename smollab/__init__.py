"""smollab: data-centric training of small language models, the SmolLM2 way."""

__version__ = "0.1.0"
