"""K models of one architecture as one (horizontal fusion, HFTA-style): every parameter and buffer of the
members stacked along a new leading dimension, and a forward that runs all K with one kernel per layer.

Inside the forward a batch lives in one of two layouts:
  split    [K, B, *features]   dense layers: `baddbmm` over the stacked weights
  grouped  [B, K*C, *spatial]  convolutions (groups=K), batch/group norm over K*C channels, pooling
Each layer asks for the layout it needs; elementwise layers take either. The members' own modules are
walked side by side, so a layer the packing does not know raises `NotPackable` before any training.
"""

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sweeplab.models.cnn import PreActBlock
from sweeplab.models.layers import ACTIVATIONS
from sweeplab.train.rng import drawing_from


class NotPackable(Exception):
    """These trials cannot be trained as one pack; the message says why."""


class Batch:
    """A packed batch: `x` in the split or grouped layout, for `k` members."""

    def __init__(self, x: Tensor, k: int, grouped: bool = False) -> None:
        self.x, self.k, self.grouped = x, k, grouped

    def split(self) -> Tensor:
        if self.grouped:
            b, kc, *rest = self.x.shape
            self.x, self.grouped = self.x.view(b, self.k, kc // self.k, *rest).transpose(0, 1), False
        return self.x

    def group(self) -> Tensor:
        if not self.grouped:
            k, b, c, *rest = self.x.shape
            self.x, self.grouped = self.x.transpose(0, 1).reshape(b, k * c, *rest), True
        return self.x


Op = Callable[["PackedModel", Batch], Batch]
ELEMENTWISE = tuple({*ACTIVATIONS.values(), nn.Identity})
POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)


