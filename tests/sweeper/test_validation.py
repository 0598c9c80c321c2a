"""A bad sweep is refused whole before its first trial, with one message listing every problem, and
nothing is created: no study, no storage file, no output folder. Shorthands, dry runs and the faults
every command meets (missing files, read-only folders, unreachable storages, Ctrl-C) end in one line."""

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy
from optuna.exceptions import StorageInternalError

from support import FAST, LR, load, states
from sweeplab.cli import _expected_faults
from sweeplab.engine.storage import open_storage, storage_failure, study_name_problem
from sweeplab.files import EnvironmentFault
from sweeplab.sweeper.settings import SweeperSettings
from sweeplab.sweeper.validate import closest

REFUSED = "sweep refused (nothing was run or stored): "


def nothing_created(tmp_path) -> bool:
    return not (tmp_path / "studies").exists() and not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["hydra.sweeper.objectives=[val_accuracy]"],
            "hydra.sweeper.objectives: 'val_accuracy' is not a metric the task reports (did you mean "
            "val_acc?); it reports: val_acc, best_step,",
        ),
        (
            ["model.hiden=choice([10],[20])"],
            "model.hiden: the config has no such key (did you mean model.hidden?)",
        ),
        (
            ["optimizer.lr=interval(0.1, 0.01)"],
            "optimizer.lr: optimizer.lr=interval(0.1, 0.01): the start must be below the end "
            "(interval(0.01, 0.1)?)",
        ),
        (
            ["optimizer.lr=tag(lg, interval(1e-4, 1e-1))"],
            "optimizer.lr: unknown tag lg in optimizer.lr=tag(lg, interval(1e-4, 1e-1)); the only tag is "
            "log, as in tag(log, interval(1e-4, 1e-1))",
        ),
    ],
)
def test_a_bad_sweep_is_refused_with_one_line_before_anything_is_created(
    tmp_path, sweeplab, overrides, message
):
    done = sweeplab("train", "-m", *overrides, *FAST)
    assert done.returncode == 2, done.stdout
    assert REFUSED + message in done.stdout, done.stdout
    assert "Traceback" not in done.stdout
    assert nothing_created(tmp_path)


def test_configs_that_cannot_build_and_settings_that_cannot_work_are_refused(tmp_path, sweeplab):
    done = sweeplab(
        "train",
        "-m",
        "model.activation=choice(relu,swish)",
        "model=choice(mlp,cnnn)",
        "trainer.eval_every=choice(10,0)",
        "optimizer.lr=tag(log, interval(0, 1e-1))",
        "hydra.sweeper.pruner=median",
        "hydra.sweeper.objectives=[test_acc]",
        "hydra.sweeper.sampler=grid",
        *FAST,
    )
    assert done.returncode == 2 and "Traceback" not in done.stdout
    problems = done.stdout[done.stdout.index("sweep refused") :].splitlines()[1:]
    assert problems == [
        "  - optimizer.lr: a log interval needs a positive start, got 0",
        "  - hydra.sweeper.pruner: pruning needs an objective the task reports during a run (val_acc, "
        "val_loss, train_acc, train_loss), not 'test_acc'",
        "  - model: no option 'cnnn'; choose from: cnn, linear, mlp, preact_convnet, preact_resnet, "
        "torchvision",
        "  - with model=mlp, model.activation=swish: model.activation: unknown activation 'swish'; choose "
        "one of: relu, leaky_relu, elu, selu, gelu, silu, mish, softplus, tanh, sigmoid, identity",
        "  - with model=mlp, trainer.eval_every=0: trainer.eval_every: must be positive, got 0",
    ]
    assert nothing_created(tmp_path)
    # a fixed value that cannot work fails every kind of trial: it is listed once
    grid = sweeplab(
        "train", "-m", LR, "optimizer=sgd", "optimizer.momentum=1.5", "hydra.sweeper.sampler=grid", *FAST
    )
    assert grid.returncode == 2
    assert grid.stdout[grid.stdout.index("sweep refused") :].splitlines()[1:] == [
        "  - optimizer.lr: the grid and brute-force samplers need discrete values: use choice(...) or "
        "range(...), not interval(...)",
        "  - optimizer.momentum: must be in [0, 1), got 1.5",
    ]


