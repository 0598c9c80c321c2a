"""sweeplab's run of a Hydra job (sweeplab.sweeper.hydra_job) does what Hydra 1.3's `run_job` does: the
same `.hydra/` files byte for byte, the same task config, working folder, env_set, callbacks and
HydraConfig, and leaves the process as it found it."""

import copy
import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.callbacks import Callbacks
from hydra.core import utils as hydra_utils
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobRuntime, JobStatus
from hydra.types import HydraContext
from omegaconf import OmegaConf, open_dict

from sweeplab.config import config_yaml
from sweeplab.paths import config_dir, register_resolvers
from sweeplab.sweeper.hydra_job import run_job

CALLS: list[str] = []


class Recorder:
    """A Hydra callback (hydra.callbacks) that notes what it is called with."""

    def on_job_start(self, config, **kwargs) -> None:
        CALLS.append(f"start {config.hydra.job.num}")

    def on_job_end(self, config, job_return, **kwargs) -> None:
        CALLS.append(f"end {job_return.status.name} {config.hydra.job.id}")


def _config(folder: Path, *overrides: str):
    register_resolvers()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose(
            "config", overrides=["optimizer.lr=0.01", "+note=true", *overrides], return_hydra_config=True
        )
    with open_dict(cfg):
        cfg.hydra.sweep.dir, cfg.hydra.sweep.subdir = str(folder), "7"
        cfg.hydra.job.num, cfg.hydra.job.id = 7, "study_7"
        cfg.hydra.callbacks = {"recorder": {"_target_": f"{__name__}.Recorder"}}
        cfg.hydra.job.env_set = {"SWEEPLAB_TEST_ENV": "set"}
    JobRuntime.instance().set("name", "train")
    return cfg


def _task(cfg):
    seen = {
        "cwd": os.getcwd(),
        "env": os.environ.get("SWEEPLAB_TEST_ENV"),
        "output_dir": HydraConfig.get().runtime.output_dir,
        "struct": OmegaConf.is_struct(cfg),
        "hydra_in_task": "hydra" in cfg,
    }
    cfg.optimizer.lr = 99.0  # the task may change its copy; the job's config stays
    return seen


@pytest.mark.parametrize("chdir", [False, True])
def test_a_job_is_run_as_hydras_run_job_runs_it(tmp_path: Path, chdir: bool) -> None:
    runs = {}
    for name, run in {
        "hydra": lambda t, c, ctx: hydra_utils.run_job(t, c, "hydra.sweep.dir", "hydra.sweep.subdir", ctx),
        "sweeplab": run_job,
    }.items():
        cfg = _config(tmp_path / name, f"hydra.job.chdir={chdir}")
        context = HydraContext(config_loader=None, callbacks=Callbacks(cfg))  # type: ignore[arg-type]
        before, cwd = HydraConfig.instance().cfg, os.getcwd()
        CALLS.clear()
        ret = run(_task, cfg, context)
        assert HydraConfig.instance().cfg is before and os.getcwd() == cwd  # the process as it was
        assert "SWEEPLAB_TEST_ENV" not in os.environ
        assert cfg.optimizer.lr == 0.01
        runs[name] = (ret, list(CALLS), cfg)
    (theirs, their_calls, _), (ours, our_calls, _) = runs["hydra"], runs["sweeplab"]
    assert ours.status is theirs.status is JobStatus.COMPLETED
    assert our_calls == their_calls == ["start 7", "end COMPLETED study_7"]
    for key in ("env", "struct", "hydra_in_task"):
        assert ours.return_value[key] == theirs.return_value[key]
    assert ours.return_value["env"] == "set" and ours.return_value["struct"] is True
    for ret, name in ((theirs, "hydra"), (ours, "sweeplab")):
        folder = str(tmp_path / name / "7")
        assert ret.return_value["output_dir"] == folder
        assert ret.return_value["cwd"] == (folder if chdir else os.getcwd())
    for record in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        theirs_text = (tmp_path / "hydra" / "7" / ".hydra" / record).read_text()
        ours_text = (tmp_path / "sweeplab" / "7" / ".hydra" / record).read_text()
        assert ours_text == theirs_text.replace(str(tmp_path / "hydra"), str(tmp_path / "sweeplab")), record
    assert ours.overrides == theirs.overrides and ours.task_name == theirs.task_name
    assert OmegaConf.to_container(ours.cfg) == OmegaConf.to_container(theirs.cfg)  # as the task left it
    assert ours.cfg.optimizer.lr == 99.0


def test_a_failing_task_is_a_failed_job_with_its_error() -> None:
    def fails(cfg):
        raise ValueError("bad value")

    cfg = _config(Path(os.environ.get("TMPDIR", "/tmp")) / "sweeplab-test-fails")
    ret = run_job(fails, cfg, HydraContext(config_loader=None, callbacks=Callbacks(cfg)))  # type: ignore[arg-type]
    assert ret.status is JobStatus.FAILED and isinstance(ret._return_value, ValueError)


@pytest.mark.parametrize(
    "value",
    ["true", "1.0", "12", "null", "ünïcode ✓", "a: b", "- x", "${oc.env:HOME}", "", " lead", "line\nbreak"],
)
def test_the_fast_yaml_is_omegaconfs_text(value: str) -> None:
    cfg = OmegaConf.create({"s": value, "n": None, "l": [1, 2.5, "x", {"k": value}], "d": {"b": False}})
    assert config_yaml(cfg) == OmegaConf.to_yaml(cfg)


def test_the_fast_yaml_of_a_whole_config_is_omegaconfs(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    HydraConfig.instance().set_config(cfg)
    assert config_yaml(HydraConfig.instance().cfg) == OmegaConf.to_yaml(HydraConfig.instance().cfg)
    task = copy.deepcopy(cfg)
    with open_dict(task):
        del task["hydra"]
    assert config_yaml(task) == OmegaConf.to_yaml(task)
    assert config_yaml(task, resolve=True) == OmegaConf.to_yaml(task, resolve=True)  # a run's config.yaml
