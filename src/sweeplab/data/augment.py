"""Augmentation of whole batches on the device (no per-sample Python)."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sweeplab.config import require
from sweeplab.registry import Registry

AUGMENTS: Registry = Registry("augment")


class CropFlip(nn.Module):
    """Random crop after reflect-padding by `padding` pixels, and a random horizontal flip."""

    def __init__(self, padding: int, flip: bool) -> None:
        super().__init__()
        self.padding, self.flip = padding, flip

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        if self.padding:
            p = self.padding
            padded = F.pad(x, (p, p, p, p), mode="reflect")
            dy, dx = torch.randint(0, 2 * p + 1, (2, n, 1), device=x.device)
            rows = (dy + torch.arange(h, device=x.device))[:, None, :, None]
            cols = (dx + torch.arange(w, device=x.device))[:, None, None, :]
            batch = torch.arange(n, device=x.device)[:, None, None, None]
            chans = torch.arange(c, device=x.device)[None, :, None, None]
            x = padded[batch, chans, rows, cols]
        if self.flip:
            flipped = torch.rand(n, 1, 1, 1, device=x.device) < 0.5
            x = torch.where(flipped, x.flip(3), x)
        return x


@AUGMENTS.register("none")
def no_augment(*, input_shape: tuple[int, ...]) -> None:
    return None


@AUGMENTS.register("crop_flip")
def crop_flip(*, input_shape: tuple[int, ...], padding: int, flip: bool) -> CropFlip:
    require(
        len(input_shape) == 3,
        "augment",
        f"crop_flip works on images (C, H, W); this data set gives shape {input_shape}: use augment=none",
    )
    require(
        0 <= padding < min(input_shape[1:]),
        "augment.padding",
        f"must be in [0, {min(input_shape[1:])}) for {input_shape[1]}x{input_shape[2]} images, got {padding}",
    )
    return CropFlip(padding, flip)
