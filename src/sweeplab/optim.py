"""Optimizer and learning-rate schedule builders.

Schedules count optimizer steps; options given in epochs (a step schedule's `step_size`, an exponential
decay per epoch) are converted with the run's steps per epoch, so `exponential` with gamma 0.95 decays
the rate by 5% after each pass over the training set whatever the batch size.
"""

import functools
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR, ReduceLROnPlateau
from torch.optim.optimizer import _use_grad_for_differentiable

from sweeplab.config import require
from sweeplab.registry import Registry

OPTIMIZERS: Registry = Registry("optimizer")
SCHEDULERS: Registry = Registry("scheduler")


def _skip_dynamo_import() -> None:
    """torch wraps some Optimizer methods (add_param_group, state_dict, load_state_dict, zero_grad) so
    that torch.compile's tracer leaves them alone, and the wrapper imports torch._dynamo on its first call:
    1.2 s of every command's start-up, for a tracer sweeplab never runs. Outside a compiled function the
    wrapper only calls the method it wraps, and it calls whatever the method's `__dynamo_disable` holds
    instead of importing: the method itself here. (If torch renames the mark, this does nothing.)"""
    wrapper_code = torch._disable_dynamo(lambda: None).__code__
    for value in vars(Optimizer).values():
        method = getattr(value, "__wrapped__", None)
        if getattr(value, "__code__", None) is wrapper_code and method is not None:
            setattr(method, "__dynamo_disable", method)


_skip_dynamo_import()


def _step_in_grad_mode(cls: type[Optimizer]) -> type[Optimizer]:
    """torch's `step` sets the grad mode and calls `torch._dynamo.graph_break()` around the update, which
    imports torch._dynamo (1.2 s) at the first step of every training process. Outside a compiled function
    graph_break does nothing, so until something has loaded the tracer the step runs in its grad mode
    alone; once it is loaded (torch.compile may be tracing), torch's own wrapper runs. Only a step still
    wrapped as torch defines it is replaced (else this does nothing: torch changed, or a class already
    stepped), before any instance adds its profiler hooks."""
    wrapped = cls.__dict__.get("step")
    update = getattr(wrapped, "__wrapped__", None)
    if getattr(wrapped, "__code__", None) is not _USE_GRAD_CODE or update is None:
        return cls

    @functools.wraps(update)
    def step(self: Optimizer, *args: Any, **kwargs: Any) -> Any:
        if _tracer_loaded():
            return wrapped(self, *args, **kwargs)
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            return update(self, *args, **kwargs)

    cls.step = step  # type: ignore[method-assign]
    return cls


def _tracer_loaded() -> bool:
    return "torch._dynamo" in sys.modules


_USE_GRAD_CODE = _use_grad_for_differentiable(lambda self: None).__code__
for _optimizer in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop):
    _step_in_grad_mode(_optimizer)


def fusable(params: list[torch.Tensor]) -> bool | None:
    """Whether Adam and AdamW take torch's fused update: one kernel over each parameter instead of about
    ten operations. On the 2-core CPU it cut an MLP's whole step by a quarter (bench/bench_step.py);
    on CUDA it is torch's fastest path too. The packed update calls the same kernel for each member
    (sweeplab.packed.optim), so a packed member and its single run update alike. None: torch's default,
    where the kernel does not exist (another device, integer or complex parameters)."""
    supported = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return True if supported and params else None


def fused_kernel(optimizer: Optimizer) -> Callable[..., None] | None:
    """The fused kernel torch.optim calls for this Adam or AdamW (built with fused=True), or None: the
    single run's update (sweeplab.train.update) and the packed one call it directly."""
    group = optimizer.param_groups[0]
    if not (isinstance(optimizer, torch.optim.Adam) and group.get("fused")):
        return None
    decoupled = group.get("decoupled_weight_decay", isinstance(optimizer, torch.optim.AdamW))
    return torch._fused_adamw_ if decoupled else torch._fused_adam_


