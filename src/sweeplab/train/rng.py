"""Each member's random numbers: the process-wide generator of its run alone, held per member.

Dropout and augmentation draw from the global generator (on CUDA through kernels of their own, such as
the fused dropout's Philox stream, that no `generator=` argument reproduces). A member's draw therefore
runs with its own state put in the global generator and read back after: the numbers of the run alone,
on every device.
"""

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor


def global_state(device: torch.device) -> Tensor:
    return torch.get_rng_state() if device.type == "cpu" else torch.cuda.get_rng_state(device)


def set_global_state(device: torch.device, state: Tensor) -> None:
    torch.set_rng_state(state) if device.type == "cpu" else torch.cuda.set_rng_state(state, device)


def global_rng(device: torch.device) -> torch.Generator:
    """A generator holding the global generator's state now: a member's random numbers from here on."""
    g = torch.Generator(device)
    g.set_state(global_state(device))
    return g


@contextlib.contextmanager
def drawing_from(g: torch.Generator) -> Iterator[None]:
    """Global draws inside come from `g` (which then holds the state after them); the global generator
    is as it was after."""
    saved = global_state(g.device)
    set_global_state(g.device, g.get_state())
    try:
        yield
    finally:
        g.set_state(global_state(g.device))
        set_global_state(g.device, saved)
