"""Complete a study's trials from their folders' records, once, for cifar10_mlp_setups(_center).

Both studies ran on a lent H100 machine (2026-11-28). Their SQLite files came back without their
write-ahead log (`NAME.db-wal`, which held the last three minutes: trials 37-44 finishing), while every
trial folder came back whole (each member's summary.json, history.csv, config and .hydra/ files; weights
left behind for size). This writes into the study what the sweeper itself wrote when each trial ended,
computed by the sweeper's own code (`sweeplab.sweeper.replicates.combine`) from the members' summaries,
and refuses unless:
- the trial's folder names that trial and study (`.sweeplab-trial.json`), its members' configs are the
  setup the study planned for it, and all three members completed;
- the recomputed value equals the one the sweep logged for that trial (`trial N COMPLETE val_acc=X`,
  four significant digits) and the trial folder's summary.json; and the same computation reproduces
  exactly what the study already holds for the one trial it did record (trial 36).

    python reports/complete_from_records.py STUDY LOG
"""

import json
import math
import re
import sys
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from sweeplab.sweeper.controller import _json_safe
from sweeplab.sweeper.replicates import Replication, combine

SEEDS = [0, 1, 2]


def recorded(folder: Path, study: optuna.Study, number: int) -> tuple[dict, dict]:
    marker = json.loads((folder / ".sweeplab-trial.json").read_text())
    assert marker["study"] == study.study_name and marker["trials"] == [number], marker
    results = [json.loads((folder / f"seed_{s}" / "summary.json").read_text()) for s in SEEDS]
    assert all(r["status"] == "completed" for r in results), folder
    replication = Replication(key="trainer.seed", seeds=None, n=3, aggregate="mean")
    metrics = _json_safe(combine(replication, SEEDS, results, folder))
    members = metrics.pop("replicates")
    attrs = {
        "config": yaml.safe_load((folder / "seed_0" / "config.yaml").read_text()),
        "overrides": yaml.safe_load((folder / "seed_0" / ".hydra" / "overrides.yaml").read_text()),
        "output_dir": str(folder),
        "replicates": [_json_safe(m) for m in members],
        "metrics": metrics,
    }
    return attrs, metrics


def main(name: str, log: str) -> None:
    study = optuna.load_study(study_name=name, storage=f"sqlite:///studies/{name}.db")
    logged = {
        int(n): float(v)
        for n, v in re.findall(r"trial (\d+) COMPLETE val_acc=([\d.]+)", Path(log).read_text())
    }
    root = Path("outputs/sweeps", name).absolute()
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    for trial in done:  # the method reproduces what the sweeper stored
        attrs, _ = recorded(root / str(trial.number), study, trial.number)
        for key in ("replicates", "metrics", "config", "overrides", "output_dir"):
            assert attrs[key] == trial.user_attrs[key], (trial.number, key)
    storage = study._storage
    choices = done[0].distributions["setup"]
    for trial in study.trials:
        if trial.state not in (TrialState.RUNNING, TrialState.WAITING) or trial.number not in logged:
            continue
        folder = root / str(trial.number)
        attrs, metrics = recorded(folder, study, trial.number)
        setup = trial.system_attrs["fixed_params"]["setup"]
        planned = study.user_attrs["sweeplab"]["space"]["setup"].split("; ")[int(setup) - 1]
        for override in planned.split(": ", 1)[1].split():
            assert override in attrs["overrides"] or override.startswith("optimizer="), (override, attrs)
        value = metrics["val_acc"]
        assert f"{value:.4g}" == f"{logged[trial.number]:.4g}", (trial.number, value, logged[trial.number])
        summary = json.loads((folder / "summary.json").read_text())
        assert math.isclose(summary["metrics"]["val_acc"]["value"], value), (trial.number, summary)
        trial_id = trial._trial_id
        if trial.state == TrialState.WAITING:
            assert storage.set_trial_state_values(trial_id, TrialState.RUNNING)
        if "setup" not in trial.params:  # a waiting trial gets its parameter when it starts
            storage.set_trial_param(trial_id, "setup", choices.to_internal_repr(setup), choices)
        for key, v in {
            **attrs,
            "setup": {"name": setup, "position": int(setup), "changed": [], "keep": True},
        }.items():
            storage.set_trial_user_attr(trial_id, key, v)
        storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [value])
        print(
            f"{name}: trial {trial.number} (setup {setup}) COMPLETE val_acc={value:.4f} "
            f"(logged {logged[trial.number]}), test_acc_last {metrics['test_acc_last']:.4f}"
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
