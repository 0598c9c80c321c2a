"""Hydra's `run_job` for a sweep's trial, without its copies: the same output folder, `.hydra/` records,
logging, working directory (`hydra.job.chdir`), `hydra.job.env_set`, callbacks and `HydraConfig` as
Hydra 1.3's own, for about a third of its cost. Hydra's sets `HydraConfig` twice and copies the whole
config twice more (each copy of the hydra node, which is most of it, about 3 ms), and writes the
`.hydra/` files with PyYAML's pure-Python emitter (4 ms for hydra.yaml); that was 26 of a one-step
trial's 98 ms (bench/profile_trial.py). Here the hydra node is copied once, the task's config is a copy
of the rest, and the records are written by libyaml's emitter, byte for byte what OmegaConf writes
(tests/sweeper/test_hydra_job.py), each through a temporary file and a rename.
"""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra import version
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobRuntime, JobStatus, _flush_loggers, configure_log, env_override
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from sweeplab.config import config_yaml
from sweeplab.files import write_atomic


def start_job(config: DictConfig, configure_logging: bool = True) -> tuple[DictConfig, Path]:
    """What Hydra's `run_job` does before it calls the task: `hydra.runtime.output_dir` set, `HydraConfig`
    set, the task's config (the config less its hydra node), the folder made, logging configured, the
    `.hydra/` records written. Returns the task's config and the folder."""
    output_dir = Path(str(config.hydra.sweep.dir), str(config.hydra.sweep.subdir)).absolute()
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(config)
    task_cfg = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
    OmegaConf.set_struct(task_cfg, OmegaConf.is_struct(config))  # a typo'd key still fails in the task
    output_dir.mkdir(parents=True, exist_ok=True)
    if configure_logging:
        configure_log(config.hydra.job_logging, config.hydra.verbose)
    if config.hydra.output_subdir is not None:
        records = output_dir / str(config.hydra.output_subdir)
        records.mkdir(parents=True, exist_ok=True)
        for name, node in (
            ("config.yaml", task_cfg),
            ("hydra.yaml", HydraConfig.instance().cfg),
            ("overrides.yaml", config.hydra.overrides.task),
        ):
            write_atomic(records / name, config_yaml(node), durable=False)
    return task_cfg, output_dir


def run_job(task: Callable[[DictConfig], Any], config: DictConfig, hydra_context: HydraContext) -> JobReturn:
    """Hydra 1.3's `run_job(task, config, "hydra.sweep.dir", "hydra.sweep.subdir", hydra_context)`."""
    callbacks = hydra_context.callbacks
    old_cwd, previous = os.getcwd(), HydraConfig.instance().cfg
    chdir = False
    try:
        task_cfg, output_dir = start_job(config)
        ret = JobReturn()
        ret.cfg, ret.hydra_cfg = task_cfg, HydraConfig.instance().cfg
        ret.overrides = OmegaConf.to_container(config.hydra.overrides.task)
        chdir = config.hydra.job.chdir
        if chdir is None:  # unset: the job changes folder only for an app of version_base below 1.2
            chdir = not version.base_at_least("1.2")
        if chdir:
            os.chdir(output_dir)
        ret.working_dir = os.getcwd()
        with env_override(config.hydra.job.env_set):
            callbacks.on_job_start(config=config, task_function=task)
            try:
                ret.return_value = task(task_cfg)
                ret.status = JobStatus.COMPLETED
            except Exception as err:
                ret.return_value, ret.status = err, JobStatus.FAILED
        ret.task_name = JobRuntime.instance().get("name")
        _flush_loggers()
        callbacks.on_job_end(config=config, job_return=ret)
        return ret
    finally:
        HydraConfig.instance().cfg = previous
        if chdir:
            os.chdir(old_cwd)
