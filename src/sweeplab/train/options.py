"""The `trainer` config node: budget, batching, device, precision, seeding."""

import os
from dataclasses import dataclass
from typing import Literal

import torch

from sweeplab.config import ConfigError, require

Precision = Literal["fp32", "bf16", "fp16"]


@dataclass(frozen=True)
class TrainerOptions:
    batch_size: int
    eval_every: int
    max_steps: int | None = None
    epochs: int | None = None
    eval_batch_size: int = 1000
    device: str = "auto"
    precision: Precision = "fp32"
    seed: int = 0
    deterministic: bool = False
    num_threads: int | None = None
    progress: bool = True
    checkpoint_every: float = 60.0  # seconds between resume checkpoints (0: at every evaluation)
    limit_steps: int | None = None  # caps the steps whatever max_steps or epochs say (smoke runs)

    def __post_init__(self) -> None:
        require(
            (self.max_steps is None) != (self.epochs is None),
            "trainer",
            f"set exactly one of max_steps and epochs (the other to null); got max_steps={self.max_steps}, "
            f"epochs={self.epochs}",
        )
        for field in (
            "max_steps",
            "epochs",
            "batch_size",
            "eval_every",
            "eval_batch_size",
            "num_threads",
            "limit_steps",
        ):
            value = getattr(self, field)
            require(value is None or value > 0, f"trainer.{field}", f"must be positive, got {value}")
        require(
            self.checkpoint_every >= 0,
            "trainer.checkpoint_every",
            f"is in seconds and must be >= 0 (0: at every evaluation), got {self.checkpoint_every}",
        )

    def budget(self, n_train: int) -> tuple[int, int]:
        """(total optimizer steps, steps per epoch) for a training set of `n_train` samples."""
        require(
            self.batch_size <= n_train,
            "trainer.batch_size",
            f"is {self.batch_size}, larger than the {n_train} training samples; use at most {n_train}",
        )
        steps_per_epoch = n_train // self.batch_size  # the last partial batch of an epoch is dropped
        total = self.max_steps or self.epochs * steps_per_epoch  # type: ignore[operator]
        return min(total, self.limit_steps or total), steps_per_epoch

    def resolve_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            device = torch.device(self.device)
        except RuntimeError as err:
            raise ConfigError(
                "trainer.device", f"{self.device!r} is not a device; use auto, cpu, cuda or cuda:N"
            ) from err
        if device.type == "cuda":
            require(
                torch.cuda.is_available(),
                "trainer.device",
                f"is {self.device} but no CUDA GPU is visible; use trainer.device=auto or cpu",
            )
            index = device.index or 0
            count = torch.cuda.device_count()
            require(index < count, "trainer.device", f"is {self.device} but only {count} GPU(s) are visible")
        else:
            require(
                device.type == "cpu",
                "trainer.device",
                f"{self.device!r} is not supported; use auto, cpu or cuda[:N]",
            )
        require(
            self.precision != "fp16" or device.type == "cuda",
            "trainer.precision",
            "fp16 autocast needs a CUDA device; use fp32 or bf16 on the CPU",
        )
        return device

    def autocast_dtype(self) -> torch.dtype | None:
        return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]

    def apply_globals(self) -> None:
        """Seed, threads, determinism: process-wide, as each trial runs in its own process or in turn."""
        torch.manual_seed(self.seed)
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        if self.deterministic != torch.are_deterministic_algorithms_enabled():
            # the call imports torch._inductor (over a second of start-up): only when the mode changes
            torch.use_deterministic_algorithms(self.deterministic, warn_only=True)
        torch.backends.cudnn.benchmark = not self.deterministic
        if self.deterministic and torch.cuda.is_available():
            # cuBLAS needs this for reproducible matmuls; it must be set before the first cuBLAS call
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def describe_budget(steps: int, steps_per_epoch: int) -> str:
    return f"{steps} steps ({steps / steps_per_epoch:.3g} epochs of {steps_per_epoch} steps)"
