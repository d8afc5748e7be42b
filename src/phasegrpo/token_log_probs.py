"""Per-token log-probabilities (and entropies) of chosen tokens under a large-vocabulary LM head, on a CPU.

GRPO needs log p(token) for every completion token, under the policy and the reference, and its
gradient. TRL's fused LM head (`trl.kernels.ChunkedLogProbFunction`) computes them without
materialising the logits; off Triton devices it folds each 32k-column tile with ~12 separate
torch ops, computes the entropy on every call, recomputes the logits in the backward and casts
each tile and weight chunk to float32 for the gradient product. On a CPU with Gemma's 262k
vocabulary that was ~5 of the ~10 s a step spends in its three log-prob passes. This is the same
function computed for a CPU: the logits of a chunk of tokens in one matrix product (in the
autocast dtype when autocast is on, like TRL's), `torch.logsumexp` in float32, the entropy only
when asked for, and the backward reusing the forward's bf16 logits (exactly those of the
forward; float32 ones are recomputed) and one product by the head per chunk. The gradient reaches the
hidden states (and the head's weight, if it is trained).
"""

from __future__ import annotations

import torch

_TOKENS_PER_CHUNK = 128  # a float32 [128, 262k] tile is 134 MB


def _logits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    logits = hidden @ weight.T
    return logits if bias is None else logits + bias


def _scaled(logits: torch.Tensor, inverse_temperature: float, softcap: float | None) -> torch.Tensor:
    """float32 logits / temperature (after soft-capping), and the soft cap's tanh (for the gradient)."""
    scaled = logits.float()
    capped = None
    if softcap is not None:
        capped = torch.tanh(scaled / softcap)
        scaled = capped * softcap
    return scaled.mul_(inverse_temperature), capped


class _TokenLogProbs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, inverse_temperature, softcap, with_entropy, compute_dtype, keeps_logits):
        with torch.autocast(hidden.device.type, enabled=False):
            head, head_bias = weight.detach().to(compute_dtype), None if bias is None else bias.detach().to(compute_dtype)
            log_probs = hidden.new_empty(hidden.size(0), dtype=torch.float32)
            log_normalisers = torch.empty_like(log_probs)
            entropy = torch.empty_like(log_probs) if with_entropy else None
            chunks = []
            for start in range(0, hidden.size(0), _TOKENS_PER_CHUNK):
                rows = slice(start, start + _TOKENS_PER_CHUNK)
                logits = _logits(hidden[rows].detach().to(compute_dtype), head, head_bias)
                scaled, _ = _scaled(logits, inverse_temperature, softcap)
                log_normaliser = torch.logsumexp(scaled, dim=-1)
                log_normalisers[rows] = log_normaliser
                log_probs[rows] = scaled.gather(-1, targets[rows, None]).squeeze(-1) - log_normaliser
                if with_entropy:
                    log_p = scaled.sub_(log_normaliser[:, None])
                    entropy[rows] = -(log_p.exp() * log_p).sum(-1)
                if keeps_logits:
                    chunks.append(logits)
        ctx.save_for_backward(hidden, weight, bias, targets, log_normalisers, entropy if with_entropy else log_normalisers)
        ctx.logit_chunks, ctx.with_entropy = chunks, with_entropy
        ctx.inverse_temperature, ctx.softcap, ctx.compute_dtype = inverse_temperature, softcap, compute_dtype
        return log_probs, entropy

    @staticmethod
    def backward(ctx, grad_log_probs, grad_entropy):
        hidden, weight, bias, targets, log_normalisers, entropy = ctx.saved_tensors
        wants_hidden, wants_weight, wants_bias = ctx.needs_input_grad[:3]
        with torch.autocast(hidden.device.type, enabled=False):
            head = weight.detach().to(ctx.compute_dtype)
            head_bias = None if bias is None else bias.detach().to(ctx.compute_dtype)
            grad_hidden = torch.zeros(hidden.shape, dtype=torch.float32, device=hidden.device) if wants_hidden else None
            grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if wants_weight else None
            grad_bias = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if wants_bias else None
            for index, start in enumerate(range(0, hidden.size(0), _TOKENS_PER_CHUNK)):
                rows = slice(start, start + _TOKENS_PER_CHUNK)
                if ctx.logit_chunks:
                    logits = ctx.logit_chunks[index]
                else:
                    logits = _logits(hidden[rows].detach().to(ctx.compute_dtype), head, head_bias)
                scaled, capped = _scaled(logits, ctx.inverse_temperature, ctx.softcap)
                log_p = scaled.sub_(log_normalisers[rows, None])
                # d log p_target / dz_j = 1[j = target] - p_j;  d entropy / dz_j = -p_j (log p_j + entropy)
                entropy_factor = None if grad_entropy is None else log_p + entropy[rows, None]
                p = log_p.exp_()  # in place: a [tokens, vocabulary] float32 tile is the largest thing here
                grad = p.clone() if grad_log_probs is not None and grad_entropy is not None else p
                if grad_log_probs is not None:
                    weights = grad_log_probs[rows, None].float()
                    grad.mul_(-weights).scatter_add_(-1, targets[rows, None], weights)
                if grad_entropy is not None:
                    entropy_part = entropy_factor.mul_(p).mul_(grad_entropy[rows, None].float())
                    grad = grad.sub_(entropy_part) if grad_log_probs is not None else entropy_part.neg_()
                grad.mul_(ctx.inverse_temperature)
                if capped is not None:
                    grad.mul_(1 - capped * capped)
                grad = grad.to(ctx.compute_dtype)
                if grad_hidden is not None:
                    grad_hidden[rows] = (grad @ head).float()
                if grad_weight is not None:
                    grad_weight += (grad.T @ hidden[rows].detach().to(ctx.compute_dtype)).float()
                if grad_bias is not None:
                    grad_bias += grad.sum(0, dtype=torch.float32)
            ctx.logit_chunks = None
        return (
            None if grad_hidden is None else grad_hidden.to(hidden.dtype),
            None if grad_weight is None else grad_weight.to(weight.dtype),
            None if grad_bias is None else grad_bias.to(bias.dtype),
            None, None, None, None, None, None,
        )


def token_log_probs(hidden: torch.Tensor, head: torch.nn.Linear, targets: torch.Tensor, *, temperature: float,
                    softcap: float | None = None, with_entropy: bool = False,
                    head_in_float32: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log softmax(head(hidden) / temperature)[target] for each row of hidden [tokens, width], and the
    entropy of that distribution if `with_entropy`; soft-capping (Gemma 2) before the temperature.
    The product runs in the autocast dtype when CPU autocast is on (unless `head_in_float32`, TRL's
    `cast_lm_head_to_fp32`), else in the hidden states' dtype; the softmax statistics in float32."""
    device_type = hidden.device.type
    if head_in_float32 or not torch.is_autocast_enabled(device_type):
        compute_dtype = torch.float32 if head_in_float32 else hidden.dtype
    else:
        compute_dtype = torch.get_autocast_dtype(device_type)
    needs_gradient = torch.is_grad_enabled() and any(
        tensor is not None and tensor.requires_grad for tensor in (hidden, head.weight, head.bias))
    # The backward reuses the forward's logits when they are 16-bit (half the memory of float32 ones);
    # float32 logits are recomputed, as TRL does.
    keeps_logits = needs_gradient and torch.finfo(compute_dtype).bits <= 16
    return _TokenLogProbs.apply(hidden, head.weight, head.bias, targets, 1.0 / temperature, softcap, with_entropy,
                                compute_dtype, keeps_logits)
