"""The `hydra.sweeper` node of a sweeplab sweep: its schema, defaults and meaning (kept light: Hydra's
plugin discovery imports it at every start)."""

from dataclasses import dataclass, field
from typing import Any

from sweeplab.config import ConfigError


@dataclass
class SlurmSettings:
    """`hydra.sweeper.slurm`: run the study's trials as SLURM jobs (sweeplab.sweeper.slurm). The resource
    names are those of Hydra's submitit launcher."""

    jobs: int = 0  # worker jobs, submitted as one job array; 0: run the trials here, without SLURM
    partition: str | None = None  # null: the cluster's default partition
    timeout_min: int = 60  # each job's time limit, in minutes
    cpus_per_task: int | None = None  # null: the cluster's default (usually 1)
    gpus_per_node: int | None = None
    mem_gb: float | None = None
    account: str | None = None
    qos: str | None = None
    # SLURM sends SIGUSR2 this long before a job's time limit (and on preemption): the running trials
    # are queued again to resume from their last checkpoint, and the job is requeued
    signal_delay_s: int = 90
    max_requeues: int = 10  # times a job requeues itself after SIGUSR2
    array_parallelism: int | None = None  # jobs of the array that run at once; null: all
    setup: list[str] = field(default_factory=list)  # shell lines run before the worker ("module load ...")
    additional_parameters: dict[str, Any] = field(default_factory=dict)  # other sbatch options
    folder: str | None = None  # the jobs' scripts and logs; null: <hydra.sweep.dir>/.slurm
    detach: bool = False  # submit and return with the job ids (--detach), instead of following the study


# Optuna's classes as hydra-optuna-sweeper's configs name them (`_target_`), and sweeplab's names for them
SAMPLER_CLASSES = {
    "optuna.samplers.TPESampler": "tpe",
    "optuna.samplers.RandomSampler": "random",
    "optuna.samplers.GridSampler": "grid",
    "optuna.samplers.CmaEsSampler": "cmaes",
    "optuna.samplers.GPSampler": "gp",
    "optuna.samplers.NSGAIISampler": "nsgaii",
    "optuna.samplers.NSGAIIISampler": "nsgaiii",
    "optuna.samplers.QMCSampler": "qmc",
    "optuna.samplers.BruteForceSampler": "bruteforce",
}
PRUNER_CLASSES = {
    "optuna.pruners.NopPruner": "none",
    "optuna.pruners.MedianPruner": "median",
    "optuna.pruners.PercentilePruner": "percentile",
    "optuna.pruners.SuccessiveHalvingPruner": "successive_halving",
    "optuna.pruners.HyperbandPruner": "hyperband",
}


def named(node: Any, classes: dict[str, str], field: str, default: str) -> dict[str, Any]:
    """A sampler or pruner node as sweeplab names it: `grid` -> {name: grid}; {_target_: Optuna's class,
    options} (hydra-optuna-sweeper's and lightning-hydra-template's form) -> its name and the options
    (a `_target_` outside Optuna's known classes stays a dotted path, checked when it is built)."""
    node = {"name": node} if isinstance(node, str) else dict(node or {})
    target = node.pop("_target_", None)
    if target is not None:  # it wins over a name the defaults list gave
        node["name"] = classes.get(target, target)
    if "name" not in node and node:
        # `pruner=median +pruner.n_warmup_steps=5` on a command line: the second replaces the first
        example = f"{field}.name=NAME +{field}.{next(iter(node))}=..."
        raise ConfigError(
            f"{field}.name", f"missing beside its options ({', '.join(node)}); give both: {example}"
        )
    node.setdefault("name", default)
    return node


