from smollab.presets import count_parameters, preset_config


def test_smollm2_presets_have_the_papers_exact_parameter_counts():
    assert count_parameters(preset_config("smollm2-135m")) == 134_515_008
    assert count_parameters(preset_config("smollm2-360m")) == 361_821_120
    assert count_parameters(preset_config("smollm2-1.7b")) == 1_711_376_384


def test_presets_follow_the_spec_architecture():
    c = preset_config("smollm2-135m")
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.num_key_value_heads) == (30, 576, 9, 3)
    assert c.tie_word_embeddings and c.rms_norm_eps == 1e-5 and c.rope_parameters["rope_theta"] == 10_000
    assert abs(c.initializer_range - 576**-0.5) < 1e-12
    assert preset_config("smollm2-1.7b").num_key_value_heads == 32
