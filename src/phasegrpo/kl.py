"""Per-domain KL coefficients in TRL's GRPO loss, and the KL logged per domain.

TRL 1.16 adds the KL penalty in `GRPOTrainer._compute_loss` as

    if self.beta != 0.0:
        per_token_loss = per_token_loss + self.beta * per_token_kl

with one float `beta` for every sample. `DomainKLMixin` changes exactly that product and
nothing else: for the duration of one `_compute_loss` call, `self.beta` is a `PerSampleBeta`,
which compares like the configured float (so TRL takes the same branches, on every rank) and
multiplies `per_token_kl` (B, T) by a per-sample beta (B, 1) built from each sample's domain.
It also keeps the per-token KL it was multiplied with, which is how the KL is logged per domain
(`domain/<domain>/kl`) without recomputing anything.

The per-sample betas travel with the batch: `_generate_and_score_completions` adds `kl_beta`
and `kl_domain_index` tensors to TRL's output dict, which TRL shuffles and splits with the rest.
The reference log-probs are only computed when the configured `beta` is non-zero, so per-domain
betas need `beta > 0` (it is the beta of every domain not listed).
"""

from __future__ import annotations

import torch

from phasegrpo.domains import domain_names


class PerSampleBeta:
    """Stands in for `GRPOTrainer.beta` inside one `_compute_loss` call (TRL 1.16)."""

    def __init__(self, base: float, per_sample: torch.Tensor):
        self.base = float(base)
        self.per_sample = per_sample
        self.per_token_kl: torch.Tensor | None = None

    # TRL only asks `beta != 0.0`; answering with the configured float keeps every rank on the
    # same branch (the KL metric is a collective reduce), whatever betas its micro-batch holds.
    def __eq__(self, other) -> bool:
        return self.base == other

    def __ne__(self, other) -> bool:
        return self.base != other

    __hash__ = None

    def __float__(self) -> float:
        return self.base

    def __mul__(self, per_token_kl: torch.Tensor) -> torch.Tensor:
        self.per_token_kl = per_token_kl.detach()
        return self.per_sample.to(per_token_kl.dtype).unsqueeze(1) * per_token_kl

    __rmul__ = __mul__


class DomainKLMixin:
    """Mix in before `GRPOTrainer`: a KL coefficient per domain, and the KL logged per domain.

    Set `domain_betas` (domain -> beta; other domains use the trainer's `beta`) on the instance.
    """

    domain_betas: dict[str, float] = {}
    kl_domains = property(lambda self: domain_names())  # read when used: registered domains are logged too

    def kl_betas_for(self, domains: list[str | None]) -> torch.Tensor:
        """The KL coefficient of each sample, from its domain."""
        return torch.tensor([float(self.domain_betas.get(domain, self.beta)) for domain in domains], dtype=torch.float32)

    def _kl_domain_index(self, domain: str | None) -> int:
        return self.kl_domains.index(domain) if domain in self.kl_domains else len(self.kl_domains)

    # Mirrors GRPOTrainer._generate_and_score_completions (TRL 1.16): same output, plus two per-sample tensors.
    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if self.beta != 0.0:
            domains = [row.get("domain") for row in inputs]
            device = output["advantages"].device
            output["kl_beta"] = self.kl_betas_for(domains).to(device)
            output["kl_domain_index"] = torch.tensor([self._kl_domain_index(d) for d in domains], device=device)
        return output

    # Mirrors GRPOTrainer._compute_loss (TRL 1.16): unchanged except `self.beta * per_token_kl` is per sample.
    def _compute_loss(self, model, inputs):
        if self.beta == 0.0 or "kl_beta" not in inputs:
            return super()._compute_loss(model, inputs)
        beta = PerSampleBeta(self.beta, inputs["kl_beta"])
        self.beta = beta
        try:
            loss = super()._compute_loss(model, inputs)
        finally:
            self.beta = beta.base
        if beta.per_token_kl is not None:
            mask = inputs["completion_mask"] if "tool_mask" not in inputs else inputs["completion_mask"] * inputs["tool_mask"]
            self._log_kl_per_domain(beta.per_token_kl, mask, inputs["kl_domain_index"])
        return loss

    def _log_kl_per_domain(self, per_token_kl: torch.Tensor, mask: torch.Tensor, domain_index: torch.Tensor) -> None:
        names = (*self.kl_domains, "other")
        sample_kl = (per_token_kl * mask).sum(-1)
        sample_tokens = mask.sum(-1).to(sample_kl.dtype)
        one_hot = torch.nn.functional.one_hot(domain_index.long(), len(names)).to(sample_kl.dtype)  # (B, D)
        local = torch.stack([sample_kl @ one_hot, sample_tokens @ one_hot], dim=1)  # (D, 2)
        totals = self.accelerator.reduce(local, reduction="sum")  # every rank calls this: same shape everywhere
        mode = "train" if self.model.training else "eval"
        for name, (kl_sum, token_count) in zip(names, totals.tolist()):
            if token_count > 0:
                self._metrics[mode][f"domain/{name}/kl"].append(kl_sum / token_count)