def test_every_problem_of_a_sweep_is_listed_at_once(tmp_path, sweeplab):
    done = sweeplab(
        "train",
        "-m",
        "model.hiden=choice([10],[20])",
        "optimizer.lr=interval(0.1, 0.01)",
        "model.activation=choice(relu,swish)",
        "hydra.sweeper.objectives=[val_accuracy]",
        "hydra.sweeper.n_jobs=0",
        *FAST,
    )
    assert done.returncode == 2
    lines = done.stdout[done.stdout.index("sweep refused") :].splitlines()
    assert lines[0].endswith("sweep refused, 5 problems (nothing was run or stored):")
    assert [line.split(":")[0] for line in lines[1:6]] == [
        "  - hydra.sweeper.n_jobs",
        "  - optimizer.lr",
        "  - hydra.sweeper.objectives",
        "  - model.hiden",
        "  - with model.activation=swish",
    ]
    assert nothing_created(tmp_path)


def test_keys_of_some_group_options_only_and_a_setup_of_another_group_are_legal(tmp_path, sweeplab):
    sweep_dir = tmp_path / "mine" / "sweep"
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "groups.yaml").write_text(
        """# @package _global_
hydra:
  mode: MULTIRUN
  sweeper:
    study_name: groups
    setups:
      - {name: plain, model: mlp}
      - {name: conv, model: cnn, model.kernel_size: 3}
"""
    )
    done = sweeplab(
        "train",
        f"--config-dir={tmp_path / 'mine'}",
        "sweep=groups",
        "optimizer=choice(sgd,adam)",
        "optimizer.momentum=choice(0.5,0.9)",  # sgd has it, adam does not: conditional
        "--dry-run",
        *FAST,
    )
    assert done.returncode == 0, done.stdout
    assert "sweep refused" not in done.stdout
    assert "  conv: model=cnn model.kernel_size=3" in done.stdout
    assert nothing_created(tmp_path)


def test_sampler_and_pruner_names_alone_mean_their_defaults():
    assert SweeperSettings(sampler="grid", pruner="hyperband").sampler == {"name": "grid"}
    assert SweeperSettings(pruner="hyperband").pruner == {"name": "hyperband"}
    assert SweeperSettings(sampler={"name": "tpe", "seed": 3}).sampler == {"seed": 3, "name": "tpe"}


def test_options_that_lost_their_name_are_refused_not_given_the_default(tmp_path, sweeplab):
    # on Hydra's command line the second override replaces the first's name with the options alone:
    # before, `random` became tpe with seed 3, and `median` became none ("takes: no options")
    for name, option in (("sampler=random", "sampler.seed=3"), ("pruner=median", "pruner.n_warmup_steps=5")):
        done = sweeplab("train", "-m", f"hydra.sweeper.{name}", f"+hydra.sweeper.{option}", *FAST)
        assert done.returncode == 2, done.stdout
        field, key = option.split("=")[0].split(".")
        assert f"hydra.sweeper.{field}.name: missing beside its options ({key}); give both" in done.stdout
        assert "Traceback" not in done.stdout
    assert nothing_created(tmp_path)


@pytest.mark.slow
def test_the_shorthands_work_on_the_command_line_and_in_a_sweep_file(tmp_path, sweeplab):
    done = sweeplab(
        "train",
        "-m",
        "optimizer.lr=choice(0.01,0.1)",
        "hydra.sweeper.sampler=grid",
        "hydra.sweeper.pruner=hyperband",
        "hydra.sweeper.study_name=short",
        *FAST,
    )
    assert done.returncode == 0, done.stdout
    assert states(load(tmp_path, "short"))["COMPLETE"] + states(load(tmp_path, "short"))["PRUNED"] == 2
    sweep_dir = tmp_path / "mine" / "sweep"
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "short.yaml").write_text(
        """# @package _global_
hydra:
  mode: MULTIRUN
  sweeper:
    study_name: file
    sampler: random
    pruner: median
    params:
      optimizer.lr: choice(0.01, 0.1)
"""
    )
    preview = sweeplab("train", f"--config-dir={tmp_path / 'mine'}", "sweep=short", "--dry-run", *FAST)
    assert preview.returncode == 0, preview.stdout
    assert "sampler: random\n" in preview.stdout and "pruner: median, watching val_acc\n" in preview.stdout
    # a sweep file carries the SLURM resources too (sweeplab.sweeper.slurm); a dry run submits nothing
    text = (sweep_dir / "short.yaml").read_text()
    slurm = (
        "    slurm: {jobs: 8, partition: gpu, timeout_min: 240, additional_parameters: {constraint: a100}}\n"
    )
    (sweep_dir / "short.yaml").write_text(text + slurm)
    preview = sweeplab("train", f"--config-dir={tmp_path / 'mine'}", "sweep=short", "--dry-run", *FAST)
    assert preview.returncode == 0, preview.stdout
    assert (
        "SLURM: 8 worker jobs (one array) on partition gpu, 240 min each, --constraint=a100\n"
        in preview.stdout
    )


