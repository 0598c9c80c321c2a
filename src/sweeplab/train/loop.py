"""`train(cfg) -> Result`: one trial, from a composed config to recorded metrics. Independent of Hydra's
entry point, so the sweeper can call it in-process with a reporter for intermediate values."""

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from sweeplab.config import call_with
from sweeplab.data import build_inputs, load_data
from sweeplab.losses import build_loss
from sweeplab.models import count_parameters, create_model
from sweeplab.optim import build_optimizer, build_schedule
from sweeplab.train.evaluate import evaluate
from sweeplab.train.options import TrainerOptions, describe_budget
from sweeplab.train.records import RunRecorder

log = logging.getLogger(__name__)

Status = Literal["completed", "diverged", "pruned"]
# Called after each evaluation with (step, history row); returning True stops the run as "pruned".
Reporter = Callable[[int, dict[str, float]], bool]


@dataclass
class Result:
    status: Status
    metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    output_dir: Path | None = None


def train(cfg: DictConfig, output_dir: Path | None = None, reporter: Reporter | None = None) -> Result:
    started = time.perf_counter()
    # Everything that can be checked without data is checked first, so a typo costs no loading time.
    opts: TrainerOptions = call_with(TrainerOptions, cfg.trainer, "trainer")
    device = opts.resolve_device()
    loss_fn = build_loss(cfg.loss)
    build_optimizer([torch.zeros(1, requires_grad=True)], cfg.optimizer)
    opts.apply_globals()

    data = load_data(cfg.dataset).to(device)
    total_steps, steps_per_epoch = opts.budget(len(data.y_train))
    inputs = build_inputs(cfg.preprocess, cfg.augment, data.input_shape)
    inputs.fit(data.x_train)
    model_input_shape = tuple(inputs(data.x_train[:2]).shape[1:])
    model = create_model(cfg.model, model_input_shape, data.num_classes).to(device)
    optimizer = build_optimizer(model.parameters(), cfg.optimizer)
    schedule = build_schedule(optimizer, cfg.scheduler, total_steps, steps_per_epoch)
    amp_dtype = opts.autocast_dtype()
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16)

    def autocast() -> torch.autocast:
        return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    def run_eval(x: torch.Tensor, y: torch.Tensor):
        return evaluate(model, inputs, loss_fn, x, y, data.num_classes, opts.eval_batch_size, autocast())

    recorder = RunRecorder(output_dir, cfg)
    n_params = count_parameters(model)
    log.info(
        "%s on %s, %s params, %s, %s",
        cfg.model.name,
        device,
        f"{n_params:,}",
        cfg.dataset.name,
        describe_budget(total_steps, steps_per_epoch),
    )

    n, batch = len(data.y_train), opts.batch_size
    generator = torch.Generator(device=device).manual_seed(opts.seed)
    order, pos = torch.randperm(n, device=device, generator=generator), 0
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    since_eval, status, step = 0, "completed", 0
    best: dict[str, Any] = {"val_acc": -1.0, "step": 0, "state": None}
    bar = tqdm(total=total_steps, unit="step", disable=not opts.progress, dynamic_ncols=True, leave=False)
    loop_started = time.perf_counter()
    model.train()
    for step in range(1, total_steps + 1):
        if pos + batch > n:  # a new epoch: a fresh permutation, the partial batch dropped
            order, pos = torch.randperm(n, device=device, generator=generator), 0
        idx = order[pos : pos + batch]
        pos += batch
        yb = data.y_train[idx]
        with autocast():
            logits = model(inputs(data.x_train[idx], train=True))
            loss = loss_fn(logits.float(), yb)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        schedule.after_step()
        loss_sum += loss.detach()
        correct += (logits.argmax(1) == yb).sum()
        since_eval += 1
        if step % opts.eval_every and step != total_steps:
            continue
        # Evaluation: the only place the loop waits for the device.
        train_loss = loss_sum.item() / since_eval
        train_acc = correct.item() / (since_eval * batch)
        val = run_eval(data.x_val, data.y_val)
        row = {
            "step": step,
            "epoch": step / steps_per_epoch,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "val_loss": val.loss,
            "val_acc": val.acc,
            "lr": optimizer.param_groups[0]["lr"],
            "elapsed_s": time.perf_counter() - loop_started,
        }
        recorder.log(row)
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{train_loss:.3f}", val_acc=f"{val.acc:.3f}")
        loss_sum.zero_()
        correct.zero_()
        since_eval = 0
        if not (math.isfinite(train_loss) and math.isfinite(val.loss)):
            status = "diverged"
            break
        schedule.after_eval(val.loss)
        if val.acc > best["val_acc"]:
            best = {"val_acc": val.acc, "step": step, "state": _copy_state(model)}
        if reporter is not None and reporter(step, row):
            status = "pruned"
            break
    bar.close()
    train_seconds = time.perf_counter() - loop_started

    last_test = run_eval(data.x_test, data.y_test)
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    best_test = run_eval(data.x_test, data.y_test) if best["state"] is not None else last_test
    checkpoint = (
        recorder.save_checkpoint(
            {
                "model": best["state"],
                "inputs": inputs.state_dict(),
                "step": best["step"],
                "val_acc": best["val_acc"],
            }
        )
        if best["state"] is not None
        else None
    )

    final = recorder.history[-1] if recorder.history else {}
    metrics = {
        "status": status,
        "val_acc": best["val_acc"] if best["state"] is not None else math.nan,
        "best_step": best["step"],
        "final_val_acc": final.get("val_acc", math.nan),
        "final_val_loss": final.get("val_loss", math.nan),
        "final_train_loss": final.get("train_loss", math.nan),
        "final_train_acc": final.get("train_acc", math.nan),
        "test_acc": best_test.acc,
        "test_loss": best_test.loss,
        "test_acc_last": last_test.acc,
        "per_class_test_acc": dict(zip(data.class_names, best_test.per_class_acc, strict=True)),
        "params": n_params,
        "steps": step,
        "samples": step * batch,
        "train_seconds": train_seconds,
        "samples_per_s": step * batch / train_seconds,
        "wall_seconds": time.perf_counter() - started,
        "device": str(device),
        "checkpoint": str(checkpoint) if checkpoint else None,
    }
    recorder.finish(metrics)
    log.info(
        "%s: val_acc %.4f (step %d), test_acc %.4f, %s params, %.1fs, %.0f samples/s%s",
        status,
        metrics["val_acc"],
        best["step"],
        best_test.acc,
        f"{n_params:,}",
        train_seconds,
        metrics["samples_per_s"],
        f" -> {output_dir}" if output_dir else "",
    )
    return Result(status=status, metrics=metrics, history=recorder.history, output_dir=output_dir)


def _copy_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
