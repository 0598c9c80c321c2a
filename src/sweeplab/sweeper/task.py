"""What a task function tells the sweeper before any trial runs: the metrics it returns, the ones it
reports during a run (for pruning), and how to check a config without running it. A sweep is then
checked whole before its first trial: a typo'd objective or a config that cannot build costs nothing."""

from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

from omegaconf import DictConfig

ATTRIBUTE = "sweeplab_task"
Reporter = Callable[[int, dict[str, float]], bool]  # (step, metrics) -> whether the trial should stop
REPORTER: ContextVar[Reporter | None] = ContextVar("sweeplab_reporter", default=None)  # set by the job


def current_reporter() -> Reporter | None:
    """The running trial's reporter, for a task function launched by the sweeper (None otherwise)."""
    return REPORTER.get()


@dataclass(frozen=True)
class TaskContract:
    metrics: tuple[str, ...]  # numbers the task returns, any of which can be an objective
    intermediate: tuple[str, ...] = ()  # metrics reported during a run, which a pruner can watch
    # metrics a run knows before training (a parameter count), sent with each intermediate value: a study
    # of several objectives prunes a trial only against trials no worse than it on them
    known: tuple[str, ...] = ()
    check: Callable[[DictConfig], None] | None = None  # builds a trial's objects without data; raises
    pack: "Packing | None" = None  # how to run several trials as one (hydra.sweeper.pack)
    # a run is a function of its config (and the seed in it): an equal config computes the same numbers,
    # so a trial drawn again takes the first one's result (hydra.sweeper.reuse_results)
    deterministic: bool = False


@dataclass(frozen=True)
class Packing:
    """A task that can train several trials as one job: `run(cfgs, output_dirs, reporters, labels)`
    returns each trial's metrics; `keys(cfg)` names the config keys in which trials of a pack may differ."""

    run: Callable[[list, list, list, list], list]
    keys: Callable[[DictConfig], set[str]]


def sweep_task(
    *,
    metrics: Sequence[str],
    intermediate: Sequence[str] = (),
    check: Callable[[DictConfig], None] | None = None,
    pack: Packing | None = None,
    known: Sequence[str] = (),
    deterministic: bool = False,
) -> Callable[[Callable], Callable]:
    """Declare what a Hydra task function returns, under `@hydra.main`:

    @hydra.main(...)
    @sweep_task(metrics=["val_acc", "test_acc"], intermediate=["val_acc"], known=["params"])
    def app(cfg): ...

    `known`: metrics the task sends with each intermediate value, known before training (for a study of
    several objectives that prunes on one of them). `deterministic`: a run is a function of its config,
    so a configuration drawn again reuses the first run's result instead of training.
    """

    def declare(task: Callable) -> Callable:
        contract = TaskContract(
            tuple(metrics), tuple(intermediate), tuple(known), check, pack, deterministic=deterministic
        )
        setattr(task, ATTRIBUTE, contract)
        return task

    return declare


def contract_of(task: Callable) -> TaskContract | None:
    """The task's declaration; None for a task that declares nothing (then only running it tells)."""
    return getattr(task, ATTRIBUTE, None) or getattr(getattr(task, "__wrapped__", None), ATTRIBUTE, None)
