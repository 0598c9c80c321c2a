"""One optimizer step for all members of a pack, each with its own hyperparameters.

The members keep their own `torch.optim` optimizer, built as a single trial builds it, with its schedule:
that optimizer never steps, it holds the member's hyperparameters (`lr` as its schedule moves it,
`betas`, `momentum`, `weight_decay`, ...) and, at each checkpoint, the member's state in torch's format,
so a member's `resume.pt` is a single trial's. The update itself runs over the stacked tensors with each
hyperparameter as a [K, 1, ...] tensor: the formulas of torch.optim's SGD, Adam, AdamW and RMSprop
(tests/packed/test_packed.py checks them against torch.optim). K param groups would cost K times the Python.
Adam and AdamW built with torch's fused kernel (sweeplab's default, `sweeplab.optim.fusable`) run that
kernel once per member's row instead: the same arithmetic as the single run, bit for bit.
"""

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from sweeplab.optim import fused_adam_step, fused_kernel
from sweeplab.packed.layers import NotPackable

# torch.optim class -> (its per-parameter state tensors, what it cannot pack)
KINDS: dict[type, tuple[tuple[str, ...], Callable[[dict], str | None]]] = {
    torch.optim.SGD: (("momentum_buffer",), lambda g: "dampening" if g["dampening"] else None),
    torch.optim.Adam: (("exp_avg", "exp_avg_sq"), lambda g: "amsgrad" if g["amsgrad"] else None),
    torch.optim.AdamW: (("exp_avg", "exp_avg_sq"), lambda g: "amsgrad" if g["amsgrad"] else None),
    torch.optim.RMSprop: (("square_avg", "momentum_buffer", "grad_avg"), lambda g: None),
}
# settings that change the update's control flow: members must share them
STRUCTURAL = ("nesterov", "amsgrad", "centered", "maximize", "dampening", "decoupled_weight_decay")


class PackedOptimizer:
    """The update of `flat` [K, P] (all members' parameters, `PackedModel.flat`), a few whole-tensor
    operations per step; `layout` maps each parameter name to its (offset, shape) in a row."""

    def __init__(
        self, flat: Tensor, layout: dict[str, tuple[int, torch.Size]], members: list[Optimizer]
    ) -> None:
        kind = type(members[0])
        if kind not in KINDS or any(type(m) is not kind for m in members):
            raise NotPackable(f"the {kind.__name__} optimizer cannot be packed yet")
        groups = [m.param_groups[0] for m in members]
        for group in groups:
            refused = KINDS[kind][1](group)
            if refused or len(group) != len(groups[0]):
                raise NotPackable(f"{kind.__name__} with {refused} cannot be packed yet")
        if any(len(m.param_groups) != 1 for m in members) or any(
            g.get(key) != groups[0].get(key) for g in groups for key in STRUCTURAL
        ):
            raise NotPackable(f"the members' {kind.__name__} settings differ in more than numbers")
        self.kind, self.members, self.flat, self.layout = kind, members, flat, layout
        # which branches of the update run: those any member needs (a zero rate makes a branch a no-op)
        self.flags = {**groups[0], **{k: any(g.get(k) for g in groups) for k in ("momentum", "weight_decay")}}
        kernels = {fused_kernel(m) for m in members}
        self.kernel = kernels.pop() if len(kernels) == 1 else None  # torch's fused Adam (AdamW) kernel
        self.state: dict[str, Tensor] = {}  # e.g. exp_avg -> [K, P]
        self.steps = 0
        self._hyper: tuple[tuple, dict[str, Tensor]] | None = None

    def zero_grad(self) -> None:
        self.flat.grad = None

    def hyperparameters(self) -> dict[str, Tensor]:
        """Each number of the members' param groups as a [K, 1] tensor (rebuilt when one changes)."""
        groups = [m.param_groups[0] for m in self.members]
        numbers = [
            k for k, v in groups[0].items() if isinstance(v, int | float | tuple) and k not in STRUCTURAL
        ]
        key = tuple(tuple(g[k] for k in numbers) for g in groups)
        if self._hyper is None or self._hyper[0] != key:
            device = self.flat.device
            values: dict[str, Tensor] = {}
            for k in numbers:
                column = [g[k] for g in groups]
                if isinstance(column[0], tuple):  # Adam's betas
                    for i in range(len(column[0])):
                        values[f"{k}{i}"] = torch.tensor([c[i] for c in column], device=device)[:, None]
                else:
                    values[k] = torch.tensor([float(c) for c in column], device=device)[:, None]
            self._hyper = (key, values)
        return self._hyper[1]

    @torch.no_grad()
    def step(self) -> None:
        if self.flat.grad is None:
            return
        self.steps += 1
        if self.kernel is not None:
            self._fused_step()
            return
        hp = dict(self.hyperparameters())
        if "betas0" in hp:  # Adam's bias corrections
            hp["bias_correction1"] = 1 - hp["betas0"] ** self.steps
            hp["bias_correction2_sqrt"] = (1 - hp["betas1"] ** self.steps).sqrt()
        UPDATES[self.kind](self.flat, self.flat.grad, self.state, hp, self.flags, self.steps)

    def _fused_step(self) -> None:
        """torch's fused Adam (AdamW) kernel on each member's row, with that member's numbers."""
        flat, grad = self.flat, self.flat.grad
        if not self.state:
            self.state = {key: torch.zeros_like(flat) for key in KINDS[self.kind][0]}
        m, v = self.state["exp_avg"], self.state["exp_avg_sq"]
        step = torch.tensor(float(self.steps), device=flat.device)  # the kernel reads the count from a tensor
        for k, member in enumerate(self.members):
            fused_adam_step(self.kernel, member.param_groups[0], [flat[k]], [grad[k]], [m[k]], [v[k]], step)

    # --- members' states in torch's format --------------------------------------------------------

    def to_member(self, k: int, model: nn.Module) -> None:
        """Put member k's state into its own optimizer (over `model`'s parameters), as torch keeps it."""
        member = self.members[k]
        for name, p in model.named_parameters():
            offset, shape = self.layout[name]
            state = {
                key: t[k, offset : offset + shape.numel()].view(shape).clone()
                for key, t in self.state.items()
            }
            if self.kind is not torch.optim.SGD and self.steps:
                # where torch keeps it: on the parameter's device for the fused kernel, else on the CPU
                state["step"] = torch.tensor(float(self.steps), device=p.device if self.kernel else None)
            if state:
                member.state[p] = state

    def from_member(self, k: int, model: nn.Module) -> None:
        """Load member k's state from its own optimizer (restored from a checkpoint)."""
        member = self.members[k]
        for name, p in model.named_parameters():
            offset, shape = self.layout[name]
            state = member.state.get(p, {})
            if "step" in state:
                self.steps = int(state["step"])
            for key in KINDS[self.kind][0]:
                value = state.get(key)
                if value is not None:
                    mine = self.state.setdefault(key, torch.zeros_like(self.flat))
                    mine[k, offset : offset + shape.numel()].copy_(value.flatten())

    def keep(self, members: list[int], flat: Tensor) -> None:
        self.members = [self.members[i] for i in members]
        self.flat = flat
        index = torch.tensor(members, device=flat.device)
        self.state = {key: tensor.index_select(0, index) for key, tensor in self.state.items()}
        self._hyper = None


