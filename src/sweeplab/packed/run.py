"""`train_pack(cfgs)`: several trials of one architecture trained as one packed model, each ending as
its own run (records, best checkpoint, test metrics) with the numbers it would have had alone."""

import itertools
import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from sweeplab.packed.keys import pack_structure
from sweeplab.packed.layers import NotPackable
from sweeplab.packed.loop import fit_pack
from sweeplab.train.fit import Member, settle_shared, start_member
from sweeplab.train.loop import announce, build_trial, conclude, train
from sweeplab.train.records import RunRecorder, finished_result
from sweeplab.train.rng import global_rng
from sweeplab.train.trial import Reporter, Result

log = logging.getLogger("sweeplab.packed")


def train_pack(
    cfgs: list[DictConfig],
    output_dirs: list[Path | None],
    reporters: list[Reporter | None],
    labels: list[str] | None = None,
) -> list[Result]:
    """Train the runs `cfgs` (composed configs equal but for packable keys) together. Runs the packing
    cannot handle are trained one after another, with a log line saying why; a pack that does not fit
    in the device's memory is split in two and each half trained in turn (resuming where it was)."""
    labels = labels or [str(i) for i in range(len(cfgs))]
    done = {i: finished_result(cfgs[i], output_dirs[i], reporters[i]) for i in range(len(cfgs))}
    if any(done.values()):  # members whose runs had ended keep their results; the others train
        rest = [i for i, result in done.items() if result is None]
        pick = [[values[i] for i in rest] for values in (cfgs, output_dirs, reporters, labels)]
        done.update(zip(rest, train_pack(*pick) if rest else [], strict=True))
        return [done[i] for i in range(len(cfgs))]  # type: ignore[misc]
    if len(cfgs) == 1:
        return [train(cfgs[0], output_dirs[0], reporters[0])]
    groups: dict[str, list[int]] = {}
    for i, cfg in enumerate(cfgs):
        groups.setdefault(pack_structure(cfg), []).append(i)
    if len(groups) > 1:  # the sweeper packs by key; this holds whatever the caller passes
        log.warning("trials %s differ in more than packable keys: %d packs", ", ".join(labels), len(groups))
        results: dict[int, Result] = {}
        for part in groups.values():
            pick = [[values[i] for i in part] for values in (cfgs, output_dirs, reporters, labels)]
            results.update(zip(part, train_pack(*pick), strict=True))
        return [results[i] for i in range(len(cfgs))]
    started = time.perf_counter()
    why = _refused(cfgs[0])
    members = [] if why else _build(cfgs, output_dirs, reporters)
    try:
        for first, group in _group_by_start(members):
            _fit(group, first)
    except NotPackable as err:
        why = str(err)
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = len(cfgs) // 2
        log.warning(
            "a pack of %d did not fit in memory: trained as packs of %d and %d",
            len(cfgs),
            half,
            len(cfgs) - half,
        )
        del members
        parts = [slice(0, half), slice(half, None)]
        return list(
            itertools.chain.from_iterable(
                train_pack(cfgs[s], output_dirs[s], reporters[s], labels[s]) for s in parts
            )
        )
    if why:
        log.info("trials %s run one at a time, not packed: %s", ", ".join(labels), why)
        return [train(c, d, r) for c, d, r in zip(cfgs, output_dirs, reporters, strict=True)]
    results = []
    for i, m in enumerate(members):
        extra = {
            "pack_size": len(members),
            "packed_with": [label for j, label in enumerate(labels) if j != i],
        }
        results.append(conclude(m.trial, m.recorder, m.outcome, started, m.output_dir, extra))
    return results


def _refused(cfg: DictConfig) -> str | None:
    """What the packing cannot do, read from the config before anything is built."""
    if cfg.trainer.precision == "fp16":
        return "fp16 needs a gradient scaler per member; use bf16 or fp32"
    return None


def _build(
    cfgs: list[DictConfig], output_dirs: list[Path | None], reporters: list[Reporter | None]
) -> list[Member]:
    """Each member built as its single run builds it (its own seed), the data loaded once."""
    members: list[Member] = []
    data = None
    for cfg, output_dir, reporter in zip(cfgs, output_dirs, reporters, strict=True):
        trial = build_trial(cfg, data)
        data = trial.data
        rng = global_rng(trial.device)  # what dropout and augmentation of the run alone draw from
        members.append(Member(cfg, trial, RunRecorder(output_dir, cfg), reporter, output_dir, rng))
    return members


def _group_by_start(members: list[Member]) -> list[tuple[int, list[Member]]]:
    """Members resuming from different steps cannot run in lockstep: one pack per first step."""
    groups: dict[int, list[Member]] = {}
    firsts = [start_member(m) for m in members]
    settle_shared(members)  # a trial's replicates pruned by their resumed histories
    for m, first in zip(members, firsts, strict=True):
        if m.outcome.status == "completed":  # one pruned by its resumed history has nothing to run
            groups.setdefault(first, []).append(m)
    return sorted(groups.items())


def _fit(group: list[Member], first: int) -> None:
    lead = group[0]
    announce(lead.cfg, lead.trial, f", packed: {len(group)} runs")
    fit_pack(list(group), first)
