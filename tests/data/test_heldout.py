import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaForCausalLM

from smollab.data.heldout import split_stream, split_streams
from smollab.data.mixture import MixtureSampler
from smollab.data.shards import load_streams
from smollab.errors import SmollabError
from smollab.eval.heldout import heldout_loss
from smollab.presets import preset_config
from smollab.recipe import load_recipe

SOURCES = ["web", "code", "math"]


@pytest.fixture(scope="module")
def streams(shards):
    return load_streams(shards[0], SOURCES)


def micro_model(dropout: float = 0.0) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = preset_config("micro", vocab_size=1024)  # the session shards' BPE
    config.attention_dropout = dropout
    return LlamaForCausalLM(config).eval()


def hand_loss(model, view, seq_len: int) -> float:
    """Plain HF logits + cross-entropy over all whole windows at once, partial tail left out."""
    n = view.num_tokens // (seq_len + 1)
    ids = torch.from_numpy(np.stack([view.slice(k * (seq_len + 1), (k + 1) * (seq_len + 1)) for k in range(n)]))
    with torch.no_grad():
        logits = model(ids[:, :-1]).logits
    return F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).item()


def test_training_and_heldout_views_are_disjoint_and_cover_the_stream(streams, shards):
    train, held = split_streams(streams, 500, seq_len=64)
    for name, stream in streams.items():
        assert (train[name].num_tokens, held[name].num_tokens) == (stream.num_tokens - 500, 500)
        whole = np.concatenate([train[name].slice(0, train[name].num_tokens), held[name].slice(0, 500)])
        assert np.array_equal(whole, stream.slice(0, stream.num_tokens))
        # the training view keeps the stream's indices, and cannot be read into the held-out tokens
        assert np.array_equal(train[name].slice(100, 300), stream.slice(100, 300))
        with pytest.raises(IndexError):
            train[name].slice(train[name].num_tokens - 10, train[name].num_tokens + 1)
    again, _ = split_streams(load_streams(shards[0], SOURCES), 500, seq_len=64)  # a pure function of (shards, N)
    assert {n: (v.start, v.stop) for n, v in again.items()} == {n: (v.start, v.stop) for n, v in train.items()}


def test_sampler_over_training_views_never_serves_a_heldout_token(write_recipe, streams):
    recipe = load_recipe(write_recipe())
    seq_len = recipe.batch.seq_len
    # leave each source 20 training windows, so 8 steps × 16 samples go round every one of them
    train = {name: split_stream(s, s.num_tokens - 20 * seq_len - 1, seq_len, name)[0] for name, s in streams.items()}
    sampler = MixtureSampler(recipe, train)
    served_stop = {name: 0 for name in SOURCES}
    for step in range(sampler.total_steps):
        for sample in sampler.step_samples(step):
            start = sample.window * seq_len
            assert start + seq_len + 1 <= train[sample.source].num_tokens
            served_stop[sample.source] = max(served_stop[sample.source], start + seq_len + 1)
            assert np.array_equal(sampler.tokens(sample), streams[sample.source].slice(start, start + seq_len + 1))
    for name in SOURCES:
        assert served_stop[name] == train[name].num_tokens  # the last training token is served, none after it


def test_heldout_loss_equals_plain_cross_entropy_per_source(streams):
    seq_len = 128
    # 11 windows + a 50-token tail per source: batches of 9 and 2 windows, 1,152 rows = two head chunks
    _, held = split_streams(streams, 11 * (seq_len + 1) + 50, seq_len)
    model = micro_model()
    losses = heldout_loss(model, held, seq_len, batch_size=9, device="cpu")
    assert losses.keys() == set(SOURCES)
    for name in SOURCES:
        assert losses[name] == pytest.approx(hand_loss(model, held[name], seq_len), rel=1e-5)
    assert len(set(losses.values())) == len(SOURCES)


def test_heldout_loss_scores_in_eval_mode_and_leaves_mode_and_rng_as_found(streams):
    seq_len = 64
    _, held = split_streams(streams, 4 * (seq_len + 1), seq_len)
    model = micro_model(dropout=0.5)
    expected = {name: hand_loss(model, view, seq_len) for name, view in held.items()}  # eval mode: no dropout
    model.train()
    rng = torch.get_rng_state()
    losses = heldout_loss(model, held, seq_len, batch_size=2, device="cpu")
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(torch.get_rng_state(), rng)
    assert losses == pytest.approx(expected, rel=1e-5)
    model.eval()
    heldout_loss(model, held, seq_len, batch_size=2, device="cpu")
    assert not model.training


@pytest.mark.parametrize("heldout, needs", [(64, "raise it to at least 65"), (0, "raise it to at least 65"),
                                            ("all-but-64", "lower it to at most")])
def test_bad_heldout_sizes_are_one_line_errors(streams, heldout, needs):
    stream = streams["code"]
    tokens = stream.num_tokens - 64 if heldout == "all-but-64" else heldout
    with pytest.raises(SmollabError) as err:
        split_stream(stream, tokens, 64, "code")
    message = str(err.value)
    assert message.startswith("eval.heldout.tokens: ") and "\n" not in message and needs in message
    if heldout == "all-but-64":
        assert "source 'code'" in message and f"at most {stream.num_tokens - 65:,}" in message


def test_smallest_valid_split_leaves_one_window_each_side(streams):
    stream = streams["code"]
    train, held = split_stream(stream, stream.num_tokens - 65, 64, "code")
    assert (train.num_tokens, held.num_tokens) == (65, stream.num_tokens - 65)
    train, held = split_stream(stream, 65, 64, "code")
    assert held.num_tokens == 65


def test_heldout_loss_at_a_longer_seq_len_than_the_slice_holds_is_a_one_line_error(streams):
    _, held = split_streams(streams, 65, seq_len=64)
    with pytest.raises(SmollabError, match=r"^eval\.heldout\.tokens: the 65 held-out tokens of source 'web' hold no"):
        heldout_loss(micro_model(), held, 128, batch_size=2, device="cpu")
