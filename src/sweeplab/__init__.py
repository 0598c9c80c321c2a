"""sweeplab: config-driven hyperparameter sweeps and ablation tables for small PyTorch classifiers."""

from sweeplab.config import ConfigError, SweeplabError
from sweeplab.train import Result, train

__all__ = ["ConfigError", "Result", "SweeplabError", "train"]
