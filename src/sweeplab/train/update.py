"""The update at the end of a training step: the gradients cleared, the optimizer stepped.

torch.optim's `step` and `zero_grad` wrap a few microseconds of arithmetic in much more Python: profiler
records, hooks, the parameters regrouped by device and dtype at every step, one step counter per
parameter increased one by one. For the MLP of bench/bench_step.py on the CPU that wrapper was about
170 of a step's 545 µs, more than the fused kernel it calls. For Adam and AdamW built with that kernel
(sweeplab's default, `sweeplab.optim.fusable`), `Update` calls it directly, with its lists built once:
the arithmetic is torch's, bit for bit (tests/train/test_update.py), and the state stays in the optimizer, in
torch's format, for checkpoints. The packed update calls the same kernel (`sweeplab.packed.optim`).
Anything else (SGD, RMSprop, amsgrad, several parameter groups, a GradScaler's fp16 steps, step hooks)
goes through torch.optim as usual.
"""

from collections.abc import Callable

import torch
from torch import Tensor
from torch.optim import Optimizer

from sweeplab.optim import fused_adam_step, fused_kernel


class Update:
    """`zero_grad()` and `step()` of `optimizer`, the fused kernel called directly where it can be.
    Build it after the optimizer's state is loaded (a resumed run): it works on that state in place."""

    def __init__(self, optimizer: Optimizer, scaled: bool = False) -> None:
        self.optimizer = optimizer
        self.kernel = None if scaled else _direct_kernel(optimizer)
        if self.kernel is None:
            return
        group = optimizer.param_groups[0]
        self.group, self.params = group, list(group["params"])
        state = [optimizer.state[p] for p in self.params]
        device = self.params[0].device
        # one counter for all parameters: torch keeps one per parameter, always equal, each increased
        # by its own operation; the state keeps this one tensor under every parameter's "step"
        start = float(state[0]["step"]) if state[0] else 0.0
        self.count = torch.tensor(start, dtype=torch.float32, device=device)
        for p, s in zip(self.params, state, strict=True):
            if not s:
                s["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                s["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            s["step"] = self.count
        self.exp_avgs = [s["exp_avg"] for s in state]
        self.exp_avg_sqs = [s["exp_avg_sq"] for s in state]
        # the learning-rate scheduler warns of a step it did not see through torch's wrapper
        optimizer._opt_called = True  # type: ignore[attr-defined]

    def zero_grad(self) -> None:
        if self.kernel is None:
            self.optimizer.zero_grad(set_to_none=True)
            return
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        if self.kernel is None:
            self.optimizer.step()
            return
        params, m, v = self.params, self.exp_avgs, self.exp_avg_sqs
        grads: list[Tensor | None] = [p.grad for p in params]
        if any(g is None for g in grads):  # torch skips a parameter without a gradient (frozen, unused)
            kept = [i for i, g in enumerate(grads) if g is not None]
            if not kept:
                return
            params, m, v = [params[i] for i in kept], [m[i] for i in kept], [v[i] for i in kept]
            grads = [grads[i] for i in kept]
        group = self.group
        self.count += 1
        fused_adam_step(self.kernel, group, params, grads, m, v, self.count)  # type: ignore[arg-type]


def _direct_kernel(optimizer: Optimizer) -> Callable[..., None] | None:
    """The fused kernel to call for `optimizer`, or None where torch.optim's own step must run."""
    kernel = fused_kernel(optimizer)
    if kernel is None or len(optimizer.param_groups) != 1:
        return None
    group = optimizer.param_groups[0]
    hooked = optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks
    plain = not (group["amsgrad"] or group.get("capturable") or group.get("differentiable"))
    numbers = not isinstance(group["lr"], Tensor)
    return kernel if plain and numbers and not hooked and group["params"] else None
