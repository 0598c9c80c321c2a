"""The `sweeplab` command: `sweeplab train [HYDRA OVERRIDES]` runs one trial."""

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from sweeplab.config import SweeplabError
from sweeplab.paths import config_dir, register_resolvers

log = logging.getLogger("sweeplab")
register_resolvers()

USAGE = """usage: sweeplab COMMAND [ARGS]

commands:
  train [OVERRIDES]   train one model; OVERRIDES are Hydra's (model=cnn optimizer.lr=3e-4 ...)
                      `sweeplab train --help` lists the config groups and their options
  train -m [OVERRIDES | sweep=NAME]
                      run a study: Optuna picks each trial's values of the swept keys
                      ('optimizer.lr=tag(log, interval(1e-4, 1e-1))', 'model=choice(mlp,cnn)')
  report STUDY [STUDY ...] | report --sweep NAME
                      tables (md, tex, csv, html), figures and an index.md of one or more studies
                      `sweeplab report --help` lists the options

configs: {conf}
"""


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def train_app(cfg: DictConfig) -> dict:
    """One run; under `-m`, one trial of the sweep, reporting to it through `current_reporter()`."""
    from sweeplab.sweep.job import current_reporter
    from sweeplab.train import train  # torch loads only when a run starts, not for --help

    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        result = train(cfg, output_dir, reporter=current_reporter())
    except SweeplabError as err:
        if hydra_cfg.mode == RunMode.MULTIRUN:
            raise  # the sweeper records the trial as FAIL with this message and goes on
        log.error("%s", err)  # to the console and the run's log file, without a traceback
        raise SystemExit(2) from None
    print(
        f"{result.status}: val_acc={result.metrics['val_acc']:.4f} test_acc={result.metrics['test_acc']:.4f} "
        f"params={result.metrics['params']:,} {result.metrics['train_seconds']:.1f}s -> {output_dir}"
    )
    return result.metrics


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE.format(conf=config_dir()))
        return
    command, rest = args[0], args[1:]
    if command == "report":
        from sweeplab.report.command import main as report

        try:
            report(rest)
        except SweeplabError as err:
            print(f"sweeplab report: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        return
    if command == "train":
        # Hydra reads its overrides from sys.argv: hand it everything after the sub-command.
        sys.argv = ["sweeplab train", *rest]
        train_app()
        return
    print(f"sweeplab: unknown command {command!r}\n\n{USAGE.format(conf=config_dir())}", file=sys.stderr)
    raise SystemExit(2)
