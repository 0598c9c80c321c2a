"""sweeplab: config-driven hyperparameter sweeps and ablation tables for small PyTorch classifiers.

Entry points: `sweeplab.train.train(cfg) -> Result` and the `sweeplab` command (`sweeplab.cli`).
"""

__version__ = "0.1.0"
