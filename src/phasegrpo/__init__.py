"""phasegrpo: multi-domain GRPO with a phase reward curriculum, on TRL's GRPOTrainer."""

__version__ = "0.1.0"
