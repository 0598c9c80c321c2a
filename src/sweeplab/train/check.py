"""A run's objects built without its data, so a config that cannot work fails before anything loads:
`train` calls it first, and the sweeper calls it for every kind of trial before a sweep's first one."""

import math

import torch
from omegaconf import DictConfig

from sweeplab.config import call_with, to_dict
from sweeplab.data import DATASETS, build_inputs, check_source, input_spec
from sweeplab.losses import build_loss
from sweeplab.models import create_model
from sweeplab.optim import build_optimizer, build_schedule
from sweeplab.track import check_loggers
from sweeplab.train.options import TrainerOptions

UNKNOWN_STEPS = 10**9  # a budget in epochs has as many steps as the data allow: not known without them


def check_config(cfg: DictConfig) -> TrainerOptions:
    """Raises ConfigError naming the field of the first value that cannot work."""
    opts: TrainerOptions = call_with(TrainerOptions, cfg.trainer, "trainer")
    opts.resolve_device()
    check_loggers(cfg.get("logger"))
    build_loss(cfg.loss)
    optimizer = build_optimizer([torch.zeros(1, requires_grad=True)], cfg.optimizer)
    steps = min(opts.max_steps or UNKNOWN_STEPS, opts.limit_steps or UNKNOWN_STEPS)
    build_schedule(optimizer, cfg.scheduler, steps, 100)
    DATASETS.get(to_dict(cfg.dataset).get("name"), "dataset.name")
    check_source(cfg.dataset)
    spec = input_spec(cfg.dataset)
    if spec is not None:  # a data set whose shape is known without reading it
        shape, classes = spec
        build_inputs(cfg.preprocess, cfg.augment, shape)
        if cfg.preprocess.name == "pca":  # keeps at most every input, flattened
            shape = (math.prod(shape),)
        create_model(cfg.model, shape, classes)
    return opts
