"""Model presets: SmolLM2's three architectures (spec §1.2) and tiny ones sized for CPU runs.

A preset is a plain ``LlamaConfig``; the model is stock ``transformers`` ``LlamaForCausalLM`` so
checkpoints are HF-native with no conversion step. Parameter counts are never hand-computed: they
come from instantiating the model on the meta device, so the table cannot drift from the code.
"""

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from smollab.errors import SmollabError
from smollab.recipe import ModelConfig

SMOLLM2_VOCAB = 49_152

# name -> (layers, hidden, heads, kv_heads, swiglu size, init std, vocab, one-line purpose)
_ARCHITECTURES = {
    "smollm2-135m": (30, 576, 9, 3, 1536, 576**-0.5, SMOLLM2_VOCAB, "SmolLM2-135M, GQA"),
    "smollm2-360m": (32, 960, 15, 5, 2560, 960**-0.5, SMOLLM2_VOCAB, "SmolLM2-360M, GQA"),
    "smollm2-1.7b": (24, 2048, 32, 32, 8192, 0.02, SMOLLM2_VOCAB, "SmolLM2-1.7B"),
    "tiny": (4, 256, 4, 2, 768, 256**-0.5, 8192, "CPU demo"),
    "micro": (2, 64, 2, 1, 192, 64**-0.5, 8192, "tests"),
}
PRESETS = tuple(_ARCHITECTURES)


def preset_config(name: str, vocab_size: int | None = None) -> LlamaConfig:
    """The ``LlamaConfig`` of a preset (pretraining geometry: 2048 positions, RoPE θ 10k)."""
    if name not in _ARCHITECTURES:
        raise SmollabError(f"model.preset: unknown preset '{name}'; choose one of {', '.join(PRESETS)}")
    layers, hidden, heads, kv_heads, ffn, std, vocab, _ = _ARCHITECTURES[name]
    return LlamaConfig(
        vocab_size=vocab_size or vocab,
        hidden_size=hidden,
        intermediate_size=ffn,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        hidden_act="silu",
        max_position_embeddings=2048,
        rope_parameters={"rope_type": "default", "rope_theta": 10_000.0},
        rms_norm_eps=1e-5,
        initializer_range=std,
        tie_word_embeddings=True,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=None,
        use_cache=False,
    )


def build_config(model: ModelConfig, vocab_size: int | None = None) -> LlamaConfig:
    """A preset with the recipe's explicit field overrides applied."""
    config = preset_config(model.preset or "tiny", vocab_size)
    overrides = model.model_dump(exclude={"preset", "init_from"}, exclude_none=True)
    if "rope_theta" in overrides:
        config.rope_parameters = {"rope_type": "default", "rope_theta": overrides.pop("rope_theta")}
    for key, value in overrides.items():
        setattr(config, key, value)
    if "hidden_size" in overrides or "num_attention_heads" in overrides:
        config.head_dim = config.hidden_size // config.num_attention_heads
    return config


def count_parameters(config: LlamaConfig) -> int:
    """Exact parameter count of the instantiated model (tied embeddings counted once)."""
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    return sum(p.numel() for p in model.parameters())


def describe(name: str) -> str:
    return _ARCHITECTURES[name][-1]