class PackedModel:
    """The members' trainable parameters in one leaf tensor `flat` [K, P] (so the optimizer updates
    all of them with a few whole-tensor operations), seen by the layers as [K, ...] views under their
    own state-dict names in `tensors`, beside the stacked buffers (running statistics)."""

    def __init__(self, members: Sequence[nn.Module], generators: Sequence[torch.Generator]) -> None:
        self.k = len(members)
        self.generators = list(generators)  # each member's random numbers (dropout), as if it ran alone
        self.training = True
        self.names = list(members[0].state_dict())
        states = [m.state_dict() for m in members]
        trainable = [name for name, p in members[0].named_parameters() if p.requires_grad]
        self.layout: dict[str, tuple[int, torch.Size]] = {}  # parameter -> (offset in flat, shape)
        offset = 0
        for name in trainable:
            self.layout[name] = (offset, states[0][name].shape)
            offset += states[0][name].numel()
        rows = [
            torch.cat([s[name].detach().flatten() for name in trainable] or [torch.zeros(0)]) for s in states
        ]
        self.flat = nn.Parameter(torch.stack(rows))
        self.tensors: dict[str, Tensor] = {
            name: torch.stack([s[name].detach() for s in states])
            for name in self.names
            if name not in self.layout
        }
        self._views()
        self.per_member: list[list] = []  # member-indexed lists held by ops (dropout rates), kept in step
        self.op = self._compile(list(members), "")

    def _views(self) -> None:
        """Fresh views of `flat` for a forward (each forward's graph then leads to `flat`)."""
        for name, (offset, shape) in self.layout.items():
            self.tensors[name] = self.flat[:, offset : offset + shape.numel()].view(self.k, *shape)

    def train(self, mode: bool = True) -> None:
        self.training = mode

    def __call__(self, x: Tensor, shared: bool = False) -> Tensor:
        """Logits [K, B, classes] for inputs [K, B, ...] (each member its own batch) or, `shared`, one
        batch [B, ...] that every member sees (evaluation)."""
        if shared:
            x = x.expand(self.k, *x.shape)
        self._views()
        return self.op(self, Batch(x, self.k)).split()

    # --- members in and out -----------------------------------------------------------------------

    def member_state(self, k: int) -> dict[str, Tensor]:
        """Member k's state dict, as its own model names it (a copy)."""
        return {name: self.tensors[name][k].detach().clone() for name in self.names}

    def load_member(self, k: int, state: dict[str, Tensor]) -> None:
        with torch.no_grad():
            for name in self.names:
                self.tensors[name][k].copy_(state[name])

    def keep(self, members: list[int]) -> nn.Parameter:
        """Go on with these members only; returns the new `flat` (for the optimizer)."""
        index = torch.tensor(members, device=self.flat.device)
        self.flat = nn.Parameter(self.flat.detach().index_select(0, index))
        for name in self.names:
            if name not in self.layout:
                self.tensors[name] = self.tensors[name].index_select(0, index)
        for values in [self.generators, *self.per_member]:
            values[:] = [values[i] for i in members]
        self.k = len(members)
        self._views()
        return self.flat

    # --- the forward, compiled from the members' modules ------------------------------------------

    def _compile(self, modules: list[nn.Module], prefix: str) -> Op:
        first = modules[0]
        kinds = {type(m) for m in modules}
        if kinds <= {nn.Dropout, nn.Identity} and nn.Dropout in kinds:  # dropout 0 builds an Identity
            return self._dropout([m.p if isinstance(m, nn.Dropout) else 0.0 for m in modules])
        if len(kinds) > 1:
            raise NotPackable(
                f"the members' layers at {prefix or 'the top'} differ: {sorted(map(str, kinds))}"
            )
        if isinstance(first, nn.Sequential):
            children = [self._compile([m[i] for m in modules], f"{prefix}{i}.") for i in range(len(first))]

            def sequential(pm: PackedModel, b: Batch) -> Batch:
                for child in children:
                    b = child(pm, b)
                return b

            return sequential
        if isinstance(first, PreActBlock):
            return self._preact(modules, prefix)
        _same(modules, prefix)
        w, bias = f"{prefix}weight", f"{prefix}bias"
        if isinstance(first, ELEMENTWISE):
            return lambda pm, b: Batch(first(b.x), b.k, b.grouped)
        if isinstance(first, POOLS):
            return lambda pm, b: Batch(first(b.group()), b.k, True)
        if isinstance(first, nn.Flatten) and (first.start_dim, first.end_dim) == (1, -1):
            return lambda pm, b: Batch(b.split().flatten(2), b.k)
        if isinstance(first, nn.Linear):
            return lambda pm, b: Batch(_linear(b.split(), pm.tensors[w], pm.tensors.get(bias)), b.k)
        if isinstance(first, nn.Conv1d | nn.Conv2d) and first.padding_mode == "zeros":
            return _conv(first, w, bias)
        if isinstance(first, nn.BatchNorm1d | nn.BatchNorm2d):
            return _batch_norm(first, prefix)
        if isinstance(first, nn.LayerNorm) and len(first.normalized_shape) == 1:
            return _layer_norm(first, w, bias)
        if isinstance(first, nn.GroupNorm):
            return _group_norm(first, w, bias)
        where = f" ({prefix.rstrip('.')})" if prefix else ""
        raise NotPackable(f"{type(first).__name__} layers{where} cannot be packed yet")

    def _dropout(self, rates: list[float]) -> Op:
        self.per_member.append(rates)

        def dropout(pm: PackedModel, b: Batch) -> Batch:
            if not pm.training:
                return b
            # each member's F.dropout under its own generator: the masks of its run alone, on any device.
            # Contiguous as its run alone has it: CUDA's kernel maps random numbers to elements otherwise
            # for a strided input (a member's rows of the grouped layout, after batch norm or pooling)
            out = []
            for xk, p, g in zip(b.split(), rates, pm.generators, strict=True):
                with drawing_from(g):
                    out.append(F.dropout(xk.contiguous(), p, training=True) if p else xk)
            return Batch(torch.stack(out), b.k)

        return dropout

    def _preact(self, modules: list[nn.Module], prefix: str) -> Op:
        pre = self._compile([m.pre for m in modules], f"{prefix}pre.")
        body = self._compile([m.body for m in modules], f"{prefix}body.")
        projected = modules[0].shortcut is not None
        shortcut = self._compile([m.shortcut for m in modules], f"{prefix}shortcut.") if projected else None

        def block(pm: PackedModel, b: Batch) -> Batch:
            skip = Batch(b.group(), b.k, True)
            out = pre(pm, b)
            if shortcut is not None:  # He et al.: the projection takes the pre-activated input
                skip = shortcut(pm, Batch(out.group(), out.k, True))
            out = body(pm, out)
            return Batch(out.group() + skip.group(), b.k, True)

        return block


