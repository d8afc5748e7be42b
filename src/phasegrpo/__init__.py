"""phasegrpo: multi-domain GRPO with a phase reward curriculum, on TRL's GRPOTrainer."""

from typing import TYPE_CHECKING

from phasegrpo.config import Config, preset
from phasegrpo.router import RewardRouter, register_reward

if TYPE_CHECKING:
    from phasegrpo.domains import Domain

__version__ = "0.1.0"
__all__ = ["Config", "RewardRouter", "load", "preset", "register_domain", "register_reward", "study", "train"]


def train(config: Config, **kwargs):
    """Run GRPO training for `config`; see `phasegrpo.training.train`."""
    from phasegrpo.training import train as run_training

    return run_training(config, **kwargs)


def study(config: Config | None = None, **kwargs):
    """Compare the curriculum with its alternatives (arms) over seeds, evaluated before and after on
    the same held-out rows; see `phasegrpo.studies.study`."""
    from phasegrpo.studies import study as run_study

    return run_study(config, **kwargs)


def load(run_dir, **kwargs):
    """A trained run's model (base + LoRA adapter, eval mode) and tokenizer; see `phasegrpo.inference.load`."""
    from phasegrpo.inference import load as load_run

    return load_run(run_dir, **kwargs)


def register_domain(domain: "Domain", *, replace: bool = False) -> "Domain":
    """Make a `phasegrpo.domains.Domain` known everywhere; see `phasegrpo.domains.register_domain`."""
    # Imported when called, as `train` is: the domains load datasets and torch, `import phasegrpo` does not.
    from phasegrpo.domains import register_domain as register

    return register(domain, replace=replace)