def fused_adam_step(
    kernel: Callable[..., None],
    group: dict[str, Any],
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    step: torch.Tensor,
) -> None:
    """One call of `kernel` (`fused_kernel`'s) with a param group's numbers; `step`: the count after this
    step, one tensor read for every parameter."""
    kernel(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        [],
        [step] * len(params),
        amsgrad=False,
        lr=group["lr"],
        beta1=group["betas"][0],
        beta2=group["betas"][1],
        weight_decay=group["weight_decay"],
        eps=group["eps"],
        maximize=group["maximize"],
        grad_scale=None,
        found_inf=None,
    )


def _check_common(lr: float, weight_decay: float) -> None:
    require(lr > 0 and math.isfinite(lr), "optimizer.lr", f"must be a positive number, got {lr}")
    require(weight_decay >= 0, "optimizer.weight_decay", f"must be >= 0, got {weight_decay}")


def _check_betas(betas: list[float]) -> tuple[float, float]:
    require(
        len(betas) == 2 and all(0 <= b < 1 for b in betas),
        "optimizer.betas",
        f"needs two numbers in [0, 1), e.g. [0.9, 0.999], got {betas}",
    )
    return betas[0], betas[1]


@OPTIMIZERS.register("sgd", packable=("lr", "momentum", "weight_decay"))
def sgd(*, params: Iterable, lr: float, momentum: float, nesterov: bool, weight_decay: float) -> Optimizer:
    _check_common(lr, weight_decay)
    require(0 <= momentum < 1, "optimizer.momentum", f"must be in [0, 1), got {momentum}")
    require(not nesterov or momentum > 0, "optimizer.nesterov", "needs optimizer.momentum > 0")
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)


@OPTIMIZERS.register("adam", packable=("lr", "betas", "eps", "weight_decay"))
def adam(
    *, params: Iterable, lr: float, betas: list[float], eps: float, weight_decay: float, amsgrad: bool = False
) -> Optimizer:
    return _adam_kind(torch.optim.Adam, params, lr, betas, eps, weight_decay, amsgrad)


@OPTIMIZERS.register("adamw", packable=("lr", "betas", "eps", "weight_decay"))
def adamw(
    *, params: Iterable, lr: float, betas: list[float], eps: float, weight_decay: float, amsgrad: bool = False
) -> Optimizer:
    return _adam_kind(torch.optim.AdamW, params, lr, betas, eps, weight_decay, amsgrad)


def _adam_kind(
    kind: type[Optimizer],
    params: Iterable,
    lr: float,
    betas: list[float],
    eps: float,
    weight_decay: float,
    amsgrad: bool,
) -> Optimizer:
    _check_common(lr, weight_decay)
    params = list(params)
    return kind(
        params,
        lr=lr,
        betas=_check_betas(betas),
        eps=eps,
        weight_decay=weight_decay,
        amsgrad=amsgrad,
        fused=fusable(params),
    )


@OPTIMIZERS.register("rmsprop", packable=("lr", "alpha", "momentum", "eps", "weight_decay"))
def rmsprop(
    *,
    params: Iterable,
    lr: float,
    alpha: float,
    momentum: float,
    eps: float,
    weight_decay: float,
    centered: bool = False,
) -> Optimizer:
    _check_common(lr, weight_decay)
    require(0 < alpha < 1, "optimizer.alpha", f"is a smoothing constant in (0, 1), got {alpha}")
    require(0 <= momentum < 1, "optimizer.momentum", f"must be in [0, 1), got {momentum}")
    return torch.optim.RMSprop(
        params, lr=lr, alpha=alpha, momentum=momentum, eps=eps, weight_decay=weight_decay, centered=centered
    )


def build_optimizer(params: Iterable, node: Mapping) -> Optimizer:
    return OPTIMIZERS.build(node, "optimizer", params=params)


@dataclass
class Schedule:
    """A scheduler and when it steps: after every optimizer step, or with the validation loss at each
    evaluation (reduce-on-plateau)."""

    scheduler: LRScheduler | ReduceLROnPlateau
    on_eval: bool = False
    constant: bool = False  # the rate never moves: no step to take (it cost as much as a small layer)

    def after_step(self) -> None:
        if not (self.on_eval or self.constant):
            self.scheduler.step()

    def after_eval(self, val_loss: float) -> None:
        if self.on_eval:
            self.scheduler.step(val_loss)


