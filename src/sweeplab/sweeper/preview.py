"""`--dry-run`: a sweep's plan and the configurations of its first trials, drawn as a new study would
draw them (the same sampler, seeds and queue), in memory: nothing is run, stored or written."""

import itertools
import logging

import optuna

from sweeplab.engine.lifecycle import draw_seed
from sweeplab.engine.storage import masked
from sweeplab.engine.study import SAMPLERS, build_from
from sweeplab.sweeper.settings import SlurmSettings
from sweeplab.sweeper.spec import SweepPlan

log = logging.getLogger("sweeplab.sweep")
SHOWN = 5  # trials previewed


def preview(plan: SweepPlan, n_jobs: int, pack: int = 1, slurm: SlurmSettings | None = None) -> None:
    spec = plan.spec
    options = lambda node: " ".join(f"{k}={v}" for k, v in node.items() if k != "name")  # noqa: E731
    lines = [
        "dry run: the plan of the sweep; nothing is run, stored or written",
        f"study {spec.name!r} in {masked(spec.storage_url)}",
        f"budget: {spec.n_trials} finished trials (COMPLETE + PRUNED), {n_jobs} at a time"
        + (f", each up to {pack} trials packed as one" if pack > 1 else "")
        + "; a rerun of a stored study runs only what it lacks",
        *([plan.replication.stored().describe()] if plan.replication else []),
        "objectives: " + ", ".join(f"{m} ({d})" for m, d in plan.objectives.items()),
        *(["constraints: " + ", ".join(map(str, plan.constraints.values()))] if plan.constraints else []),
        f"sampler: {spec.sampler['name']} {options(spec.sampler)}".rstrip(),
        f"pruner: {spec.pruner['name']} {options(spec.pruner)}".rstrip()
        + (f", watching {plan.monitor}" if plan.monitor else ""),
        "searched:" if spec.signature["space"] else "searched: nothing",
        *(f"  {key}: {text}" for key, text in spec.signature["space"].items() if key != "setup"),
    ]
    if "setup" in spec.signature["space"]:
        lines += ["setups:", *(f"  {s}" for s in spec.signature["space"]["setup"].split("; "))]
    if spec.plan or spec.enqueue:
        lines.append(f"queued first: {len(spec.enqueue)} enqueued and {len(spec.plan):,} planned trials")
    if slurm is not None and slurm.jobs:
        resources = {
            k: getattr(slurm, k) for k in ("cpus_per_task", "gpus_per_node", "mem_gb", "account", "qos")
        }
        lines.append(
            f"SLURM: {slurm.jobs} worker jobs (one array) on partition {slurm.partition or '(default)'}, "
            f"{slurm.timeout_min} min each"
            + "".join(f", {k} {v}" for k, v in resources.items() if v is not None)
            + "".join(f", --{k}={v}" for k, v in slurm.additional_parameters.items())
        )
    for line in lines:
        log.info("%s", line)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "a new study created in memory" would mislead
    try:
        study = optuna.create_study(directions=spec.directions)
    finally:
        optuna.logging.set_verbosity(verbosity)
    shown = min(SHOWN, spec.n_trials)
    for params in itertools.islice(itertools.chain(spec.enqueue, spec.plan), shown):
        study.enqueue_trial(dict(params))
    log.info("the first %d trials of a new study:", shown)
    seed = spec.sampler.get("seed")
    for _ in range(shown):
        if seed is not None:  # as SharedStudy.claim draws them
            node = {**spec.sampler, "seed": draw_seed(seed, study.trials)}
            study.sampler = build_from(SAMPLERS, node, "hydra.sweeper.sampler", **spec.sampler_context)
        elif len(study.trials) == 0:
            study.sampler = build_from(
                SAMPLERS, spec.sampler, "hydra.sweeper.sampler", **spec.sampler_context
            )
        trial = study.ask()
        _config, folder, shown = plan.composer.compose(trial, spec.name)
        log.info("  trial %d: %s -> %s", trial.number, shown, folder)
