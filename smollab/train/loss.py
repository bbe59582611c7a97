"""The training objective: next-token cross-entropy fused with the LM head, in row chunks.

The usual path materialises the logits of a whole micro-batch (tokens × vocab, in fp32 for the
softmax), keeps them for backward, and then reads and writes them twice more (log-softmax backward,
then the two head matmuls). Here each chunk of rows gets its logits, loss and logit gradient
(softmax − one-hot) in one go, and that gradient is multiplied straight back into the hidden-state and
head-weight gradients, so the logits never outlive their chunk: peak memory drops by the logits
tensor (3.2 GiB in fp32 for SmolLM2's 49,152 vocabulary at 8 × 2,048 tokens). On the small-vocab
demo model it is throughput-neutral (bench/RESULTS.md). The trade-off is that the gradient is
computed in forward for a fixed objective — ``scale × Σ token losses`` — so the function returns
that scalar (differentiable) plus the per-token losses (statistics only), and cannot serve an
arbitrary downstream use of the per-token losses.
"""

from __future__ import annotations

import torch
from torch import nn


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, labels, scale, chunk_rows):
        device = hidden.device.type
        compute = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
        head = weight.to(compute)
        token_loss = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        for start in range(0, hidden.shape[0], chunk_rows):
            rows = slice(start, start + chunk_rows)
            h, target = hidden[rows].to(compute), labels[rows]
            logits = (h @ head.t()).float()
            log_norm = torch.logsumexp(logits, dim=-1)
            token_loss[rows] = log_norm - logits.gather(1, target[:, None]).squeeze(1)
            grad_logits = logits.sub_(log_norm[:, None]).exp_()  # softmax, in place
            grad_logits[torch.arange(len(target), device=target.device), target] -= 1.0
            grad_logits = grad_logits.mul_(scale).to(compute)
            grad_hidden[rows] = grad_logits @ head  # cast back to the hidden states' dtype
            if compute == torch.float32:
                grad_weight.addmm_(grad_logits.t(), h)
            else:  # bf16 partial products, accumulated in fp32
                grad_weight += grad_logits.t() @ h
        ctx.save_for_backward(grad_hidden, grad_weight.to(weight.dtype))
        ctx.mark_non_differentiable(token_loss)
        return token_loss.sum() * scale, token_loss

    @staticmethod
    def backward(ctx, grad_loss, _grad_token_loss):
        grad_hidden, grad_weight = ctx.saved_tensors
        return grad_hidden * grad_loss, grad_weight * grad_loss, None, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, scale: float,
                         chunk_rows: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale × Σ loss, per-token loss)`` of ``hidden @ weight.T`` against ``labels``, chunked.

    ``hidden`` is (tokens, d), ``weight`` (vocab, d), ``labels`` (tokens,). Only the first output
    carries a gradient.
    """
    return _ChunkedLinearCrossEntropy.apply(hidden, weight, labels, float(scale), chunk_rows)


class CausalLMLoss(nn.Module):
    """A ``LlamaForCausalLM`` plus its loss, as one module.

    Being one module lets FSDP2 shard it as the root unit (the embedding / tied head are gathered by
    its forward hook, as they would be for the bare model) and lets ``torch.compile`` see the whole
    forward including the loss. ``lm`` stays the stock HF model: checkpoints and exports use it.
    """

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.lm.model(input_ids=input_ids).last_hidden_state
        return linear_cross_entropy(hidden.flatten(0, 1), self.lm.lm_head.weight, labels.flatten(), scale)
