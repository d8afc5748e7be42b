"""The CPU token log-probs equal TRL's fused LM head: values, entropies and every gradient."""

import pytest
import torch
from trl.kernels import ChunkedLogProbFunction

from phasegrpo import token_log_probs as module
from phasegrpo.token_log_probs import token_log_probs


def _case(bias: bool, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(16, 300, bias=bias)
    with torch.no_grad():
        head.weight.copy_(torch.randn(300, 16, generator=generator))
        if bias:
            head.bias.copy_(torch.randn(300, generator=generator))
    hidden = torch.randn(37, 16, generator=generator, requires_grad=True)
    targets = torch.randint(0, 300, (37,), generator=generator)
    return head, hidden, targets


def _both_ways(head, hidden, targets, softcap, temperature=0.7):
    """(log-probs, entropies, gradients of hidden, weight, bias) from TRL's kernel and from ours."""
    results = []
    for compute in ("trl", "ours"):
        for tensor in (hidden, head.weight, head.bias):
            if tensor is not None:
                tensor.grad = None
        if compute == "trl":
            log_probs, entropy = ChunkedLogProbFunction.apply(
                hidden, head.weight, head.bias, targets, temperature, 128, softcap, 1.0, ("log_probs", "entropy"))[:2]
        else:
            log_probs, entropy = token_log_probs(hidden, head, targets, temperature=temperature, softcap=softcap, with_entropy=True)
        # Weighted, so a gradient that ignores which token carries which weight shows.
        weights = torch.linspace(0.5, 1.5, len(targets))
        ((log_probs * weights).sum() + 0.3 * (entropy * weights.flip(0)).sum()).backward()
        grads = [None if t is None or t.grad is None else t.grad.clone() for t in (hidden, head.weight, head.bias)]
        results.append((log_probs.detach(), entropy.detach(), *grads))
    return results


@pytest.mark.parametrize("softcap", [None, 3.0], ids=["plain", "softcapped"])
@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
@pytest.mark.parametrize("tokens_per_chunk", [256, 8], ids=["one-chunk", "chunks"])
def test_float32_values_and_gradients_equal_trls_fused_head(softcap, bias, tokens_per_chunk, monkeypatch):
    monkeypatch.setattr(module, "_TOKENS_PER_CHUNK", tokens_per_chunk)
    head, hidden, targets = _case(bias)
    trl, ours = _both_ways(head, hidden, targets, softcap)
    for expected, actual in zip(trl, ours, strict=True):
        if expected is not None:
            torch.testing.assert_close(actual, expected, atol=2e-5, rtol=2e-5)


def test_under_bf16_autocast_the_backward_reuses_the_forwards_logits_and_stays_close():
    head, hidden, targets = _case(bias=False)
    head.weight.requires_grad_(False)
    products = []
    original = module._logits
    with torch.autocast("cpu", dtype=torch.bfloat16):
        trl, _ = _both_ways(head, hidden, targets, None)
        module._logits = lambda *args: products.append(1) or original(*args)
        try:
            _, ours = _both_ways(head, hidden, targets, None)
        finally:
            module._logits = original
    assert len(products) == 1  # one chunk, its logits computed once for forward and backward
    torch.testing.assert_close(ours[0], trl[0], atol=1e-4, rtol=0)  # same bf16 logits, float32 statistics
    torch.testing.assert_close(ours[1], trl[1], atol=1e-4, rtol=0)
    # The gradient product is rounded to bf16 once (TRL accumulates its tiles in float32).
    assert (ours[2] - trl[2]).abs().max() <= 2 ** -7 * trl[2].abs().max()


def test_no_scored_tokens_give_empty_results_and_a_zero_gradient():
    head, hidden, _ = _case(bias=False)
    log_probs, entropy = token_log_probs(hidden[:0], head, torch.zeros(0, dtype=torch.long), temperature=1.0)
    assert log_probs.shape == (0,) and entropy is None
    log_probs.sum().backward()
    assert head.weight.grad is None or not head.weight.grad.any()
