"""The config groups mirror the registries, every option composes and builds, bad values are named."""

import pytest
import torch
from omegaconf import OmegaConf

from sweeplab.config import ConfigError, call_with
from sweeplab.data import AUGMENTS, DATASETS, PREPROCESS, build_inputs
from sweeplab.losses import LOSSES, build_loss
from sweeplab.models import MODELS
from sweeplab.optim import OPTIMIZERS, SCHEDULERS, build_optimizer, build_schedule
from sweeplab.paths import config_dir

GROUPS = {
    "dataset": DATASETS,
    "model": MODELS,
    "optimizer": OPTIMIZERS,
    "scheduler": SCHEDULERS,
    "loss": LOSSES,
    "preprocess": PREPROCESS,
    "augment": AUGMENTS,
}
OPTIONS = [(group, p.stem) for group in GROUPS for p in sorted((config_dir() / group).glob("*.yaml"))]


@pytest.mark.parametrize("group", GROUPS)
def test_each_group_has_one_config_per_registered_builder(group):
    files = {p.stem for p in (config_dir() / group).glob("*.yaml")}
    assert files == set(GROUPS[group])
    for stem in files:
        assert OmegaConf.load(config_dir() / group / f"{stem}.yaml").name == stem


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_every_option_composes_and_builds(make_cfg, group, option):
    cfg = make_cfg(f"{group}={option}")
    assert cfg[group].name == option
    if group == "optimizer":
        build_optimizer([torch.zeros(3, requires_grad=True)], cfg.optimizer)
    elif group == "scheduler":
        opt = build_optimizer([torch.zeros(3, requires_grad=True)], cfg.optimizer)
        build_schedule(opt, cfg.scheduler, total_steps=100, steps_per_epoch=10)
    elif group == "loss":
        loss = build_loss(cfg.loss)(torch.randn(4, 3, requires_grad=True), torch.tensor([0, 1, 2, 0]))
        loss.backward()
    elif group in ("preprocess", "augment"):
        pipeline = build_inputs(cfg.preprocess, cfg.augment, (3, 8, 8))
        x = torch.randint(0, 256, (20, 3, 8, 8), dtype=torch.uint8)
        pipeline.fit(x)
        assert pipeline(x, train=True).shape[0] == 20
    # datasets and models build in test_data / test_models, where their inputs exist


def test_unknown_option_names_the_field_and_the_choices():
    def builder(*, lr: float, momentum: float = 0.0):
        return lr

    with pytest.raises(ConfigError, match=r"optimizer\.lrr: unknown option; optimizer takes: lr, momentum"):
        call_with(builder, {"lrr": 0.1}, "optimizer")


@pytest.mark.parametrize(
    ("value", "message"),
    [("fast", r"optimizer\.lr: expected a number, got 'fast'"), (True, r"expected a number, got True")],
)
def test_wrong_type_names_the_field(value, message):
    def builder(*, lr: float):
        return lr

    with pytest.raises(ConfigError, match=message):
        call_with(builder, {"lr": value}, "optimizer")


def test_missing_option_is_named():
    def builder(*, hidden: list[int]):
        return hidden

    with pytest.raises(ConfigError, match=r"model\.hidden: missing; expected a list of integers"):
        call_with(builder, {}, "model")


def test_unknown_group_option_lists_the_registered_ones():
    with pytest.raises(
        ConfigError, match=r"model\.name: unknown model 'transformer'; choose one of: cnn, linear"
    ):
        MODELS.build({"name": "transformer"}, "model", input_shape=(4,), num_classes=2)
