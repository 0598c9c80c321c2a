"""The `sweeplab` command: train one model or run a study (`train [-m]`), report on studies (`report`),
list, show and delete studies (`studies`), write a study to MLflow (`export`), write stand-in data sets
(`standin-data`).

Expected faults end in one line and an exit code, without a traceback: the user's input (exit 2), the
machine or the storage (exit 1), Ctrl-C (exit 130). Anything else is a bug and shows its traceback."""

import contextlib
import logging
import os
import shutil
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException
from tqdm import tqdm

from sweeplab.config import SweeplabError
from sweeplab.faults import expected_fault, sweeplab_fault
from sweeplab.files import environment_fault
from sweeplab.paths import config_dir, register_resolvers
from sweeplab.stopping import Interrupted
from sweeplab.sweeper.task import Packing, current_reporter, sweep_task
from sweeplab.train.metrics import INTERMEDIATE, METRICS

log = logging.getLogger("sweeplab")
register_resolvers()

USAGE = """usage: sweeplab COMMAND [ARGS]

commands:
  train [OVERRIDES]   train one model; OVERRIDES are Hydra's (model=cnn optimizer.lr=3e-4 ...)
                      `sweeplab train --help` lists the config groups and their options
  train -m [OVERRIDES | sweep=NAME] [--dry-run]
                      run a study: Optuna picks each trial's values of the swept keys
                      ('optimizer.lr=tag(log, interval(1e-4, 1e-1))', 'model=choice(mlp,cnn)');
                      --dry-run prints the plan and the first trials' configurations, runs nothing;
                      with hydra.sweeper.slurm.jobs=N, runs the trials as N SLURM jobs and follows
                      them (--detach: returns with the job ids)
  report STUDY [STUDY ...] | report --sweep NAME
                      tables (md, tex, csv, html), figures and an index.md of one or more studies
                      `sweeplab report --help` lists the options
  studies [--storage URL]            the studies of a storage: trials per state, best value, last activity
  studies show NAME [--storage URL]  a study's space, objectives, commands and best trials
  studies delete NAME [--storage URL] [--yes]
                      remove a study from its storage (its output folders stay on disk)
  export mlflow NAME [--storage URL] [--tracking-uri URI]
                      write a study to MLflow (a parent run, a nested run per trial's run); again:
                      adds what is missing, never a duplicate
  standin-data DIR    write small CIFAR-10, MNIST and Fashion-MNIST files in their real formats into DIR

configs: {conf}
"""


def _check_trial_config(cfg: DictConfig) -> None:
    from sweeplab.train.check import check_config  # torch loads only when needed

    check_config(cfg)


def _train_pack(cfgs: list, output_dirs: list, reporters: list, labels: list) -> list[dict]:
    from sweeplab.packed import train_pack

    return [result.metrics for result in train_pack(cfgs, output_dirs, reporters, labels)]


def _packable_keys(cfg: DictConfig) -> set[str]:
    from sweeplab.packed.keys import packable_keys

    return packable_keys(cfg)


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
@sweep_task(
    metrics=METRICS,
    intermediate=INTERMEDIATE,
    known=["params"],
    deterministic=True,  # seeded throughout; on CUDA without trainer.deterministic, up to kernel noise
    check=_check_trial_config,
    pack=Packing(run=_train_pack, keys=_packable_keys),
)
def train_app(cfg: DictConfig) -> dict:
    """One run; under `-m`, one trial of the sweep, reporting to it through `current_reporter()`."""
    from sweeplab.train import train  # torch loads only when a run starts, not for --help

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    if not multirun and hydra_cfg.sweeper.get("dry_run"):
        raise SweeplabError("--dry-run previews a sweep: add -m, or use a sweep file (sweep=NAME)")
    output_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        result = train(cfg, output_dir, reporter=current_reporter())
    except SweeplabError as err:
        if multirun:
            raise  # the sweeper records the trial as FAIL with this message and goes on
        code, message = sweeplab_fault(err)
        log.error("%s", message)  # to the console, without a traceback
        _remove_refused(output_dir)
        raise SystemExit(code) from None
    tqdm.write(  # above a sweep's progress bar on a terminal, not over it
        f"{result.status}: val_acc={result.metrics['val_acc']:.4f} test_acc={result.metrics['test_acc']:.4f} "
        f"params={result.metrics['params']:,} {result.metrics['train_seconds']:.1f}s -> {output_dir}"
    )
    return result.metrics