def test_a_dry_run_prints_the_plan_and_the_first_trials_and_stores_nothing(tmp_path, sweeplab):
    args = ["train", "sweep=mnist1d_mlp", *FAST]
    done = sweeplab(*args, "--dry-run")
    assert done.returncode == 0, done.stdout
    out = done.stdout
    assert "dry run: the plan of the sweep; nothing is run, stored or written" in out
    assert "budget: 20 finished trials (COMPLETE + PRUNED), 1 at a time" in out
    assert "optimizer.lr: log-uniform [0.0001, 0.01]" in out
    assert "queued first: 1 enqueued and 0 planned trials" in out
    # the enqueued baseline first, then what the seeded sampler draws
    baseline = "model.hidden=[100,100] model.activation=relu model.norm=none optimizer.lr=0.001"
    assert f"  trial 0: {baseline} ->" in out
    assert out.count("  trial ") == 5
    assert nothing_created(tmp_path)
    # the preview draws what the study draws
    run = sweeplab(*args, "hydra.sweeper.n_trials=3")
    assert run.returncode == 0, run.stdout
    for trial in load(tmp_path, "mnist1d_mlp").trials[1:]:
        shown = " ".join(f"{k}={v}" for k, v in trial.params.items())
        assert f"  trial {trial.number}: {shown} ->" in out
    single = sweeplab("train", "--dry-run")
    assert single.returncode == 2
    assert "--dry-run previews a sweep: add -m, or use a sweep file (sweep=NAME)" in single.stdout


def test_a_bad_override_of_a_single_run_is_one_line(tmp_path, sweeplab):
    done = sweeplab("train", "model.hiden=10", process=True)  # the console script's exit status and line
    assert done.returncode == 2 and "Traceback" not in done.stdout
    assert "sweeplab train: error: Could not override 'model.hiden'." in done.stdout
    said = "The config has no key model.hiden (did you mean model.hidden?); model has: activation, dropout,"
    assert said in done.stdout and "To append to your config use +" not in done.stdout
    # a sweeper's or SLURM's option alike, before anything is stored
    slurm = sweeplab("train", "-m", LR, "hydra.sweeper.slurm.partiton=gpu", "hydra.sweeper.slurm.jobs=2")
    assert slurm.returncode == 2 and "Traceback" not in slurm.stdout
    said = "(did you mean hydra.sweeper.slurm.partition?); hydra.sweeper.slurm has: account,"
    assert said in slurm.stdout and nothing_created(tmp_path)


def test_the_sweepers_own_maps_take_new_keys_from_the_command_line_and_hydras_modes_one_at_a_time(
    tmp_path, sweeplab
):
    """`params` and `constraints` hold the user's keys: set whole or a key at a time, as in a sweep file."""
    whole = sweeplab(
        "train",
        "-m",
        'hydra.sweeper.params={optimizer.lr: "choice(0.1,0.01)"}',
        'hydra.sweeper.constraints={params: "<= 100000"}',
        "hydra.sweeper.n_trials=2",
        "--dry-run",
    )
    assert whole.returncode == 0, whole.stdout
    assert (
        "constraints: params <= 100000" in whole.stdout
        and "optimizer.lr: choice of 0.1, 0.01" in whole.stdout
    )
    one_key = sweeplab("train", "-m", LR, 'hydra.sweeper.constraints.params=">= 10"', "--dry-run")
    assert one_key.returncode == 0 and "constraints: params >= 10" in one_key.stdout, one_key.stdout
    both = sweeplab("train", "-m", LR, "--cfg", "job", process=True)  # Hydra's ValueError, as a traceback
    assert both.returncode == 2 and "Traceback" not in both.stdout
    assert "sweeplab train: error: --cfg and --multirun cannot be given together" in both.stdout
    assert nothing_created(tmp_path)


