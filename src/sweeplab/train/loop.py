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
from tqdm.auto import tqdm

from sweeplab.config import to_dict
from sweeplab.data import DataSplits, build_inputs, load_data
from sweeplab.losses import build_loss
from sweeplab.models import count_parameters, create_model
from sweeplab.optim import build_optimizer, build_schedule
from sweeplab.stopping import Interrupted, steps_running, stop_asked
from sweeplab.train.check import check_config
from sweeplab.train.evaluate import Evaluation
from sweeplab.train.options import describe_budget
from sweeplab.train.records import RunRecorder, finished_result
from sweeplab.train.resume import CheckpointClock, loop_state, restore
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


def record_evaluation(
    trial: Trial,
    recorder: RunRecorder,
    reporter: Reporter | None,
    outcome: Outcome,
    step: int,
    train: tuple[float, float],
    val: Evaluation,
    started: float,
    weights: Callable[[], dict[str, torch.Tensor]],
) -> dict[str, float]:
    """An evaluation's history row, recorded; then the run diverges (NaN), or its schedule sees the
    validation loss, its best `weights()` are kept and its reporter may prune it (`outcome.status`)."""
    row = {
        "step": step,
        "epoch": step / trial.steps_per_epoch,
        "train_loss": train[0],
        "train_acc": train[1],
        "val_loss": val.loss,
        "val_acc": val.acc,
        "lr": trial.optimizer.param_groups[0]["lr"],
        "elapsed_s": time.perf_counter() - started,
    }
    recorder.log(row)
    if not (math.isfinite(train[0]) and math.isfinite(val.loss)):
        outcome.status = "diverged"
        return row
    trial.schedule.after_eval(val.loss)
    if val.acc > outcome.best_val_acc:
        outcome.best_val_acc, outcome.best_step = val.acc, step
        outcome.best_state = weights()
    if reporter is not None and reporter(step, trial.reported(row)):
        outcome.status = "pruned"
    return row


def fit(trial: Trial, recorder: RunRecorder, reporter: Reporter | None) -> Outcome:
    """The training loop: batches by index from a per-epoch permutation, an evaluation every
    `eval_every` steps (the only place it waits for the device), early stop on NaN or by the reporter.
    At an evaluation `trainer.checkpoint_every` seconds after the last (and when a signal stops it) it
    saves what it needs to carry on from there; a run whose folder holds such a checkpoint of the same
    config resumes from it and ends with the numbers it would have had."""
    opts, data, model, device = trial.opts, trial.data, trial.model, trial.device
    scaler = torch.amp.GradScaler(device.type, enabled=opts.autocast_dtype() is torch.float16)
    n, batch = len(data.y_train), opts.batch_size
    generator = torch.Generator(device=device).manual_seed(opts.seed)
    order, pos = torch.randperm(n, device=device, generator=generator), 0
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    since_eval, first, elapsed_before = 0, 1, 0.0
    outcome = Outcome(status="completed", steps=0, seconds=0.0)
    resume = recorder.resume_state()
    recorder.start_history()
    if resume is not None:
        order, pos = restore(trial, scaler, generator, outcome, resume)
        first, elapsed_before = resume["step"] + 1, resume["elapsed"]
        if "partial" in resume:  # stopped between two evaluations: what it had summed since the last
            loss_sum, correct, since_eval = resume["partial"]
            loss_sum, correct = loss_sum.to(device), correct.to(device)
        log.info("resuming from step %d (%s)", resume["step"], recorder.output_dir)
        for row in recorder.history:  # the new trial in the study gets the values measured so far
            if reporter is not None and reporter(int(row["step"]), trial.reported(row)):
                outcome.status, outcome.seconds = "pruned", elapsed_before
                return outcome
    update = Update(trial.optimizer, scaled=scaler.is_enabled())  # after restore: it works on that state
    bar = tqdm(
        total=trial.total_steps,
        initial=first - 1,
        unit="step",
        disable=None if opts.progress else True,
        dynamic_ncols=True,
        leave=False,
    )
    started = time.perf_counter() - elapsed_before
    clock = CheckpointClock(opts.checkpoint_every)
    model.train()
    with steps_running():  # a signal stops the loop after its step, saved (sweeplab.stopping)
        for step in range(first, trial.total_steps + 1):
            signum = stop_asked()
            if signum is not None:
                if step > first:  # steps ran since the last checkpoint: save this one
                    partial = (loss_sum, correct, since_eval)
                    state = loop_state(trial, scaler, generator, outcome, order, pos, partial=partial)
                    recorder.save_resume({**state, "elapsed": time.perf_counter() - started})
                    log.info("stopped after step %d, saved to resume from there", step - 1)
                raise Interrupted(signum)
            if pos + batch > n:  # a new epoch: a fresh permutation, the partial batch dropped
                order, pos = torch.randperm(n, device=device, generator=generator), 0
            idx = order[pos : pos + batch]
            pos += batch
            yb = data.y_train[idx]
            with trial.autocast():
                logits = model(trial.inputs(data.x_train[idx], train=True))
                loss = trial.loss_fn(logits.float(), yb)
            update.zero_grad()
            if scaler.is_enabled():  # fp16: scaled; otherwise the scaler's wrappers would do nothing
                scaler.scale(loss).backward()
                scaler.step(trial.optimizer)
                scaler.update()
            else:
                loss.backward()
                update.step()
            trial.schedule.after_step()
            loss_sum += loss.detach()
            correct += (logits.argmax(1) == yb).sum()
            since_eval += 1
            outcome.steps = step
            if step % opts.eval_every and step != trial.total_steps:
                continue

            train_loss, train_acc = loss_sum.item() / since_eval, correct.item() / (since_eval * batch)
            loss_sum.zero_()
            correct.zero_()
            since_eval = 0
            val = trial.evaluate(data.x_val, data.y_val)
            weights = lambda: {k: v.detach().clone() for k, v in model.state_dict().items()}  # noqa: E731
            row = record_evaluation(
                trial, recorder, reporter, outcome, step, (train_loss, train_acc), val, started, weights
            )
            bar.update(step - bar.n)
            bar.set_postfix(loss=f"{train_loss:.3f}", val_acc=f"{val.acc:.3f}")
            if outcome.status != "completed":
                break
            if step < trial.total_steps and clock.due():
                state = loop_state(trial, scaler, generator, outcome, order, pos)
                recorder.save_resume({**state, "elapsed": row["elapsed_s"]})
    bar.close()
    outcome.seconds = time.perf_counter() - started
    return outcome