def _remove_refused(output_dir: Path) -> None:
    """A run refused before it trained leaves no folder: Hydra made it, with only its own records."""
    if output_dir.is_dir() and {p.name for p in output_dir.iterdir()} <= {".hydra", "train.log"}:
        shutil.rmtree(output_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            output_dir.parent.rmdir()  # the day's folder, where this was its only run


# Hydra's flags that choose what it does, of which a command takes one
HYDRA_MODES = {
    **dict.fromkeys(("-m", "--multirun"), "--multirun"),
    **dict.fromkeys(("-c", "--cfg"), "--cfg"),
    **dict.fromkeys(("-i", "--info"), "--info"),
    **dict.fromkeys(("-r", "--run"), "--run"),
    **dict.fromkeys(("-sc", "--shell-completion"), "--shell-completion"),
}


def _train(args: list[str]) -> None:
    for flag, override in (
        ("--dry-run", "hydra.sweeper.dry_run=true"),
        ("--detach", "hydra.sweeper.slurm.detach=true"),
    ):
        if flag in args:
            args = [a for a in args if a != flag] + [override]
    modes = sorted({HYDRA_MODES[a] for a in args if a in HYDRA_MODES})
    if len(modes) > 1:  # Hydra would raise a ValueError, shown as a traceback
        raise SweeplabError(
            f"{' and '.join(modes)} cannot be given together (Hydra does one of them): "
            "to see a trial's config, drop -m (`--cfg job`); to see a sweep's trials without running "
            "them, use --dry-run"
        )
    # Hydra reads its overrides from sys.argv: hand it everything after the sub-command. Its own
    # handler would print any error with a traceback; this lets them through to `_expected_faults`.
    sys.argv = ["sweeplab train", *args]
    os.environ["HYDRA_FULL_ERROR"] = "1"
    train_app()


def _report(args: list[str]) -> None:
    from sweeplab.report.arguments import parser

    parser().parse_args(args)  # --help, or a mistyped option, before the report's libraries load
    from sweeplab.report.command import main as report

    report(args)


def _studies(args: list[str]) -> None:
    from sweeplab.studies import main as studies

    studies(args)


def _export(args: list[str]) -> None:
    from sweeplab.track.export import main as export

    export(args)


def _standin_data(args: list[str]) -> None:
    from sweeplab.data.standin import main as standin

    standin(args)


COMMANDS: dict[str, Callable[[list[str]], None]] = {
    "train": _train,
    "report": _report,
    "studies": _studies,
    "export": _export,
    "standin-data": _standin_data,
}


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A library's warning (Optuna's ExperimentalWarning, say) as one line, without its source line."""
    return f"warning: {message} ({category.__name__})\n"


def preload(args: list[str]) -> None:
    """The libraries a command will load, loaded now: the console script calls this while a Ctrl-C still
    ends the process at once (an interrupt inside torch's import aborts it with a C++ error)."""
    if args[:1] == ["train"] and not {"-h", "--help"} & set(args):
        import sweeplab.train.loop  # noqa: F401  (torch)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    warnings.formatwarning = _one_line_warning
    if not args or args[0] in ("-h", "--help"):
        print(USAGE.format(conf=config_dir()))
        return
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"sweeplab: unknown command {command!r}\n\n{USAGE.format(conf=config_dir())}", file=sys.stderr)
        raise SystemExit(2)
    code, message = _expected_faults(lambda: COMMANDS[command](rest))
    if message:
        print(f"sweeplab {command}: error: {message}", file=sys.stderr)
    if code:
        raise SystemExit(code)


