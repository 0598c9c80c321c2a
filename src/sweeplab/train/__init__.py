"""Training: one trial from a composed config, and its records."""

from sweeplab.train.loop import Reporter, Result, train
from sweeplab.train.options import TrainerOptions

__all__ = ["Reporter", "Result", "TrainerOptions", "train"]