def build_schedule(optimizer: Optimizer, node: Mapping, total_steps: int, steps_per_epoch: int) -> Schedule:
    return SCHEDULERS.build(
        node, "scheduler", optimizer=optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch
    )


@SCHEDULERS.register("constant")
def constant(*, optimizer: Optimizer, total_steps: int, steps_per_epoch: int) -> Schedule:
    return Schedule(LambdaLR(optimizer, lambda step: 1.0), constant=True)


@SCHEDULERS.register("step", packable=("step_size", "gamma"))
def step_decay(
    *, optimizer: Optimizer, total_steps: int, steps_per_epoch: int, step_size: float, gamma: float
) -> Schedule:
    """Multiply the rate by `gamma` every `step_size` epochs."""
    require(step_size > 0, "scheduler.step_size", f"is in epochs and must be positive, got {step_size}")
    require(0 < gamma <= 1, "scheduler.gamma", f"must be in (0, 1], got {gamma}")
    every = max(1, round(step_size * steps_per_epoch))
    return Schedule(LambdaLR(optimizer, lambda step: gamma ** (step // every)))


@SCHEDULERS.register("exponential", packable=("gamma",))
def exponential(*, optimizer: Optimizer, total_steps: int, steps_per_epoch: int, gamma: float) -> Schedule:
    """Multiply the rate by `gamma` after each epoch (e.g. 0.95)."""
    require(0 < gamma <= 1, "scheduler.gamma", f"must be in (0, 1], got {gamma}")
    return Schedule(LambdaLR(optimizer, lambda step: gamma ** (step // steps_per_epoch)))


@SCHEDULERS.register("cosine", packable=("warmup_steps", "min_factor"))
def cosine(
    *, optimizer: Optimizer, total_steps: int, steps_per_epoch: int, warmup_steps: int, min_factor: float
) -> Schedule:
    """Linear warm-up over `warmup_steps`, then cosine decay to `min_factor` times the rate."""
    require(
        0 <= warmup_steps < total_steps,
        "scheduler.warmup_steps",
        f"must be in [0, {total_steps}) (the run's steps), got {warmup_steps}",
    )
    require(0 <= min_factor <= 1, "scheduler.min_factor", f"must be in [0, 1], got {min_factor}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return Schedule(LambdaLR(optimizer, factor))


@SCHEDULERS.register("plateau", packable=("factor", "patience", "min_lr"))
def plateau(
    *,
    optimizer: Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    factor: float,
    patience: int,
    min_lr: float,
) -> Schedule:
    """Reduce the rate by `factor` when the validation loss has not improved for `patience` evaluations."""
    require(0 < factor < 1, "scheduler.factor", f"must be in (0, 1), got {factor}")
    require(patience >= 0, "scheduler.patience", f"counts evaluations and must be >= 0, got {patience}")
    return Schedule(
        ReduceLROnPlateau(optimizer, factor=factor, patience=patience, min_lr=min_lr), on_eval=True
    )


@SCHEDULERS.register("onecycle", packable=("pct_start", "div_factor", "final_div_factor"))
def onecycle(
    *,
    optimizer: Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    pct_start: float,
    div_factor: float,
    final_div_factor: float,
    cycle_momentum: bool = False,
) -> Schedule:
    """Smith's one-cycle policy peaking at the optimizer's `lr`."""
    require(0 < pct_start < 1, "scheduler.pct_start", f"must be in (0, 1), got {pct_start}")
    peak = [group["lr"] for group in optimizer.param_groups]
    return Schedule(
        OneCycleLR(
            optimizer,
            max_lr=peak,
            total_steps=total_steps,
            pct_start=pct_start,
            div_factor=div_factor,
            final_div_factor=final_div_factor,
            cycle_momentum=cycle_momentum,
        )
    )
