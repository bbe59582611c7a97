import pytest
import torch
import torch.nn.functional as F

from smollab.train.loss import linear_cross_entropy


def reference(hidden, weight, labels, scale):
    token_loss = F.cross_entropy((hidden @ weight.t()).float(), labels, reduction="none")
    return token_loss.sum() * scale, token_loss


@pytest.mark.parametrize("rows,chunk", [(37, 16), (64, 64), (5, 1024)])
def test_chunked_linear_cross_entropy_matches_materialised_logits_in_value_and_gradient(rows, chunk):
    torch.manual_seed(0)
    hidden = torch.randn(rows, 32, requires_grad=True)
    weight = torch.randn(200, 32, requires_grad=True)
    labels = torch.randint(0, 200, (rows,))
    loss, token_loss = linear_cross_entropy(hidden, weight, labels, scale=0.25, chunk_rows=chunk)
    (loss * 3.0).backward()  # an upstream factor must reach both gradients
    ours = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    ref_loss, ref_tokens = reference(hidden, weight, labels, 0.25)
    (ref_loss * 3.0).backward()
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
    torch.testing.assert_close(token_loss, ref_tokens.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours[0], hidden.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours[1], weight.grad, rtol=1e-5, atol=1e-6)
    assert not token_loss.requires_grad


def test_chunked_linear_cross_entropy_under_bf16_autocast_stays_close_and_keeps_fp32_weight_gradient():
    torch.manual_seed(1)
    hidden = torch.randn(48, 64, requires_grad=True)
    weight = torch.randn(300, 64, requires_grad=True)
    labels = torch.randint(0, 300, (48,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = linear_cross_entropy(hidden, weight, labels, scale=1 / 48, chunk_rows=20)
    loss.backward()
    assert weight.grad.dtype == torch.float32
    ref_loss, _ = reference(hidden.detach(), weight.detach(), labels, 1 / 48)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=2e-2)