def _same(modules: list[nn.Module], prefix: str) -> None:
    """Members must agree on everything but their tensors (shapes, eps, strides, ...)."""
    settings = [
        {k: v for k, v in vars(m).items() if not k.startswith("_") and k != "training"} for m in modules
    ]
    if any(s != settings[0] for s in settings[1:]):
        raise NotPackable(f"the members' {type(modules[0]).__name__} layers at {prefix or 'the top'} differ")


def _linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    k, b, *rest = x.shape  # a Linear after a signal keeps its extra dims, like nn.Linear
    flat = x.reshape(k, -1, rest[-1])
    out = (
        torch.bmm(flat, weight.transpose(1, 2))
        if bias is None
        else torch.baddbmm(bias.unsqueeze(1), flat, weight.transpose(1, 2))
    )
    return out.view(k, b, *rest[:-1], out.shape[-1])


def _conv(conv: nn.Conv1d | nn.Conv2d, w: str, bias: str) -> Op:
    run = F.conv2d if isinstance(conv, nn.Conv2d) else F.conv1d

    def op(pm: PackedModel, b: Batch) -> Batch:
        weight = pm.tensors[w]
        stacked_bias = pm.tensors.get(bias)
        x = run(
            b.group(),
            weight.flatten(0, 1),
            None if stacked_bias is None else stacked_bias.flatten(),
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups * b.k,
        )
        return Batch(x, b.k, True)

    return op


def _batch_norm(norm: nn.BatchNorm1d | nn.BatchNorm2d, prefix: str) -> Op:
    names = [f"{prefix}{n}" for n in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]

    def op(pm: PackedModel, b: Batch) -> Batch:
        weight, bias, mean, var, count = (pm.tensors.get(n) for n in names)
        momentum = norm.momentum
        if pm.training and norm.track_running_stats and count is not None:
            count.add_(1)
            if momentum is None:  # cumulative average, as nn.BatchNorm does
                momentum = 1.0 / float(count[0])
        x = F.batch_norm(
            b.group(),
            None if mean is None else mean.view(-1),
            None if var is None else var.view(-1),
            None if weight is None else weight.flatten(),
            None if bias is None else bias.flatten(),
            pm.training or mean is None,
            momentum or 0.0,
            norm.eps,
        )
        return Batch(x, b.k, True)

    return op


def _layer_norm(norm: nn.LayerNorm, w: str, bias: str) -> Op:
    def op(pm: PackedModel, b: Batch) -> Batch:
        x = b.split()
        x = F.layer_norm(x, norm.normalized_shape, eps=norm.eps)
        if norm.elementwise_affine:
            shape = (b.k,) + (1,) * (x.dim() - 2) + (x.shape[-1],)
            x = x * pm.tensors[w].view(shape)
            if bias in pm.tensors:
                x = x + pm.tensors[bias].view(shape)
        return Batch(x, b.k)

    return op


def _group_norm(norm: nn.GroupNorm, w: str, bias: str) -> Op:
    def op(pm: PackedModel, b: Batch) -> Batch:
        weight, shift = pm.tensors.get(w), pm.tensors.get(bias)
        x = F.group_norm(
            b.group(),
            norm.num_groups * b.k,
            None if weight is None else weight.flatten(),
            None if shift is None else shift.flatten(),
            norm.eps,
        )
        return Batch(x, b.k, True)

    return op