@dataclass
class SweeperSettings:
    _target_: str = "hydra_plugins.sweeplab_sweeper.sweeplab_sweeper.SweeplabSweeper"
    # Hydra instantiates the sweeper from this node: a `_target_` inside it (a sampler given as
    # {_target_: optuna.samplers.TPESampler, ...}) stays a config, which sweeplab checks and builds
    _recursive_: bool = False
    # the sampler's config group, as hydra-optuna-sweeper has it: `override hydra/sweeper/sampler: grid`
    defaults: list[Any] = field(default_factory=lambda: ["_self_", {"sampler": "tpe"}])
    study_name: str | None = "default"  # null (hydra-optuna-sweeper's default): the app's job name
    storage: str | None = None  # any Optuna storage URL; null: sqlite:///studies/<study_name>.db
    # COMPLETE + PRUNED trials the study should have; reruns run only what is missing. null: every
    # setup (times the grid of params), every point of a grid sampler's grid, or else 20
    n_trials: int | None = None
    n_jobs: int = 1  # trials at once; above 1, in spawned worker processes
    # up to this many trials that differ only in packable values (seed, rates, dropout) are trained as
    # one packed model (sweeplab.packed); n_jobs x pack trials are in flight
    pack: int = 1
    # a trial whose config equals a completed trial's takes its result instead of training again
    # (sweeplab.sweeper.reuse); null: where the task declares its runs a function of their config and
    # seed (sweeplab's train does), not for other tasks, whose repeated runs may be new samples
    reuse_results: bool | None = None
    # train every configuration this many times, with different seeds, as ONE trial
    # (sweeplab.sweeper.replicates): the members set replicate_key to the config's value + 0..replicates-1,
    # or to replicate_seeds; the trial's value (and what a pruner sees at each step) is the aggregate of
    # theirs: mean, median, iqm (interquartile mean), min or max. A trial's members train as one pack
    # (with `pack`, whole trials are added while the pack holds at most `pack` members)
    replicates: int = 1
    replicate_key: str = "trainer.seed"
    replicate_seeds: list[int] | None = None
    aggregate: str = "mean"
    # metrics the study optimises (keys of the run's summary) and, one each, maximize or minimize;
    # lists so that the command line replaces them whole: hydra.sweeper.objectives=[val_acc,params].
    # null: sweeplab's train maximizes val_acc; any other task's value is `value` (a float), `value_0`,
    # `value_1`, ... (a tuple), minimized unless `direction(s)` say otherwise
    objectives: list[str] | None = None
    directions: list[str] | None = None
    direction: Any = None  # hydra-optuna-sweeper's key: minimize or maximize, or a list of them
    # hydra-optuna-sweeper's: a dotted path to a function (config, trial) that suggests more values
    custom_search_space: str | None = None
    search_space: Any = None  # hydra-optuna-sweeper 1.1's name for `params`: refused, naming it
    # {name: tpe, seed: ..., other options of Optuna's sampler}; a name alone means its defaults. Any,
    # not a dict: `sampler=grid` is a string until __post_init__ names it; the options are checked
    # against the sampler's signature when it is built (sweeplab.engine.study.build_from)
    sampler: Any = field(default_factory=lambda: {"name": "tpe", "seed": None})
    pruner: Any = field(default_factory=lambda: {"name": "none"})  # likewise: hyperband = {name: hyperband}
    # bounds on metrics the task returns, {params: "<= 100000"}: Optuna's samplers steer away from trials
    # that break them and its Pareto front is of those that meet them (sweeplab.sweeper.constraints)
    constraints: dict[str, Any] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)  # key: Hydra sweep expression
    enqueue: list[dict[str, Any]] = field(default_factory=list)  # configurations to run first (a baseline)
    # an ordered list of configurations ({key: value, name: ...}), run in this order for each combination
    # of the params; see sweeplab.sweeper.setups
    setups: list[dict[str, Any]] = field(default_factory=list)
    ablation: bool = False  # setups after the first change only what they name, on top of the kept ones
    # times a trial whose process died (killed, out of memory) is queued again; it resumes from its last
    # evaluation. Trials interrupted by SIGINT/SIGTERM are always queued again.
    max_retries: int = 3
    max_failures: int = 5  # failed trials in one run after which no more start (the command exits 1)
    max_failure_rate: float = 0.2  # above this share of failed trials (of 10 or more), likewise
    # resuming a study whose fixed values (anything but the searched keys) differ is refused unless true
    accept_changes: bool = False
    heartbeat_interval: float = 10.0  # seconds between a running trial's signs of life
    # seconds without one after which a trial of another host counts as dead (on this host, a trial
    # whose process is gone is reclaimed at once)
    stale_after: float = 60.0
    # how `sweeplab report --sweep NAME` shows the study: metrics {name: direction}, columns, headers,
    # ablation (mark changes from the first row); the sweeper itself does not use it
    report: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None  # seconds: no new trial starts after this (running ones finish)
    dry_run: bool = False  # print the plan and the first trials' configurations; run and store nothing
    slurm: SlurmSettings = field(default_factory=SlurmSettings)  # run the trials as SLURM jobs

    def __post_init__(self) -> None:
        # `sampler=grid` on the command line or in a sweep file means {name: grid}
        self.sampler = named(self.sampler, SAMPLER_CLASSES, "hydra.sweeper.sampler", "tpe")
        self.pruner = named(self.pruner, PRUNER_CLASSES, "hydra.sweeper.pruner", "none")
        if not isinstance(self.slurm, SlurmSettings):
            self.slurm = SlurmSettings(**self.slurm)
