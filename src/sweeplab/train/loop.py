"""`train(cfg) -> Result`: one trial, from a composed config to recorded metrics. Independent of Hydra's
entry point, so the sweeper can call it in-process with a reporter for intermediate values."""

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from sweeplab.config import to_dict
from sweeplab.data import DataSplits, build_inputs, load_data
from sweeplab.losses import build_loss
from sweeplab.models import count_parameters, create_model
from sweeplab.optim import build_optimizer, build_schedule
from sweeplab.train.check import check_config
from sweeplab.train.evaluate import Evaluation
from sweeplab.train.fit import Member, Sums, fit_members, start_member
from sweeplab.train.options import describe_budget
from sweeplab.train.records import RunRecorder, finished_result
from sweeplab.train.resume import loop_state
from sweeplab.train.rng import global_rng
from sweeplab.train.trial import Outcome, Reporter, Result, Trial
from sweeplab.train.update import Update

log = logging.getLogger(__name__)


def train(cfg: DictConfig, output_dir: Path | None = None, reporter: Reporter | None = None) -> Result:
    done = finished_result(cfg, output_dir, reporter)
    if done is not None:
        return done
    started = time.perf_counter()
    trial = build_trial(cfg)
    recorder = RunRecorder(output_dir, cfg)
    announce(cfg, trial)
    outcome = fit(trial, recorder, reporter)
    return conclude(trial, recorder, outcome, started, output_dir)


def announce(cfg: DictConfig, trial: Trial, pack: str = "") -> None:
    log.info(
        "%s on %s, %s params, %s, %s%s",
        cfg.model.name,
        trial.device,
        f"{count_parameters(trial.model):,}",
        cfg.dataset.name,
        describe_budget(trial.total_steps, trial.steps_per_epoch),
        pack,
    )


def conclude(
    trial: Trial,
    recorder: RunRecorder,
    outcome: Outcome,
    started: float,
    output_dir: Path | None,
    extra: dict[str, Any] | None = None,
) -> Result:
    """After training (the model holds its last weights): test the last and the best weights, save the
    best checkpoint and the summary."""
    n_params = count_parameters(trial.model)
    last_test = trial.evaluate(trial.data.x_test, trial.data.y_test)
    best_test, checkpoint = last_test, None
    if outcome.best_state is not None:
        trial.model.load_state_dict(outcome.best_state)
        best_test = trial.evaluate(trial.data.x_test, trial.data.y_test)
        checkpoint = recorder.save_checkpoint(
            {
                "model": outcome.best_state,
                "inputs": trial.inputs.state_dict(),
                "step": outcome.best_step,
                "val_acc": outcome.best_val_acc,
            }
        )
    final = recorder.history[-1] if recorder.history else {}
    samples = outcome.steps * trial.opts.batch_size
    metrics = {
        "status": outcome.status,
        "val_acc": outcome.best_val_acc if outcome.best_state is not None else math.nan,
        # a run that diverged before any evaluation it could keep has no best: not step 0
        "best_step": outcome.best_step if outcome.best_state is not None else None,
        "final_val_acc": final.get("val_acc", math.nan),
        "final_val_loss": final.get("val_loss", math.nan),
        "final_train_loss": final.get("train_loss", math.nan),
        "final_train_acc": final.get("train_acc", math.nan),
        "test_acc": best_test.acc,
        "test_loss": best_test.loss,
        "test_acc_last": last_test.acc,
        "per_class_test_acc": dict(zip(trial.data.class_names, best_test.per_class_acc, strict=True)),
        "params": n_params,
        "steps": outcome.steps,
        "samples": samples,
        "train_seconds": outcome.seconds,
        "samples_per_s": samples / outcome.seconds,
        "wall_seconds": time.perf_counter() - started,
        "device": str(trial.device),
        # what else a run's numbers depend on: on CPU its thread count, and the library's version
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "checkpoint": str(checkpoint) if checkpoint else None,
        **(extra or {}),
    }
    recorder.finish(metrics)
    best = (
        f"val_acc {outcome.best_val_acc:.4f} (step {outcome.best_step})"
        if outcome.best_state is not None
        else f"no evaluation to keep (the loss was NaN or infinite by step {outcome.steps})"
    )
    log.info(
        "%s: %s, test_acc %.4f, %s params, %.1fs, %.0f samples/s%s",
        outcome.status,
        best,
        best_test.acc,
        f"{n_params:,}",
        outcome.seconds,
        metrics["samples_per_s"],
        f" -> {output_dir}" if output_dir else "",
    )
    return Result(status=outcome.status, metrics=metrics, history=recorder.history, output_dir=output_dir)


