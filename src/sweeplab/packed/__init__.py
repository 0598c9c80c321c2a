"""Packed trials: many trials of one architecture trained as one vectorised model (`hydra.sweeper.pack`).

keys     which config keys the members of a pack may differ in (from the registries)
layers   the members' models as one: stacked parameters, one kernel per layer for all
optim    SGD, Adam, AdamW, RMSprop over the stacked tensors, each member its own hyperparameters
loop     the training loop of a pack: records, pruning, early stops and checkpoints per member
run      `train_pack`: build, train, split on out-of-memory, fall back to single runs
"""

from sweeplab.packed.keys import packable_keys
from sweeplab.packed.layers import NotPackable
from sweeplab.packed.run import train_pack

__all__ = ["NotPackable", "packable_keys", "train_pack"]
