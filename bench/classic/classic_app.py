"""The classic stack a user would otherwise pick, for bench/bench_real_trials.py: Hydra with
hydra-optuna-sweeper (TPE over the learning rate) and a plain PyTorch loop that trains an MNIST-1D MLP
(100, 100) with Adam on tensors, batches drawn by index, and evaluates once, at the end. It reads the
MNIST-1D arrays sweeplab cached (`$SWEEPLAB_DATA_DIR/mnist1d/mnist1d_generated.npz`). It needs Optuna < 3,
so it runs from its own environment (see bench_real_trials.py)."""

import os

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn


@hydra.main(version_base="1.3", config_path=".", config_name="classic")
def main(cfg: DictConfig) -> float:
    torch.manual_seed(cfg.seed)
    arrays = np.load(os.path.join(os.environ["SWEEPLAB_DATA_DIR"], "mnist1d", "mnist1d_generated.npz"))
    x, y = torch.tensor(arrays["x"], dtype=torch.float32), torch.tensor(arrays["y"], dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    n_val = len(y) // 10
    x_val, y_val, x_train, y_train = x[order[:n_val]], y[order[:n_val]], x[order[n_val:]], y[order[n_val:]]
    model = nn.Sequential(nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(cfg.steps):
        batch = torch.randint(0, len(y_train), (cfg.batch_size,))
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x_train[batch]), y_train[batch]).backward()
        optimizer.step()
    with torch.no_grad():
        return (model(x_val).argmax(1) == y_val).float().mean().item()


if __name__ == "__main__":
    main()