def _sgd(p: Tensor, g: Tensor, state: dict, h: dict, flags: dict, step: int) -> None:
    if flags["weight_decay"]:
        g = g.add(p * h["weight_decay"])
    if flags["momentum"] or "momentum_buffer" in state:
        buf = state.get("momentum_buffer")
        if buf is None:  # torch starts the buffer at the first gradient
            buf = state["momentum_buffer"] = g.clone()
        else:
            buf.mul_(h["momentum"]).add_(g)
        g = g.add(buf * h["momentum"]) if flags["nesterov"] else buf
    p.sub_(h["lr"] * g)


def _adam(p: Tensor, g: Tensor, state: dict, h: dict, flags: dict, step: int) -> None:
    if flags.get("decoupled_weight_decay"):  # AdamW
        p.mul_(1 - h["lr"] * h["weight_decay"])
    elif flags["weight_decay"]:
        g = g.add(p * h["weight_decay"])
    if not state:
        state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
    m, v = state["exp_avg"], state["exp_avg_sq"]
    beta1, beta2 = h["betas0"], h["betas1"]
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g * (1 - beta2))
    denom = (v.sqrt() / h["bias_correction2_sqrt"]).add_(h["eps"])
    p.sub_(h["lr"] / h["bias_correction1"] * m / denom)


def _rmsprop(p: Tensor, g: Tensor, state: dict, h: dict, flags: dict, step: int) -> None:
    if flags["weight_decay"]:
        g = g.add(p * h["weight_decay"])
    if not state:
        state["square_avg"] = torch.zeros_like(p)
        if flags["momentum"]:
            state["momentum_buffer"] = torch.zeros_like(p)
        if flags["centered"]:
            state["grad_avg"] = torch.zeros_like(p)
    alpha = h["alpha"]
    square = state["square_avg"].mul_(alpha).addcmul_(g, g * (1 - alpha))
    if flags["centered"]:
        avg_grad = state["grad_avg"].lerp_(g, 1 - alpha)
        avg = (square - avg_grad * avg_grad).sqrt_()
    else:
        avg = square.sqrt()
    avg = avg.add_(h["eps"])
    if "momentum_buffer" in state:
        buf = state["momentum_buffer"].mul_(h["momentum"]).addcdiv_(g, avg)
        p.sub_(h["lr"] * buf)
    else:
        p.sub_(h["lr"] * g / avg)


UPDATES = {
    torch.optim.SGD: _sgd,
    torch.optim.Adam: _adam,
    torch.optim.AdamW: _adam,
    torch.optim.RMSprop: _rmsprop,
}
