"""hydra-optuna-sweeper's `optimization_results.yaml`, which scripts written for it read: written to the
sweep folder when a sweep's trials have ended (the whole study's best, not only this run's)."""

from pathlib import Path

import optuna
from omegaconf import OmegaConf

from sweeplab.engine.study import pareto_front, ranked
from sweeplab.files import write_atomic


def write_results(study: optuna.Study, objectives: int, sweep_dir: Path) -> None:
    """The best trial's params and value, or with several objectives the Pareto front's, as the old
    sweeper wrote them (`name: optuna`)."""
    if objectives == 1:
        best = ranked(study)[0]
        results = {"name": "optuna", "best_params": dict(best.params), "best_value": best.value}
    else:
        front = [{"params": dict(t.params), "values": list(t.values)} for t in pareto_front(study)]
        results = {"name": "optuna", "solutions": front}
    write_atomic(sweep_dir / "optimization_results.yaml", OmegaConf.to_yaml(results))
