"""sweeplab's training step against a plain PyTorch loop (not a test: it times things). Both train the same
objects, built by sweeplab's `build_trial` (model, preprocessing, data on the device): the same batches
by index from a per-epoch permutation, Adam with the same numbers, the same evaluation schedule (an
evaluation every `eval_every` steps that reads the validation accuracy back). The plain loop builds its
Adam as a user writes it (torch's defaults); a second plain loop asks for torch's fused kernel, the one
sweeplab calls, to show what the kernel gives and what sweeplab's own update adds. Interleaved and
repeated in one run, each side warmed up first; the figure is the loop's own time per step (no start-up,
no test).

    python bench/bench_step.py [--model mlp|cnn] [--steps 2000] [--repeats 5] [--device cpu|cuda]
"""

import argparse
import functools
import statistics
import time

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from sweeplab.paths import config_dir
from sweeplab.train.loop import build_trial, fit
from sweeplab.train.records import RunRecorder

MODELS = {
    "mlp": ["model=mlp", "model.hidden=[100,100]"],  # the 16 real trials of the trainer issue
    "cnn": ["model=cnn"],
}


def config(model: str, steps: int, device: str):
    overrides = [
        *MODELS[model],
        f"trainer.max_steps={steps}",
        f"trainer.device={device}",
        "trainer.progress=false",
    ]
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("config", overrides=overrides)


def sweeplab_loop(cfg) -> float:
    trial = build_trial(cfg)
    outcome = fit(trial, RunRecorder(None, cfg), reporter=None)
    return outcome.seconds / outcome.steps


def plain_loop(cfg, fused: bool | None = None) -> float:
    """What a user writes by hand: no history, no checkpoints, no train accuracy, no pruning."""
    trial = build_trial(cfg)
    data, model, o = trial.data, trial.model, cfg.optimizer
    optimizer = torch.optim.Adam(
        model.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay, fused=fused
    )
    n, batch, every = len(data.y_train), trial.opts.batch_size, trial.opts.eval_every
    generator = torch.Generator(device=trial.device).manual_seed(0)
    order, pos = torch.randperm(n, device=trial.device, generator=generator), 0
    synchronize = torch.cuda.synchronize if trial.device.type == "cuda" else lambda: None
    synchronize()
    started = time.perf_counter()
    model.train()
    for step in range(1, trial.total_steps + 1):
        if pos + batch > n:
            order, pos = torch.randperm(n, device=trial.device, generator=generator), 0
        idx = order[pos : pos + batch]
        pos += batch
        loss = F.cross_entropy(model(trial.inputs(data.x_train[idx], train=True)), data.y_train[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % every == 0 or step == trial.total_steps:
            model.eval()
            with torch.no_grad():
                accuracy = (model(trial.inputs(data.x_val)).argmax(1) == data.y_val).float().mean().item()
            model.train()
    synchronize()
    assert 0 <= accuracy <= 1
    return (time.perf_counter() - started) / trial.total_steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=list(MODELS), default="mlp")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    cfg = config(args.model, args.steps, args.device)
    sides = {
        "plain loop": plain_loop,
        "plain, fused Adam": functools.partial(plain_loop, fused=True),
        "sweeplab": sweeplab_loop,
    }
    for run in sides.values():  # warm-up: allocator, kernels, data cache
        run(config(args.model, 200, args.device))
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.repeats):  # interleaved: the machine's load falls on both alike
        for name, run in sides.items():
            times[name].append(run(cfg))
    threads = torch.get_num_threads()
    print(f"{args.model} on {args.device}, {args.steps} steps, torch {torch.__version__}, {threads} threads")
    for name, values in times.items():
        print(f"  {name:18s} {statistics.median(values) * 1e3:7.3f} ms a step (median of {len(values)})")
    for name in ("plain loop", "plain, fused Adam"):
        ratio = statistics.median(times["sweeplab"]) / statistics.median(times[name])
        print(f"  sweeplab / {name}: {ratio:.3f}x")


if __name__ == "__main__":
    main()