def build_trial(cfg: DictConfig, data: DataSplits | None = None) -> Trial:
    """The run's objects, seeded with its seed. `data`: the splits already loaded on the device (a pack's
    members share theirs; loading draws no random numbers, so the members are built as single runs)."""
    # Everything that can be checked without data is checked first, so a typo costs no loading time.
    opts = check_config(cfg)
    device = opts.resolve_device()
    loss_fn = build_loss(cfg.loss)
    opts.apply_globals()

    data = load_data(cfg.dataset, device) if data is None else data
    total_steps, steps_per_epoch = opts.budget(len(data.y_train))
    inputs = build_inputs(cfg.preprocess, cfg.augment, data.input_shape)
    inputs.fit(data.x_train, source=json.dumps([to_dict(cfg.dataset), to_dict(cfg.preprocess)], default=str))
    model_input_shape = tuple(inputs(data.x_train[:2]).shape[1:])
    model = create_model(cfg.model, model_input_shape, data.num_classes).to(device)
    optimizer = build_optimizer(model.parameters(), cfg.optimizer)
    schedule = build_schedule(optimizer, cfg.scheduler, total_steps, steps_per_epoch)
    return Trial(
        opts, device, data, inputs, model, loss_fn, optimizer, schedule, total_steps, steps_per_epoch
    )


class SingleStepper:
    """`fit_members`'s seam for a run alone: its own model and optimizer (fp16: through a gradient
    scaler), dropout and augmentation drawing from the global generator as any script's would."""

    def __init__(self, member: Member) -> None:
        self.trial, self.scaler = member.trial, member.scaler
        # after start_member: a resumed optimizer's state is the one it works on
        self.update = Update(self.trial.optimizer, scaled=self.scaler.is_enabled())
        self.trial.model.train()

    def step(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        trial, scaler, data = self.trial, self.scaler, self.trial.data
        idx = idx[0]
        yb = data.y_train[idx]
        with trial.autocast():
            logits = trial.model(trial.inputs(data.x_train[idx], train=True))
            loss = trial.loss_fn(logits.float(), yb)
        self.update.zero_grad()
        if scaler.is_enabled():  # fp16: scaled; otherwise the scaler's wrappers would do nothing
            scaler.scale(loss).backward()
            scaler.step(trial.optimizer)
            scaler.update()
        else:
            loss.backward()
            self.update.step()
        trial.schedule.after_step()
        return loss.detach(), (logits.argmax(1) == yb).sum()

    def evaluate(self) -> list[Evaluation]:
        return [self.trial.evaluate(self.trial.data.x_val, self.trial.data.y_val)]

    def weights(self, k: int) -> Callable[[], dict[str, torch.Tensor]]:
        model = self.trial.model
        return lambda: {key: value.detach().clone() for key, value in model.state_dict().items()}

    def save(self, k: int, member: Member, pos: int, partial: Sums | None = None) -> None:
        state = loop_state(
            self.trial, self.scaler, member.order_generator, member.outcome, member.order, pos, partial
        )
        member.recorder.save_resume({**state, "elapsed": time.perf_counter() - member.started})

    def finish(self, k: int, member: Member) -> None:
        pass  # its model is the one it trained

    def keep(self, kept: list[int]) -> None:
        pass  # a run alone that stops ends the loop


def fit(trial: Trial, recorder: RunRecorder, reporter: Reporter | None) -> Outcome:
    """Train a run alone (`sweeplab.train.fit`): batches by index from a per-epoch permutation, an
    evaluation every `eval_every` steps, early stop on NaN or by the reporter. A run whose folder holds
    a resume checkpoint of the same config carries on from it and ends with the numbers it would have
    had."""
    scaler = torch.amp.GradScaler(trial.device.type, enabled=trial.opts.autocast_dtype() is torch.float16)
    rng = global_rng(trial.device)  # a run alone draws from the global generator itself
    member = Member(None, trial, recorder, reporter, recorder.output_dir, rng, scaler=scaler)
    first = start_member(member)
    if member.outcome.status != "completed":  # pruned by its resumed history
        return member.outcome
    fit_members([member], first, SingleStepper(member))
    return member.outcome
