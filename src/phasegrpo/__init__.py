"""phasegrpo: multi-domain GRPO with a phase reward curriculum, on TRL's GRPOTrainer."""

from phasegrpo.config import Config, preset
from phasegrpo.router import RewardRouter

__version__ = "0.1.0"
__all__ = ["Config", "RewardRouter", "preset", "train"]


def train(config: Config, **kwargs):
    """Run GRPO training for `config`; see `phasegrpo.training.train`."""
    from phasegrpo.training import train as run_training

    return run_training(config, **kwargs)