def test_the_closest_key_is_found_by_its_last_part_or_its_path():
    known = ["hydra.sweeper.slurm.qos", "hydra.sweeper.slurm.partition", "model.hidden", "optimizer.lr"]
    assert closest("hydra.sweeper.slurm.partiton", known) == " (did you mean hydra.sweeper.slurm.partition?)"
    assert closest("optimzer.lr", known) == " (did you mean optimizer.lr?)"
    assert closest("hydra.sweeper.slurm.zzz", known) == ""  # not qos, for all their shared path
    assert closest("model.zzz", known) == closest("model.hidden.x", known) == ""
    assert closest("gpux", ["cpu", "gpu"]) == " (did you mean gpu?)"


@pytest.mark.slow
def test_a_bad_notes_file_is_one_line(tmp_path, sweeplab):
    sweeplab("train", "-m", "optimizer.lr=choice(0.01)", "hydra.sweeper.study_name=n", *FAST)
    done = sweeplab("report", "n", "--notes", "/nonexistent.md")
    assert done.returncode == 2 and "Traceback" not in done.stdout
    assert (
        "sweeplab report: error: --notes: cannot read /nonexistent.md: No such file or directory"
        in done.stdout
    )


def test_an_unreachable_storage_is_one_line_with_the_password_masked(tmp_path, sweeplab):
    # in a process of its own: the storage's errors are caught by classes the command itself loaded
    storage = "hydra.sweeper.storage=postgresql://bob:s3cret@127.0.0.1:1/db"
    done = sweeplab("train", "-m", LR, storage, *FAST, process=True)
    assert done.returncode == 1 and "Traceback" not in done.stdout
    assert "s3cret" not in done.stdout
    assert "postgresql://bob:***@127.0.0.1:1/db" in done.stdout
    listing = sweeplab("studies", "--storage", "postgresql://bob:s3cret@127.0.0.1:1/db")
    assert (
        listing.returncode in (1, 2) and "s3cret" not in listing.stdout and "Traceback" not in listing.stdout
    )


def test_a_postgresql_storage_without_its_driver_is_one_line_naming_the_extra(
    tmp_path, sweeplab, monkeypatch
):
    """A user who did not install sweeplab[postgres]: the missing driver, named, before any connection."""
    missing = tmp_path / "no-driver"
    for name in ("psycopg", "psycopg2"):  # importable by name, failing as an absent module does
        (missing / name).mkdir(parents=True)
        (missing / name / "__init__.py").write_text(f"raise ModuleNotFoundError('No module named {name}')")
    monkeypatch.setenv("PYTHONPATH", str(missing))
    url = "postgresql://bob:s3cret@127.0.0.1:1/db"
    for args in (["train", "-m", LR, f"hydra.sweeper.storage={url}", *FAST], ["studies", "--storage", url]):
        done = sweeplab(*args, process=True)
        assert done.returncode == 1 and "Traceback" not in done.stdout and "s3cret" not in done.stdout
        assert "postgresql://bob:***@127.0.0.1:1/db needs the PostgreSQL driver" in done.stdout
        assert "pip install 'sweeplab[postgres]'" in done.stdout


