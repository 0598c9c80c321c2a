"""Optimizers and schedules: the learning rate follows the documented curve; bad values are named."""

import math

import pytest
import torch

import sweeplab.optim
from sweeplab.config import ConfigError
from sweeplab.losses import build_loss
from sweeplab.optim import build_optimizer, build_schedule


def lrs(make_cfg, overrides, steps=40, steps_per_epoch=10, val_losses=None):
    cfg = make_cfg("optimizer=sgd", "optimizer.lr=0.1", *overrides)
    opt = build_optimizer([torch.zeros(1, requires_grad=True)], cfg.optimizer)
    schedule = build_schedule(opt, cfg.scheduler, steps, steps_per_epoch)
    seen = []
    for step in range(steps):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.after_step()
        if val_losses is not None:
            schedule.after_eval(val_losses[step])
    return seen


def test_exponential_decays_once_per_epoch(make_cfg):
    seen = lrs(make_cfg, ["scheduler=exponential", "scheduler.gamma=0.95"])
    assert seen[0] == seen[9] == pytest.approx(0.1)
    assert seen[10] == pytest.approx(0.1 * 0.95)
    assert seen[39] == pytest.approx(0.1 * 0.95**3)


def test_step_schedule_counts_epochs(make_cfg):
    seen = lrs(make_cfg, ["scheduler=step", "scheduler.step_size=2", "scheduler.gamma=0.5"])
    assert seen[19] == pytest.approx(0.1) and seen[20] == pytest.approx(0.05)


def test_cosine_warms_up_then_decays_to_the_floor(make_cfg):
    seen = lrs(
        make_cfg, ["scheduler=cosine", "scheduler.warmup_steps=4", "scheduler.min_factor=0.1"], steps=44
    )
    assert seen[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert seen[24] == pytest.approx(0.1 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))))
    assert min(seen) >= 0.01 - 1e-12


def test_plateau_reduces_when_validation_loss_stalls(make_cfg):
    seen = lrs(
        make_cfg,
        ["scheduler=plateau", "scheduler.patience=2", "scheduler.factor=0.5"],
        steps=8,
        val_losses=[1.0] * 8,
    )
    assert seen[0] == pytest.approx(0.1) and seen[-1] < 0.1


def test_onecycle_peaks_at_the_optimizer_lr(make_cfg):
    seen = lrs(make_cfg, ["scheduler=onecycle", "scheduler.pct_start=0.25"], steps=40)
    assert max(seen) == pytest.approx(0.1) and seen.index(max(seen)) == 9
    assert seen[0] == pytest.approx(0.1 / 25)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optimizer.lr=-0.1"], r"optimizer\.lr: must be a positive number, got -0.1"),
        (["optimizer.lr=0"], r"optimizer\.lr: must be a positive number, got 0"),
        (["optimizer=sgd", "optimizer.momentum=1.5"], r"optimizer\.momentum: must be in \[0, 1\)"),
        (["optimizer=sgd", "optimizer.momentum=0", "optimizer.nesterov=true"], r"optimizer\.nesterov: needs"),
        (["optimizer.weight_decay=-1"], r"optimizer\.weight_decay: must be >= 0"),
        (["optimizer.betas=[0.9]"], r"optimizer\.betas: needs two numbers"),
        (["optimizer=lion"], None),
    ],
)
def test_bad_optimizer_values_name_the_field(make_cfg, overrides, message):
    if message is None:  # an unknown group option is Hydra's to reject, with the list of options
        with pytest.raises(Exception, match=r"Could not find 'optimizer/lion'"):
            make_cfg(*overrides)
        return
    with pytest.raises(ConfigError, match=message):
        build_optimizer([torch.zeros(1, requires_grad=True)], make_cfg(*overrides).optimizer)


def test_hinge_loss_is_the_multiclass_svm_loss(make_cfg):
    scores = torch.tensor([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
    labels = torch.tensor([0, 1, 2])
    # CS231n's worked example: per-sample losses 2.9, 0, 12.9, each divided by the 3 classes here
    expected = torch.tensor([2.9, 0.0, 12.9]).div(3).mean()
    assert build_loss(make_cfg("loss=hinge").loss)(scores, labels) == pytest.approx(expected.item(), abs=1e-5)


@pytest.mark.parametrize(
    "cls, options",
    [
        (torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
        (torch.optim.Adam, dict(lr=0.01, weight_decay=0.1)),
        (torch.optim.AdamW, dict(lr=0.01)),
        (torch.optim.RMSprop, dict(lr=0.01, momentum=0.5)),
    ],
)
def test_a_step_without_the_tracer_updates_as_torchs_own_step(cls, options, monkeypatch):
    """Until torch._dynamo is loaded, the optimizers step without torch's wrapper (which imports it:
    1.2 s of every training process's start-up; test_imports checks that a run never loads it): the
    same weights as torch's own step, grad mode off inside the step and on after."""

    def run(tracer_loaded: bool) -> list[torch.Tensor]:
        monkeypatch.setattr(sweeplab.optim, "_tracer_loaded", lambda: tracer_loaded)
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
        optimizer = cls(model.parameters(), **options)
        x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
        for _ in range(3):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            assert torch.is_grad_enabled() and all(p.grad_fn is None for p in model.parameters())
        return [p.detach().clone() for p in model.parameters()]

    chain = [cls.step]  # torch's profiler hook (once an instance exists), ours, torch's update
    while hasattr(chain[-1], "__wrapped__"):
        chain.append(chain[-1].__wrapped__)
    assert any(step.__code__.co_filename == sweeplab.optim.__file__ for step in chain)
    ours, torchs = run(tracer_loaded=False), run(tracer_loaded=True)
    assert all(torch.equal(a, b) for a, b in zip(ours, torchs, strict=True))
