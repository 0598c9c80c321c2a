"""A job writes its trials' `.hydra/` records itself (`sweeplab.sweeper.hydra_job.start_job`, for single
and packed jobs), not through Hydra's `run_job`: the files must be the ones Hydra writes, and reproduce
the trial."""

import copy
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.callbacks import Callbacks
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import run_job
from hydra.types import HydraContext
from omegaconf import OmegaConf, open_dict

from sweeplab.paths import config_dir, register_resolvers
from sweeplab.sweeper.hydra_job import start_job
from sweeplab.train import train

FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")


def test_a_packed_job_writes_the_records_hydra_writes(tmp_path: Path, data_dir: Path) -> None:
    register_resolvers()
    overrides = [f"data_dir={data_dir}", "optimizer.lr=0.003", "model.hidden=[64,32]", "trainer.max_steps=5"]
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        base = compose("config", overrides=overrides, return_hydra_config=True)
        loader = GlobalHydra.instance().config_loader()
    records = {}
    for who in ("hydra", "sweeplab"):
        config = copy.deepcopy(base)
        with open_dict(config):
            config.hydra.sweep.dir = str(tmp_path / who)
            config.hydra.sweep.subdir = "7"
            config.hydra.job.num = 7
        previous = HydraConfig.instance().cfg
        if who == "hydra":
            context = HydraContext(config_loader=loader, callbacks=Callbacks(config))
            run_job(lambda cfg: None, config, "hydra.sweep.dir", "hydra.sweep.subdir", context, False)
        else:
            start_job(config, configure_logging=False)
        HydraConfig.instance().cfg = previous
        folder = tmp_path / who / "7" / ".hydra"
        records[who] = {
            name: (folder / name).read_text().replace(str(tmp_path / who), "DIR") for name in FILES
        }
    assert records["sweeplab"] == records["hydra"]
    saved = OmegaConf.load(tmp_path / "sweeplab" / "7" / ".hydra" / "config.yaml")
    assert saved.optimizer.lr == 0.003 and list(saved.model.hidden) == [64, 32]
    assert OmegaConf.load(tmp_path / "sweeplab" / "7" / ".hydra" / "overrides.yaml") == overrides
    # the report's "reproduce it": `sweeplab train --config-path 7/.hydra --config-name config`
    with initialize_config_dir(str(tmp_path / "sweeplab" / "7" / ".hydra"), version_base="1.3"):
        again = compose("config")
    task = OmegaConf.masked_copy(base, [k for k in base if k != "hydra"])
    assert OmegaConf.to_container(again) == OmegaConf.to_container(task)
    first, second = train(task), train(again)
    numbers = [
        [{k: v for k, v in row.items() if k != "elapsed_s"} for row in r.history] for r in (first, second)
    ]
    assert numbers[0] == numbers[1] and first.metrics["test_acc"] == second.metrics["test_acc"]
