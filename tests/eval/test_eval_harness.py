import pytest
import torch

from smollab.eval.harness import GenerationRequest, SmolLM

REQUESTS = [
    ("Question: what colour is the sky?\nAnswer:", " blue"),
    ("Question: what colour is the sky?\nAnswer:", " a very large green dome over all of us"),
    ("Hi", " there you"),
    ("A much longer context that goes on and on for a while, with commas, and more words. ", "end"),
    ("x", " y"),
    ("", "an empty context is scored after the prefix token"),
]


def reference_loglikelihood(model, lm, context, continuation):
    """The plain path: one unpadded forward over context + continuation, full log-softmax."""
    ctx, cont = lm.encode_pair(context, continuation)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([ctx + cont])).logits.float(), -1)[0, len(ctx) - 1:-1]
    target = torch.tensor(cont)
    return float(logprobs.gather(1, target[:, None]).sum()), bool((logprobs.argmax(-1) == target).all())


def test_loglikelihood_matches_the_plain_unbatched_forward(tiny_model, tokenizer):
    lm = SmolLM(tiny_model, tokenizer, batch_size=4)
    for (ll, greedy), (context, cont) in zip(lm.loglikelihood(REQUESTS), REQUESTS):
        ref_ll, ref_greedy = reference_loglikelihood(tiny_model, lm, context, cont)
        assert ll == pytest.approx(ref_ll, abs=1e-4) and greedy == ref_greedy


def test_loglikelihood_does_not_depend_on_batch_size(tiny_model, tokenizer):
    one = SmolLM(tiny_model, tokenizer, batch_size=1).loglikelihood(REQUESTS)
    eight = SmolLM(tiny_model, tokenizer, batch_size=8).loglikelihood(REQUESTS)
    for (a, ga), (b, gb) in zip(one, eight):
        assert abs(a - b) < 1e-4 and ga == gb


def test_context_trailing_space_moves_to_the_continuation(tiny_model, tokenizer):
    lm = SmolLM(tiny_model, tokenizer)
    assert lm.encode_pair("Answer: ", "yes") == lm.encode_pair("Answer:", " yes")


def test_greedy_continuation_is_detected(tiny_model, tokenizer):
    lm = SmolLM(tiny_model, tokenizer)
    context = "one two three"
    greedy_text = lm.generate_until([GenerationRequest(context, (), 3)])[0]
    assert lm.loglikelihood([(context, greedy_text)])[0][1] is True


def reference_rolling_loglikelihood(model, tokens, prefix_token, max_length):
    """lm-eval's rolling rule (get_rolling_token_windows with context_len=1, then make_disjoint_window), as
    one loop over ``[prefix] + tokens``: each window predicts the next ``max_length`` not yet scored tokens
    from a row of the ``max_length`` tokens just before the last of them, one plain forward per window."""
    sequence, total, scored = [prefix_token, *tokens], 0.0, 0
    while scored < len(tokens):
        end = min(scored + max_length, len(tokens))  # tokens[scored:end] are sequence[scored + 1:end + 1]
        row = sequence[max(0, end - max_length):end]
        with torch.no_grad():
            logprobs = model(torch.tensor([row])).logits.float().log_softmax(-1)[0]
        predicted = torch.tensor(tokens[scored:end])
        total += float(logprobs[-len(predicted):].gather(1, predicted[:, None]).sum())
        scored = end
    return total


@pytest.mark.parametrize("max_length", [64, 1024])
def test_rolling_loglikelihood_scores_every_token_once_in_lm_eval_windows(tiny_model, tokenizer, max_length):
    long_text = " ".join(f"word{i}" for i in range(120))  # 370 tokens: at 64, five full windows and one of 50
    texts = [long_text, "word7"]
    expected = [reference_rolling_loglikelihood(tiny_model, tokenizer(text, add_special_tokens=False)["input_ids"],
                                                tokenizer.eos_token_id, max_length) for text in texts]
    ours = SmolLM(tiny_model, tokenizer, max_length=max_length).loglikelihood_rolling(texts)
    assert ours == pytest.approx(expected, rel=1e-6)  # ~4,000 nats; a window off by one token moves it > 0.1


def test_generation_stops_at_stop_sequences_and_is_batch_invariant(tiny_model, tokenizer):
    prompts = ["Once upon a time", "a b c d e f g", "Question: 2+2?\nAnswer:"]
    free = SmolLM(tiny_model, tokenizer, batch_size=1).generate_until(
        [GenerationRequest(p, (), 12) for p in prompts])
    stop = free[0][len(free[0]) // 2:][:3]  # a string the free generation contains
    requests = [GenerationRequest(prompts[0], (stop,), 12)] + [GenerationRequest(p, (), 12) for p in prompts[1:]]
    one = SmolLM(tiny_model, tokenizer, batch_size=1).generate_until(requests)
    three = SmolLM(tiny_model, tokenizer, batch_size=3).generate_until(requests)
    assert one == three
    assert one[0] == free[0][:free[0].find(stop)] and stop not in one[0]
    assert one[1:] == free[1:]
    assert all(len(tokenizer(t, add_special_tokens=False)["input_ids"]) <= 12 for t in free)


def test_greedy_generation_matches_transformers_generate(tiny_model, tokenizer):
    prompt = "Question: 2+2?\nAnswer:"
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        reference = tiny_model.generate(ids, max_new_tokens=10, do_sample=False, min_new_tokens=10,
                                        pad_token_id=tokenizer.eos_token_id)[0, ids.shape[1]:]
    ours = SmolLM(tiny_model, tokenizer).generate_until([GenerationRequest(prompt, (), 10)])[0]
    assert ours == tokenizer.decode(reference, skip_special_tokens=True)


def test_chat_template_wraps_the_context_as_a_user_turn(tiny_model, tokenizer):
    lm = SmolLM(tiny_model, tokenizer, chat_template=True)
    text = lm.format("Question: hi\nAnswer:")
    assert text.startswith("<|im_start|>") and "Question: hi\nAnswer:" in text
    assert text.endswith("<|im_start|>assistant\n")
    assert SmolLM(tiny_model, tokenizer).format("x") == "x"


@pytest.mark.slow
def test_real_smollm2_scores_do_not_depend_on_batch_size():
    from smollab.eval.tasks import TASKS

    lm1 = SmolLM.load("smollm2-135m-instruct", batch_size=1)
    lm8 = SmolLM(lm1.model, lm1.tokenizer, batch_size=8)
    items = [TASKS["hellaswag"].prompt(r) for r in TASKS["hellaswag"].docs()[:6]]
    requests = [(c, x) for item in items for c, x in zip(item.contexts, item.continuations)]
    for (a, ga), (b, gb) in zip(lm1.loglikelihood(requests), lm8.loglikelihood(requests)):
        assert abs(a - b) < 1e-4 and ga == gb
