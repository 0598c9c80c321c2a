"""A Hydra app whose task does nothing but return x², to time a sweeper's own work per trial.

python bench/noop/noop_app.py -m 'x=interval(-1, 1)' hydra.sweeper.n_trials=100
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=str(Path(__file__).parent), config_name="noop")
def noop(cfg: DictConfig) -> float:
    return cfg.x**2


if __name__ == "__main__":
    noop()
