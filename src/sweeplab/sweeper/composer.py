"""From a claimed Optuna trial to the Hydra job that runs it: suggest the trial's values (only for keys
its config has), compose its config, name its folder (a retry carries on in the folder it resumes)."""

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, open_dict
from optuna.trial import Trial

from sweeplab.config import SweeplabError
from sweeplab.engine.attrs import set_user_attrs
from sweeplab.engine.records import CONFIG, OUTPUT_DIR, OVERRIDES, SETUP, TrialRecord
from sweeplab.sweeper.job import TrialJob
from sweeplab.sweeper.setups import Setup
from sweeplab.sweeper.space import Param
from sweeplab.sweeper.trial_config import absent, plain, with_values

log = logging.getLogger("sweeplab.sweep")


class TrialComposer:
    def __init__(
        self,
        hydra_context: HydraContext,
        config: DictConfig,
        fixed: list[str],
        groups: set[str],
        params: dict[str, Param],
        setups: dict[str, Setup],
        extend: Callable[[DictConfig, Trial], Any] | None = None,
    ) -> None:
        """`extend(config, trial)`: hydra-optuna-sweeper's `custom_search_space`, which may suggest more
        values on the trial once its params are set; each becomes an override (`+key` adds a key)."""
        self.hydra_context, self.config, self.fixed = hydra_context, config, fixed
        self.groups, self.params, self.setups, self.extend = groups, params, setups, extend
        self._bases: dict[tuple[str, ...], DictConfig] = {}

    def composed(self, overrides: tuple[str, ...]) -> DictConfig:
        """Hydra's composition of the fixed and group overrides, once per combination of group choices."""
        if overrides not in self._bases:
            self._bases[overrides] = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides)
            )
        return self._bases[overrides]

    def compose(self, trial: Trial, study_name: str) -> tuple[DictConfig, Path, str]:
        """The trial's config (its values suggested), its output folder and its values as text. Raises
        SweeplabError when the config does not compose: every trial would fail alike."""
        setup = self._setup(trial)
        set_by_setup = setup.overrides if setup else {}
        groups = [f"{k}={v}" for k, v in set_by_setup.items() if k in self.groups]
        groups += [p.override(p.suggest(trial)) for p in self.params.values() if p.is_group]
        try:
            base = self.composed(tuple([*self.fixed, *groups]))
            values = [f"{k}={v}" for k, v in set_by_setup.items() if k not in self.groups]
            values += [
                p.override(p.suggest(trial))
                for p in self.params.values()
                if not p.is_group and p.key != "setup" and not absent(base, p.key)
            ]
            config = with_values(base, values)
            if self.extend is not None:
                suggested = set(trial.params)
                self.extend(config, trial)
                more = [f"{k}={v}" for k, v in trial.params.items() if k not in suggested]
                config, values = with_values(config, more), [*values, *more]
            resume_dir = TrialRecord.of(trial).resume_dir
            with open_dict(config):
                config.hydra.job.id = f"{study_name}_{trial.number}"
                config.hydra.job.num = trial.number
                config.hydra.mode = RunMode.MULTIRUN  # Hydra composes each sweep job as a RUN
                if resume_dir:  # a retry carries on in the folder of the trial it resumes
                    config.hydra.sweep.dir, config.hydra.sweep.subdir = os.path.split(resume_dir)
            sweep_dir = Path(os.path.abspath(str(config.hydra.sweep.dir)))
            output_dir = Path(os.path.abspath(sweep_dir / str(config.hydra.sweep.subdir)))
        except Exception as err:
            raise SweeplabError(f"trial {trial.number}: the config does not compose: {err}") from err
        if output_dir == sweep_dir or not output_dir.is_relative_to(sweep_dir):
            raise SweeplabError(
                f"hydra.sweep.subdir: trial {trial.number}'s folder {output_dir} is not inside the study's "
                f"folder {sweep_dir}; a trial's subdir names a folder in hydra.sweep.dir (e.g. its number)"
            )
        shown = " ".join([*groups, *values]) or "(no searched values)"
        return config, output_dir, f"setup {setup.label}: {shown}" if setup else shown

    def job_for(self, trial: Trial, **job: Any) -> tuple[TrialJob, Path]:
        """The trial's job and its output folder, its config and setup recorded in the trial."""
        config, output_dir, shown = self.compose(trial, job["study_name"])
        # Hydra's node resolves only inside the job; the rest resolves in place, without copies
        try:
            task_config = {key: plain(config[key]) for key in config if key != "hydra"}
        except Exception as err:
            raise SweeplabError(f"trial {trial.number}: the config does not resolve: {err}") from err
        records = {
            OVERRIDES: list(config.hydra.overrides.task),
            CONFIG: task_config,
            OUTPUT_DIR: str(output_dir),
        }
        setup = self._setup(trial)
        if setup is not None:
            records[SETUP] = setup.record()
        set_user_attrs(trial, records)
        retry_of = TrialRecord.of(trial).retry_of
        resumed = f" (retry of trial {retry_of})" if retry_of is not None else ""
        log.info("trial %d%s: %s", trial.number, resumed, shown)
        return TrialJob(config=config, trial_id=trial._trial_id, **job), output_dir

    def _setup(self, trial: Trial) -> Setup | None:
        return self.setups[str(self.params["setup"].suggest(trial))] if self.setups else None