def _expected_faults(run: Callable[[], None]) -> tuple[int, str]:
    """Runs a command; an expected fault becomes (exit code, one line), anything else propagates."""
    try:
        run()
    except KeyboardInterrupt:
        return 130, "interrupted"
    except RuntimeError as err:  # Hydra's, for a sweeper class it has no plugin of
        if "hydra_optuna_sweeper" not in str(err):
            raise
        return 2, (
            "hydra.sweeper._target_ names hydra-optuna-sweeper's class: delete that line "
            "(`override hydra/sweeper: sweeplab` in the defaults list is all sweeplab needs)"
        )
    except Interrupted as err:  # SIGTERM where a command raises it (the report), after its clean-up
        return 128 + err.signum, err.describe()
    except (HydraException, OmegaConfBaseException) as err:  # a bad override or config: Hydra says which
        cause = err.__cause__
        if isinstance(cause, SweeplabError):  # the sweeper's settings, refused as Hydra instantiated it
            return sweeplab_fault(cause)
        unknown = _unknown_key(err) or _unquoted_non_ascii(err)
        if unknown:
            return 2, unknown
        extra = (
            f"\n{cause}" if isinstance(cause, OmegaConfBaseException) and str(cause) not in str(err) else ""
        )
        return 2, f"{err}{extra}"
    except yaml.YAMLError as err:  # a config or sweep file the user wrote
        return 2, _yaml_problem(err)
    except OSError as err:
        fault = environment_fault(err, err.filename)
        if fault is None and not isinstance(err, FileNotFoundError):
            raise
        return 1, str(fault) if fault else f"{err.strerror}: {err.filename}"
    except Exception as err:  # what the plugin expects too (sweeplab.faults): the input, the storage
        expected = expected_fault(err)
        if expected is None:
            raise
        return expected
    return 0, ""


def _yaml_problem(err: yaml.YAMLError) -> str:
    """YAML's error in one line: the file, line and column, and what is wrong there."""
    mark = getattr(err, "problem_mark", None)
    where = f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}" if mark else "a config file"
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    return f"{where}: not valid YAML: {problem}" + (f" ({context})" if context else "")


def _unquoted_non_ascii(err: Exception) -> str | None:
    """Hydra's override grammar takes only ASCII outside quotes, and says so as its lexer's exception."""
    text = str(err)
    if "LexerNoViableAltException" not in text:
        return None
    override = text.split("LexerNoViableAltException:", 1)[1].strip().splitlines()[0]
    odd = sorted({c for c in override if not c.isascii()})
    if not odd:
        return None
    key, _, value = override.partition("=")
    return f"{override}: Hydra reads {' '.join(odd)} only inside quotes: write '{key}=\"{value}\"'"


def _unknown_key(err: Exception) -> str | None:
    """For an override of a key the config does not have (a typo): the closest key and the keys there
    are, as the sweep's own checks say it, instead of Hydra's hint to add the key with `+`."""
    cause = err.__cause__
    parent = getattr(cause, "parent_node", None)
    if not isinstance(cause, ConfigAttributeError | ConfigKeyError) or not isinstance(parent, DictConfig):
        return None
    from sweeplab.sweeper.validate import closest

    prefix = cause.full_key.rpartition(".")[0]
    known = [f"{prefix}.{k}" if prefix else str(k) for k in parent if not str(k).startswith("_")]
    head = str(err).splitlines()[0]  # Hydra's "Could not override 'optimzer.lr'."
    return (
        f"{head} The config has no key {cause.full_key}{closest(cause.full_key, known)}; "
        f"{prefix or 'the config'} has: {', '.join(sorted(k.rpartition('.')[2] for k in known))}"
    )
