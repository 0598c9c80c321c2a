"""A small app in lightning-hydra-template's layout: a model and an optimizer group, and the metric the
template's `hparams_search` files optimise (`optimized_metric`) returned by the task."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="train")
def train(cfg: DictConfig) -> float:
    # a stand-in for val/acc_best: best at lr 0.01, width 128
    import math

    score = 1.0 - abs(math.log10(cfg.model.optimizer.lr) + 2) / 4 - abs(cfg.model.net.lin1_size - 128) / 512
    return {"val/acc_best": score}[cfg.optimized_metric]


if __name__ == "__main__":
    train()
