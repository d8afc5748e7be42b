"""Training: TRL's GRPOTrainer extended through one seam module, driven from a Config.

    run.py         train(): the run folder, resume, eval before/after, adapter, report
    preflight.py   the checks before anything is written (InputError): rewards, GPU, model, Hub data
    setup.py       rows, GRPOConfig and LoraConfig from a Config
    trainer.py     PhaseGRPOTrainer: domain-mix sampler, CPU rollouts, curriculum feeding, per-domain KL
    trl_compat.py  every use of TRL internals (the only module that names them)
    domain_kl.py   per-domain KL coefficients and per-domain KL metrics
    callbacks.py   metrics file, sample completions, phase lines, progress bar, Ctrl-C
    distributed.py many processes: run-folder work on the main one, metrics summed, Ctrl-C combined
"""

from phasegrpo.training.preflight import InputError
from phasegrpo.training.run import RunResult, train
from phasegrpo.training.setup import grpo_args, load_training_rows
from phasegrpo.training.trainer import PhaseGRPOTrainer

__all__ = ["InputError", "PhaseGRPOTrainer", "RunResult", "grpo_args", "load_training_rows", "train"]
