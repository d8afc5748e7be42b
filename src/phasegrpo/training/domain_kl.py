"""Per-domain KL coefficients in TRL's GRPO loss, and the KL logged per domain.

TRL adds the KL penalty as `per_token_loss + beta * per_token_kl` with one float `beta` for
every sample. With `Config.domain_betas`, each sample's beta comes from its domain (domains not
listed use `beta`): the betas travel with the batch as a `kl_beta` tensor, which TRL shuffles and
splits with the rest, and `trl_compat.PerSampleBeta` applies them. The per-token KL TRL computed
is then logged per domain (`domain/<domain>/kl`) without recomputing anything.

The reference log-probs are only computed when the configured `beta` is non-zero, so
per-domain betas need `beta > 0` (Config checks this).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from phasegrpo import metric_keys

OTHER_DOMAIN = "other"


def kl_betas_for(domains: Sequence[str | None], domain_betas: Mapping[str, float], beta: float) -> torch.Tensor:
    """The KL coefficient of each sample, from its domain."""
    return torch.tensor([float(domain_betas.get(domain, beta)) for domain in domains], dtype=torch.float32)


def domain_index(domain: str | None, names: Sequence[str]) -> int:
    """Position of `domain` in `names`, or `len(names)` (the "other" slot) for anything else."""
    return names.index(domain) if domain in names else len(names)


def kl_sums_by_domain(per_token_kl: torch.Tensor, mask: torch.Tensor, domain_indices: torch.Tensor, count: int) -> torch.Tensor:
    """(count + 1, 2): per domain slot, the summed KL over its completion tokens and their number."""
    sample_kl = (per_token_kl * mask).sum(-1)
    sample_tokens = mask.sum(-1).to(sample_kl.dtype)
    one_hot = torch.nn.functional.one_hot(domain_indices.long(), count + 1).to(sample_kl.dtype)  # (B, D)
    return torch.stack([sample_kl @ one_hot, sample_tokens @ one_hot], dim=1)


def domain_kl_metrics(totals: torch.Tensor, names: Sequence[str]) -> dict[str, float]:
    """`domain/<domain>/kl` for every slot with tokens, from (summed KL, token count) rows."""
    metrics = {}
    for name, (kl_sum, token_count) in zip((*names, OTHER_DOMAIN), totals.tolist(), strict=True):
        if token_count > 0:
            metrics[metric_keys.domain_stat(name, "kl")] = kl_sum / token_count
    return metrics
