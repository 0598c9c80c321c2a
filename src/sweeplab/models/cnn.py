"""Convolutional models on signals (C, L) or images (C, H, W): a plain `cnn` and `preact_resnet`."""

import math
from typing import Literal

from torch import Tensor, nn

from sweeplab.config import require
from sweeplab.models.layers import create_act, create_conv, create_dropout, create_norm
from sweeplab.models.mlp import dense_stack
from sweeplab.models.registry import MODELS

Pool = Literal["max", "avg", "none"]


def spatial_dims(input_shape: tuple[int, ...], model: str) -> int:
    require(
        len(input_shape) in (2, 3),
        "model",
        f"{model} needs signals (C, L) or images (C, H, W), but the inputs have shape {input_shape} "
        "(flat vectors, e.g. after preprocess=pca); use model=mlp, or a preprocessing that keeps the shape",
    )
    return len(input_shape) - 1


def _pool(kind: str, dims: int) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "max":
        return nn.MaxPool2d(2) if dims == 2 else nn.MaxPool1d(2)
    return nn.AvgPool2d(2) if dims == 2 else nn.AvgPool1d(2)


@MODELS.register("cnn", packable=("dropout",))
def cnn(
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    channels: list[int],
    kernel_size: int,
    pool: Pool,
    hidden: list[int],
    activation: str,
    norm: str,
    dropout: float,
    conv_activation: bool = True,
    pool_after: list[int] | None = None,
    padding: Literal["same", "valid"] = "same",
) -> nn.Module:
    """conv -> norm -> activation -> pool (halves each side) per entry of `channels`, then a dense head.

    `conv_activation: false` leaves the activation out after the convolutions (a "plain" conv net).
    `pool_after` lists the (1-based) conv layers followed by pooling; null pools after every one.
    `padding: valid` lets each convolution shrink its input by kernel_size - 1 (LeNet-style nets).
    """
    dims = spatial_dims(input_shape, "cnn")
    require(
        len(channels) > 0 and all(c > 0 for c in channels),
        "model.channels",
        f"needs at least one positive channel count, e.g. [32, 64], got {channels}",
    )
    require(
        kernel_size >= 1 and kernel_size % 2 == 1,
        "model.kernel_size",
        f"must be odd and positive, got {kernel_size}",
    )
    require(all(w > 0 for w in hidden), "model.hidden", f"layer widths must be positive, got {hidden}")
    pooled = set(range(1, len(channels) + 1)) if pool_after is None else set(pool_after)
    require(
        pooled <= set(range(1, len(channels) + 1)),
        "model.pool_after",
        f"names conv layers 1..{len(channels)} (1-based), got {pool_after}",
    )
    require(padding in ("same", "valid"), "model.padding", f"is same or valid, got {padding!r}")
    size = list(input_shape[1:])
    layers: list[nn.Module] = []
    in_ch = input_shape[0]
    pad = kernel_size // 2 if padding == "same" else 0
    for i, out_ch in enumerate(channels, start=1):
        pools = pool != "none" and i in pooled
        layers += [
            create_conv(dims, in_ch, out_ch, kernel_size, padding=pad),
            create_norm(norm, out_ch, dims),
            create_act(activation) if conv_activation else nn.Identity(),
            _pool(pool, dims) if pools else nn.Identity(),
        ]
        size = [s - (kernel_size - 1) if padding == "valid" else s for s in size]
        size = [s // 2 for s in size] if pools else size
        require(
            min(size) > 0,
            "model.channels",
            f"conv layer {i} of {len(channels)} shrinks inputs of shape {input_shape} to nothing; "
            "use fewer conv layers, less pooling (model.pool_after) or model.padding=same",
        )
        in_ch = out_ch
    flat = in_ch * math.prod(size)
    head = dense_stack(flat, hidden, activation, "none", dropout)
    return nn.Sequential(*layers, nn.Flatten(), *head, nn.Linear(hidden[-1] if hidden else flat, num_classes))


class PreActBlock(nn.Module):
    """norm -> act -> conv -> norm -> act -> conv, plus the (projected when the shape changes) input."""

    def __init__(self, dims: int, in_ch: int, out_ch: int, stride: int, norm: str, activation: str) -> None:
        super().__init__()
        self.pre = nn.Sequential(create_norm(norm, in_ch, dims), create_act(activation))
        self.body = nn.Sequential(
            create_conv(dims, in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
            create_norm(norm, out_ch, dims),
            create_act(activation),
            create_conv(dims, out_ch, out_ch, 3, padding=1, bias=False),
        )
        self.shortcut = (
            create_conv(dims, in_ch, out_ch, 1, stride=stride, bias=False)
            if stride != 1 or in_ch != out_ch
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.pre(x)
        # He et al. (2016): the projection shortcut takes the pre-activated input
        skip = x if self.shortcut is None else self.shortcut(out)
        return self.body(out) + skip


@MODELS.register("preact_resnet", packable=("dropout",))
def preact_resnet(
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    width: int,
    stages: int,
    blocks_per_stage: int,
    activation: str,
    norm: str,
    dropout: float,
) -> nn.Module:
    """A pre-activation ResNet: a stem conv, `stages` stages of `blocks_per_stage` blocks (each stage after
    the first doubles the width and halves the resolution), then norm -> act -> global pool -> linear."""
    dims = spatial_dims(input_shape, "preact_resnet")
    require(width > 0, "model.width", f"must be positive, got {width}")
    require(stages > 0, "model.stages", f"must be positive, got {stages}")
    require(blocks_per_stage > 0, "model.blocks_per_stage", f"must be positive, got {blocks_per_stage}")
    layers: list[nn.Module] = [create_conv(dims, input_shape[0], width, 3, padding=1, bias=False)]
    in_ch = width
    for stage in range(stages):
        out_ch = width * 2**stage
        for block in range(blocks_per_stage):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(PreActBlock(dims, in_ch, out_ch, stride, norm, activation))
            in_ch = out_ch
    pool = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool1d(1)
    head = [
        create_norm(norm, in_ch, dims),
        create_act(activation),
        pool,
        nn.Flatten(),
        create_dropout(dropout),
    ]
    return nn.Sequential(*layers, *head, nn.Linear(in_ch, num_classes))


class PreActPair(nn.Module):
    """norm -> act -> conv 3x3, twice, plus the identity: the course net's PreAct block."""

    def __init__(self, dims: int, channels: int, norm: str, activation: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *[
                layer
                for _ in range(2)
                for layer in (
                    create_norm(norm, channels, dims),
                    create_act(activation),
                    create_conv(dims, channels, channels, 3, padding=1),
                )
            ]
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


@MODELS.register("preact_convnet", packable=("dropout",))
def preact_convnet(
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    channels: list[int],
    blocks: list[int],
    activation: str,
    norm: str,
    dropout: float,
) -> nn.Module:
    """The University of Amsterdam Deep Learning 1 practical's ConvNet with pre-activation blocks (report
    001 §4a): conv 3x3 to channels[0], its blocks; then per later stage a conv 1x1 to its channels (where
    they change), max-pool 3x3 stride 2 and its blocks; a last pool, then norm -> act -> linear. The
    defaults are the course's: channels [64, 128, 256, 512, 512], blocks [1, 2, 2, 2, 2], 22.1M parameters
    on 32x32 images."""
    dims = spatial_dims(input_shape, "preact_convnet")
    require(
        len(channels) == len(blocks) > 0 and all(c > 0 for c in channels) and all(b >= 0 for b in blocks),
        "model.channels",
        f"and model.blocks: one positive width and one block count a stage, got {channels} and {blocks}",
    )
    pool = nn.MaxPool2d if dims == 2 else nn.MaxPool1d
    layers: list[nn.Module] = [create_conv(dims, input_shape[0], channels[0], 3, padding=1)]
    size = list(input_shape[1:])
    for stage, (width, count) in enumerate(zip(channels, blocks, strict=True)):
        if stage:
            if width != channels[stage - 1]:
                layers.append(create_conv(dims, channels[stage - 1], width, 1))
            layers.append(pool(3, stride=2, padding=1))
            size = [(s + 1) // 2 for s in size]
        layers += [PreActPair(dims, width, norm, activation) for _ in range(count)]
    layers.append(pool(3, stride=2, padding=1))
    size = [(s + 1) // 2 for s in size]
    head = [
        create_norm(norm, channels[-1], dims),
        create_act(activation),
        nn.Flatten(),
        create_dropout(dropout),
    ]
    return nn.Sequential(*layers, *head, nn.Linear(channels[-1] * math.prod(size), num_classes))