def test_ctrl_c_in_a_single_run_is_one_line(tmp_path, sweeplab):
    run = sweeplab(
        "train", "trainer.max_steps=100000", "trainer.eval_every=1000", background=True, new_group=True
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("outputs/runs/*/*/train.log")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    run.send_signal(signal.SIGINT)
    out, _ = run.communicate(timeout=60)
    assert run.returncode == 130, out
    assert "sweeplab train: error: interrupted" in out and "Traceback" not in out


@pytest.mark.slow
def test_a_read_only_folder_is_one_line_for_train_and_report(tmp_path, sweeplab, small_disk):
    read_only = small_disk
    subprocess.run(["mount", "-o", "remount,ro", str(read_only)], check=True)
    single = sweeplab("train", f"hydra.run.dir={read_only}/run", *FAST)
    assert single.returncode == 1 and "Traceback" not in single.stdout
    assert f"sweeplab train: error: read-only file system writing {read_only}/run" in single.stdout
    sweeplab("train", "-m", "optimizer.lr=choice(0.01)", "hydra.sweeper.study_name=r", *FAST)
    report = sweeplab("report", "r", "--out", f"{read_only}/report")
    assert report.returncode == 1 and "Traceback" not in report.stdout
    assert f"sweeplab report: error: read-only file system writing {read_only}/" in report.stdout


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/sweeplab-abs"])
def test_a_study_name_is_a_name_never_a_path(tmp_path, sweeplab, name):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    done = sweeplab("train", "-m", LR, f"hydra.sweeper.study_name={name}", *FAST, cwd=work)
    assert done.returncode == 2 and "Traceback" not in done.stdout
    assert f"hydra.sweeper.study_name: {name!r} is not a study name" in done.stdout
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["a", "a/b"]
    assert not Path("/tmp/sweeplab-abs.db").exists()


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("ok_name-1.2+3", None),
        ("a/b", "not a study name"),
        ("..", "not a study name"),
        ("x..y", "not a study name"),
        (".hidden", "not a study name"),
        ("two words", "not a study name"),
        ("", "needs a name"),
        ("x" * 101, "at most 100"),
    ],
)
def test_study_names(name, problem):
    found = study_name_problem(name)
    assert found is None if problem is None else problem in found


def test_a_sweep_file_that_is_not_yaml_is_one_line(tmp_path, sweeplab):
    (tmp_path / "conf" / "sweep").mkdir(parents=True)
    (tmp_path / "conf" / "sweep" / "broken.yaml").write_text("hydra:\n  sweeper:\n    n_trials: [1\n")
    done = sweeplab("train", "sweep=broken", "--config-dir", str(tmp_path / "conf"))
    assert done.returncode == 2 and "Traceback" not in done.stdout
    assert (
        f"sweeplab train: error: {tmp_path}/conf/sweep/broken.yaml, line 4, column 1: not valid YAML: "
        "expected ',' or ']'" in done.stdout
    )
    assert nothing_created(tmp_path)


@pytest.mark.parametrize("after", [0.2, 0.6, 1.2, 1.8])
def test_ctrl_c_while_the_command_starts_is_one_line(tmp_path, sweeplab, after):
    # long enough to be running whenever the signal comes (a fast machine finishes 40 steps in 1.8 s,
    # and a signal in Python's own shutdown meets the default handler: not what this test is about)
    run = sweeplab("train", "trainer.max_steps=100000", background=True, new_group=True)
    time.sleep(after)  # while Python, Hydra and torch are being imported
    assert run.poll() is None
    run.send_signal(signal.SIGINT)
    out, _ = run.communicate(timeout=60)
    assert run.returncode == 130, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out and "interrupted" in out


def test_a_full_disk_under_the_storage_is_named_as_such(tmp_path, sweeplab, small_disk):
    filler = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    with contextlib.suppress(OSError):
        while True:  # a full disk where the studies are
            os.write(filler, b"\0" * 4096)
    os.close(filler)
    done = sweeplab("train", "-m", LR, f"hydra.sweeper.storage=sqlite:///{small_disk}/s.db", *FAST)
    assert done.returncode == 1 and "Traceback" not in done.stdout, done.stdout
    assert f"no space left on device writing the study's storage {small_disk}/s.db" in done.stdout


def test_a_storage_failure_names_the_drivers_words_not_the_wrappers():
    try:
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as driver:
            raise sqlalchemy.exc.OperationalError("COMMIT", {}, driver) from driver
    except sqlalchemy.exc.OperationalError as wrapped:
        try:
            raise StorageInternalError("An exception is raised during the commit.") from wrapped
        except StorageInternalError as err:
            failure = storage_failure(err, "sqlite:////some/where/s.db")
    assert failure.startswith("no space left on device writing the study's storage /some/where/s.db")
    locked = sqlalchemy.exc.OperationalError("x", {}, sqlite3.OperationalError("database is locked"))
    assert storage_failure(locked) == (
        "the storage failed: database is locked; rerun the same command to resume once it works"
    )


def test_a_storage_folder_that_cannot_be_written_is_named_not_its_lock_file():
    with pytest.raises(EnvironmentFault, match=r"cannot write in the folder of /proc/sweeplab-x\.db"):
        open_storage("sqlite:////proc/sweeplab-x.db")


def test_a_study_deleted_under_a_command_is_one_line():
    def gone():
        raise KeyError("Record does not exist.")

    code, message = _expected_faults(gone)
    assert code == 1 and "the study was deleted from its storage while this command ran" in message


def test_a_comma_list_under_a_sampler_that_draws_says_what_it_means(tmp_path, sweeplab):
    done = sweeplab("train", "-m", "trainer.seed=0,1,2", "--dry-run", *FAST)
    assert done.returncode == 0, done.stdout
    assert "trainer.seed=0,1,2 is a choice the tpe sampler draws from" in done.stdout
    grid = sweeplab("train", "-m", "trainer.seed=0,1,2", "hydra.sweeper.sampler=grid", "--dry-run", *FAST)
    assert "is a choice" not in grid.stdout


def test_a_grid_of_100000_points_starts_at_once_and_says_its_size(tmp_path, sweeplab):
    grid = ["trainer.seed=range(0,100000)", "hydra.sweeper.sampler=grid", "hydra.sweeper.n_trials=2"]
    done = sweeplab("train", "-m", *grid, *FAST, timeout=180)  # a bound, not a timing
    assert done.returncode == 0, done.stdout
    assert "its plan has 100,000 configurations, queued as trials start" in done.stdout
    study = load(tmp_path, "default")
    assert states(study) == {"COMPLETE": 2} and [t.params for t in study.trials] == [
        {"trainer.seed": 0},
        {"trainer.seed": 1},
    ]


def test_a_refused_single_run_leaves_no_folder(tmp_path, sweeplab):
    done = sweeplab("train", "trainer.batch_size=0")
    assert done.returncode == 2 and "trainer.batch_size: must be positive, got 0" in done.stdout
    assert not list((tmp_path / "outputs").glob("runs/*/*"))


def test_a_non_ascii_value_unquoted_says_to_quote_it_and_a_study_name_must_be_ascii(tmp_path, sweeplab):
    unquoted = sweeplab("train", "-m", "hydra.sweeper.study_name=étude")
    assert unquoted.returncode == 2 and "LexerNoViableAltException" not in unquoted.stdout
    assert """Hydra reads é only inside quotes: write 'hydra.sweeper.study_name="étude"'""" in unquoted.stdout
    quoted = sweeplab("train", "-m", 'hydra.sweeper.study_name="étude"')
    assert quoted.returncode == 2 and "use ASCII letters, digits and _ . + -" in quoted.stdout
    assert not (tmp_path / "studies").exists()


def test_packing_with_tpe_shows_no_experimental_notice(tmp_path, sweeplab):
    done = sweeplab(
        "train", "-m", LR, "model.hidden=choice([16],[32])", "hydra.sweeper.pack=4",
        "hydra.sweeper.replicates=2", "hydra.sweeper.n_trials=4", "trainer.max_steps=20",
        process=True,  # as a user sees warnings: pytest would catch them in its own process
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
    assert "experimental" not in done.stdout.lower() and "PartialFixedSampler" not in done.stdout


def test_a_sqlite_file_locked_by_another_program_is_waited_for_saying_so(tmp_path, sweeplab):
    import threading

    args = ["train", "-m", LR, "hydra.sweeper.study_name=locked", "hydra.sweeper.n_trials=1", *FAST]
    assert sweeplab(*args).returncode == 0
    holder = sqlite3.connect(
        tmp_path / "studies" / "locked.db", isolation_level=None, check_same_thread=False
    )
    holder.execute("BEGIN EXCLUSIVE")  # as a program that holds the database open for writing
    threading.Timer(4, lambda: holder.execute("COMMIT")).start()
    done = sweeplab(*args[:-2], "hydra.sweeper.n_trials=2", *FAST)
    holder.close()
    assert done.returncode == 0, done.stdout
    assert (
        done.stdout.count(f"waiting for {tmp_path}/studies/locked.db: another process holds its write lock; ")
        == 1
    )
    assert "giving up after 60 s" in done.stdout and len(load(tmp_path, "locked").trials) == 2
