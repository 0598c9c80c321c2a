"""End to end: `sweeplab train -m` runs studies that resume, prune, run in parallel and survive failures."""

import os
import shutil
import signal
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir

from support import FAST, LR, SLOW_TRIALS, load, states, wait_for_rows
from sweeplab.data.formats import write_mnist
from sweeplab.engine.storage import open_storage
from sweeplab.paths import config_dir
from sweeplab.sweeper.space import parse_params, space_signature, split_overrides


def test_tpe_study_records_each_trial_then_finishes_and_extends(tmp_path, sweeplab):
    args = [
        "train",
        "-m",
        LR,
        "model.hidden=choice([32],[64,32])",
        "hydra.sweeper.study_name=tpe",
        "hydra.sweeper.sampler.seed=0",
        *FAST,
    ]
    done = sweeplab(*args, "hydra.sweeper.n_trials=3")
    assert done.returncode == 0, done.stdout
    study = load(tmp_path, "tpe")
    assert states(study) == {"COMPLETE": 3}
    trial = study.trials[0]
    config = trial.user_attrs["config"]
    assert config["trainer"]["max_steps"] == 40 and config["model"]["hidden"] in ([32], [64, 32])
    assert config["optimizer"]["lr"] == trial.params["optimizer.lr"]
    assert Path(trial.user_attrs["output_dir"]) == tmp_path / "outputs" / "sweeps" / "tpe" / "0"
    assert (Path(trial.user_attrs["output_dir"]) / "summary.json").is_file()
    metrics = trial.user_attrs["metrics"]
    device = "cuda" if torch.cuda.is_available() else "cpu"  # trainer.device=auto
    assert metrics["val_acc"] == trial.value and metrics["device"] == device and "test_acc" in metrics
    assert trial.duration is not None and "best: trial" in done.stdout

    again = sweeplab(*args, "hydra.sweeper.n_trials=3")  # finished: nothing to run
    assert (
        again.returncode == 0
        and "this run: 0 trials" in again.stdout
        and len(load(tmp_path, "tpe").trials) == 3
    )

    more = sweeplab(*args, "hydra.sweeper.n_trials=5")  # a larger budget extends the same study
    assert more.returncode == 0 and states(load(tmp_path, "tpe")) == {"COMPLETE": 5}
    sweep = tmp_path / "outputs" / "sweeps" / "tpe"
    assert sorted(p.name for p in sweep.iterdir()) == [*"01234", "optimization_results.yaml"]
    # hydra-optuna-sweeper's record of the best trial, as scripts written for it read it
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    best = load(tmp_path, "tpe").best_trial
    assert results == {"name": "optuna", "best_params": best.params, "best_value": best.value}


def test_grid_of_two_by_two_runs_four_trials_then_stops(tmp_path, sweeplab):
    args = [
        "train",
        "-m",
        "model.activation=choice(relu,tanh)",
        "optimizer.lr=choice(0.001,0.01)",
        "hydra.sweeper.sampler.name=grid",
        "hydra.sweeper.n_trials=10",
        "hydra.sweeper.study_name=grid",
        *FAST,
    ]
    done = sweeplab(*args)
    assert done.returncode == 0, done.stdout
    study = load(tmp_path, "grid")
    assert states(study) == {"COMPLETE": 4}
    combos = {(t.params["model.activation"], t.params["optimizer.lr"]) for t in study.trials}
    assert combos == {(a, lr) for a in ("relu", "tanh") for lr in (0.001, 0.01)}
    again = sweeplab(*args)
    assert "this run: 0 trials" in again.stdout and len(load(tmp_path, "grid").trials) == 4


SWEEP_FILE_AS_CLI = [
    "model.hidden=choice([100],[100,100],[256,128])",
    "model.activation=choice(relu,leaky_relu,elu,tanh)",
    "model.norm=choice(none,batch)",
    "optimizer.lr=tag(log, interval(1e-4, 1e-2))",
]


def test_command_line_space_equals_the_sweep_files():
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["sweep=mnist1d_mlp"], return_hydra_config=True)
    from_file = parse_params(dict(cfg.hydra.sweeper.params), set())
    from_cli = parse_params(split_overrides(SWEEP_FILE_AS_CLI)[0], set())
    assert space_signature(from_file) == space_signature(from_cli)
    assert cfg.hydra.sweeper.study_name == "mnist1d_mlp" and cfg.trainer.max_steps == 1000


def test_sweep_file_study_resumes_from_the_command_line(tmp_path, sweeplab):
    first = sweeplab(
        "train", "sweep=mnist1d_mlp", "hydra.sweeper.n_trials=1", *FAST
    )  # no -m: the file says so
    assert first.returncode == 0, first.stdout
    study = load(tmp_path, "mnist1d_mlp")
    assert study.trials[0].params == {  # the enqueued baseline runs first
        "model.hidden": "[100,100]",
        "model.activation": "relu",
        "model.norm": "none",
        "optimizer.lr": 1e-3,
    }
    second = sweeplab(
        "train",
        "-m",
        *SWEEP_FILE_AS_CLI,
        "hydra.sweeper.study_name=mnist1d_mlp",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.objectives=[val_acc]",
        *FAST,
    )
    assert second.returncode == 0, second.stdout
    assert states(load(tmp_path, "mnist1d_mlp")) == {"COMPLETE": 2}


def test_resuming_with_another_space_is_refused_and_keeps_the_study(tmp_path, sweeplab):
    base = ["train", "-m", LR, "hydra.sweeper.study_name=s", "hydra.sweeper.n_trials=1", *FAST]
    assert sweeplab(*base).returncode == 0
    refused = sweeplab(*base, "model.activation=choice(relu,elu)")
    assert refused.returncode != 0
    assert (
        "study 's' in sqlite:///" in refused.stdout
        and "has another space: model.activation is new (choice of relu, elu)" in refused.stdout
        and "hydra.sweeper.study_name=NEW_NAME" in refused.stdout
    )
    other = sweeplab(
        *base, "hydra.sweeper.objectives=[final_val_loss]", "hydra.sweeper.directions=[minimize]"
    )
    assert "has another objectives" in other.stdout
    assert states(load(tmp_path, "s")) == {"COMPLETE": 1}


@pytest.mark.slow  # the default suite stays under 6 minutes; CI runs it with -m slow
def test_hyperband_prunes_the_bad_region_in_worker_processes(tmp_path, sweeplab):
    done = sweeplab(
        "train",
        "-m",
        "optimizer=sgd",
        "optimizer.lr=choice(1e-5,0.05)",
        "hydra.sweeper.study_name=hb",
        "hydra.sweeper.sampler.name=random",
        "hydra.sweeper.sampler.seed=0",
        "hydra.sweeper.n_trials=14",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.reuse_results=false",  # two values drawn 14 times: each trial trains, to be pruned
        "+hydra.sweeper.pruner={name: hyperband, min_resource: 20, max_resource: 300}",
        "trainer.max_steps=300",
        "trainer.eval_every=20",
    )
    assert done.returncode == 0, done.stdout
    study = load(tmp_path, "hb")
    pruned = study.get_trials(states=(optuna.trial.TrialState.PRUNED,))
    assert len(pruned) >= 1 and states(study)["COMPLETE"] + len(pruned) == 14
    assert "Traceback" not in done.stdout and "Exception ignored" not in done.stdout
    assert all(t.params["optimizer.lr"] == 1e-5 for t in pruned)  # only the region that does not learn
    for t in pruned:  # stopped early, with the history up to there
        assert t.user_attrs["metrics"]["steps"] < 300 and t.intermediate_values
        rows = (Path(t.user_attrs["output_dir"]) / "history.csv").read_text().splitlines()
        assert len(rows) - 1 == len(t.intermediate_values)


def test_two_workers_run_trials_at_the_same_time(tmp_path, sweeplab):
    done = sweeplab(
        "train",
        "-m",
        LR,
        "hydra.sweeper.study_name=par",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=2",
        "trainer.max_steps=400",
        "trainer.eval_every=100",
        process=True,  # what its processes leave at exit is the point
    )
    assert done.returncode == 0, done.stdout
    # every process closed its connections, so SQLite folded its log into the file: the .db file alone,
    # copied as a user would copy a study, holds every trial (its -wal once held the last ones only)
    assert not (tmp_path / "studies" / "par.db-wal").exists()
    alone = tmp_path / "copy" / "par.db"
    alone.parent.mkdir()
    shutil.copyfile(tmp_path / "studies" / "par.db", alone)
    copied = optuna.load_study(study_name="par", storage=f"sqlite:///{alone}")
    assert states(copied) == {"COMPLETE": 4}
    trials = load(tmp_path, "par").trials
    overlapping = [
        (a.number, b.number)
        for a in trials
        for b in trials
        if a.number < b.number
        and a.datetime_start < b.datetime_complete
        and b.datetime_start < a.datetime_complete
    ]
    assert overlapping and states(load(tmp_path, "par")) == {"COMPLETE": 4}
    # the workers end quietly: no traceback of a signal during their shutdown, no leaked semaphore
    assert "Traceback" not in done.stdout and "Exception ignored" not in done.stdout
    assert "leaked" not in done.stdout


def test_failing_and_diverging_trials_fail_and_the_study_goes_on(tmp_path, sweeplab):
    grid = [
        "train",
        "-m",
        "optimizer=sgd",
        "trainer.batch_size=choice(32,100000)",  # too large for the data: fails once the data are loaded
        "optimizer.lr=choice(0.01,1e6)",
        "hydra.sweeper.sampler.name=grid",
        "hydra.sweeper.n_trials=4",
        *FAST,
    ]
    done = sweeplab(*grid, "hydra.sweeper.study_name=f")
    assert done.returncode == 1  # 2 of 4 failed: above the default max_failure_rate of 20%
    assert "stopped: 2 of 4 trials failed this run" in done.stdout
    assert "the most common error (2 trials): ConfigError: trainer.batch_size: is 100000" in done.stdout
    study = load(tmp_path, "f")
    # a diverged run stopped early, like a pruned one: it counts toward n_trials, not as a failure
    assert states(study) == {"COMPLETE": 1, "FAIL": 2, "PRUNED": 1}
    errors = Counter(t.user_attrs["error"].split(":")[0] for t in study.trials if "error" in t.user_attrs)
    assert errors == {"ConfigError": 2, "diverged": 1}
    tolerant = sweeplab(*grid, "hydra.sweeper.study_name=f2", "hydra.sweeper.max_failure_rate=0.8")
    assert tolerant.returncode == 0, tolerant.stdout


def test_conditional_parameters_are_sampled_only_where_the_config_has_them(tmp_path, sweeplab):
    done = sweeplab(
        "train",
        "-m",
        "optimizer=choice(sgd,adam)",
        "optimizer.momentum=interval(0.5,0.99)",
        "hydra.sweeper.study_name=cond",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.sampler.seed=1",
        *FAST,
    )
    assert done.returncode == 0, done.stdout
    trials = load(tmp_path, "cond").trials
    assert {t.state.name for t in trials} == {"COMPLETE"}
    for t in trials:
        assert ("optimizer.momentum" in t.params) == (t.params["optimizer"] == "sgd")
        assert t.user_attrs["config"]["optimizer"]["name"] == t.params["optimizer"]
    assert {t.params["optimizer"] for t in trials} == {"sgd", "adam"}


@pytest.mark.parametrize(
    "searched",
    [[LR], pytest.param([], marks=pytest.mark.slow, id="nothing searched: one configuration 4 times")],
)
def test_killed_sweep_reruns_at_once_to_exactly_n_trials_resuming_the_killed_trial(
    tmp_path, sweeplab, searched
):
    args = ["train", "-m", *searched, "hydra.sweeper.study_name=k", "hydra.sweeper.n_trials=4", *SLOW_TRIALS]
    args.append("trainer.checkpoint_every=0")  # a checkpoint at each evaluation, to resume from after -9
    args.append("hydra.sweeper.reuse_results=false")  # one configuration 4 times: each trial trains
    first = sweeplab(*args, background=True, new_group=True)
    second = tmp_path / "outputs" / "sweeps" / "k" / "1" / "history.csv"
    wait_for_rows(second, 3)  # kill it while its second trial trains, past its second evaluation
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert states(load(tmp_path, "k")) == {"COMPLETE": 1, "RUNNING": 1}

    rerun = sweeplab(*args)  # at once, with the default settings
    assert rerun.returncode == 0, rerun.stdout
    study = load(tmp_path, "k")
    assert states(study) == {"COMPLETE": 4, "FAIL": 1}
    killed = next(t for t in study.trials if t.state.name == "FAIL")
    assert "is gone" in killed.user_attrs["error"]
    retry = next(t for t in study.trials if t.user_attrs.get("retry_of") == killed.number)
    assert retry.state.name == "COMPLETE" and retry.params == killed.params
    assert retry.user_attrs["output_dir"] == killed.user_attrs["output_dir"]  # carried on in its folder
    assert "resuming from step" in rerun.stdout and "resuming from step 0" not in rerun.stdout
    numbers = [t.number for t in study.trials]
    assert len(set(numbers)) == len(numbers) == 5
    folders = [t.user_attrs["output_dir"] for t in study.trials if t.state.name == "COMPLETE"]
    assert len(set(folders)) == 4


@pytest.mark.slow  # the default suite stays under 6 minutes; CI runs it with -m slow
def test_two_commands_on_one_storage_stop_together_at_n_trials(tmp_path, sweeplab):
    args = [
        "train",
        "-m",
        LR,
        "hydra.sweeper.study_name=shared",
        "hydra.sweeper.n_trials=6",
        "trainer.max_steps=200",
        "trainer.eval_every=50",
        "trainer.num_threads=1",  # two commands on one 2-core machine: one thread each, no oversubscription
    ]
    assert sweeplab(*args, "hydra.sweeper.n_trials=1").returncode == 0  # create the study first
    workers = [sweeplab(*args, background=True) for _ in range(2)]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n\n".join(outputs)  # whole, to see why
    assert states(load(tmp_path, "shared")) == {"COMPLETE": 6}  # claims are exclusive: no surplus trial
    ran = [
        int(next(line for line in out.splitlines() if "this run:" in line).split("this run: ")[1].split()[0])
        for out in outputs
    ]
    assert all(n >= 1 for n in ran) and sum(ran) == 5  # both took part


def test_every_sampler_and_pruner_builds():
    from sweeplab.engine.study import PRUNERS, SAMPLERS, build_from

    for name in SAMPLERS:
        context = {"search_space": {"x": [1, 2]}} if name == "grid" else {}
        assert isinstance(
            build_from(SAMPLERS, {"name": name, "seed": 0}, "s", **context), optuna.samplers.BaseSampler
        )
    for name in PRUNERS:
        assert isinstance(build_from(PRUNERS, {"name": name}, "p"), optuna.pruners.BasePruner)


def test_unknown_sampler_option_is_named():
    from sweeplab.config import ConfigError
    from sweeplab.engine.study import SAMPLERS, build_from

    with pytest.raises(
        ConfigError, match=r"hydra\.sweeper\.sampler\.n_startup: unknown option; .*n_startup_trials"
    ):
        build_from(SAMPLERS, {"name": "tpe", "n_startup": 3}, "hydra.sweeper.sampler")


@pytest.mark.parametrize(
    ("registry", "node", "message"),
    [
        (
            "SAMPLERS",
            {"name": "tpe", "n_startup_trials": "ten"},
            r"sampler\.n_startup_trials: expected an integer",
        ),
        (
            "SAMPLERS",
            {"name": "random", "seed": 1.5},
            r"sampler\.seed: expected an integer or null, got 1\.5",
        ),
        (
            "SAMPLERS",
            {"name": "optuna.samplers.TPESampler", "n_startup": 3},
            r"sampler\.n_startup: unknown option",
        ),
        (
            "SAMPLERS",
            {"name": "optuna.pruners.MedianPruner"},
            r"sampler\._target_: .* is not a sampler class",
        ),
        (
            "PRUNERS",
            {"name": "median", "n_warmup_steps": [1]},
            r"pruner\.n_warmup_steps: expected an integer",
        ),
        ("PRUNERS", {"name": "percentile", "percentile": "high"}, r"pruner\.percentile: expected a number"),
        ("PRUNERS", {"name": "percentile", "percentile": 150.0}, r"pruner: percentile: .*between 0 and 100"),
    ],
)
def test_sampler_and_pruner_options_are_checked_like_any_config(registry, node, message):
    """Through the registry, against the Optuna class's own signature: one line naming the field."""
    from sweeplab.config import ConfigError
    from sweeplab.engine import study

    field = "hydra.sweeper." + registry.lower()[:-1]
    with pytest.raises(ConfigError, match=message):
        study.build_from(getattr(study, registry), node, field)


POSTGRES = os.environ.get("SWEEPLAB_TEST_POSTGRES")  # a database URL; .ci/run starts a server for it


@pytest.mark.parametrize(
    "backend",
    [
        "sqlite",
        "journal",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(
                not POSTGRES, reason="set SWEEPLAB_TEST_POSTGRES to a PostgreSQL database URL"
            ),
        ),
    ],
)
def test_storage_contract_resume_and_budget(tmp_path, sweeplab, backend):
    url = {"sqlite": f"sqlite:///{tmp_path}/b.db", "journal": f"journal://{tmp_path}/b.log"}.get(
        backend, POSTGRES
    )
    name = f"b_{tmp_path.name}_{time.time_ns()}"  # a server outlives the test: a new study each run
    args = ["train", "-m", LR, f"hydra.sweeper.study_name={name}", f"hydra.sweeper.storage={url}", *FAST]
    assert sweeplab(*args, "hydra.sweeper.n_trials=2").returncode == 0
    again = sweeplab(*args, "hydra.sweeper.n_trials=2")
    assert again.returncode == 0 and "this run: 0 trials" in again.stdout
    assert sweeplab(*args, "hydra.sweeper.n_trials=3").returncode == 0
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    assert states(study) == {"COMPLETE": 3} and [t.number for t in study.trials] == [0, 1, 2]


def test_two_objectives_give_a_pareto_front(tmp_path, sweeplab):
    done = sweeplab(
        "train",
        "-m",
        "model.hidden=choice([16],[64,64])",
        LR,
        "hydra.sweeper.study_name=mo",
        "hydra.sweeper.objectives=[val_acc,params]",
        "hydra.sweeper.directions=[maximize,minimize]",
        "hydra.sweeper.sampler.name=nsgaii",
        "hydra.sweeper.n_trials=4",
        *FAST,
    )
    assert done.returncode == 0, done.stdout
    study = load(tmp_path, "mo")
    assert states(study) == {"COMPLETE": 4} and len(study.directions) == 2
    assert all(t.values[1] == t.user_attrs["metrics"]["params"] for t in study.trials)
    assert study.best_trials and "best: trial" in done.stdout


def test_setups_run_in_order_resume_and_refuse_a_changed_setup_or_an_unknown_key(tmp_path, sweeplab):
    (tmp_path / "mine" / "sweep").mkdir(parents=True)
    sweep_file = tmp_path / "mine" / "sweep" / "steps.yaml"
    text = """# @package _global_
hydra:
  mode: MULTIRUN
  sweeper:
    study_name: steps
    ablation: true
    params:
      trainer.seed: choice(0,1)
    setups:
      - {model.hidden: [16], model.activation: relu}
      - {model.activation: elu}
      - {model.hidden: [16, 16], keep: false}
"""
    sweep_file.write_text(text)
    args = ["train", f"--config-dir={tmp_path / 'mine'}", "sweep=steps", *FAST]
    run = sweeplab(*args)
    assert run.returncode == 0, run.stdout
    study = load(tmp_path, "steps")
    trials = sorted(study.trials, key=lambda t: t.number)
    # setup by setup, each over both seeds
    assert [(t.params["setup"], t.params["trainer.seed"]) for t in trials] == [
        ("1", 0),
        ("1", 1),
        ("2", 0),
        ("2", 1),
        ("3", 0),
        ("3", 1),
    ]
    model = trials[4].user_attrs["config"]["model"]
    assert (model["hidden"], model["activation"]) == ([16, 16], "elu")  # row 3 builds on the kept row 2
    assert trials[4].user_attrs["setup"] == {
        "name": "3",
        "position": 3,
        "changed": ["model.hidden"],
        "keep": False,
    }
    assert "this run: 0 trials" in sweeplab(*args).stdout  # finished: a rerun runs nothing

    sweep_file.write_text(text.replace("model.activation: elu", "model.activation: tanh"))
    changed = sweeplab(*args)
    assert changed.returncode == 2 and "has another space: setup is" in changed.stdout
    assert len(load(tmp_path, "steps").trials) == 6  # nothing stored changed

    sweep_file.write_text(
        text.replace("study_name: steps", "study_name: typo").replace(
            "model.activation: elu", "model.activaton: elu"
        )
    )
    typo = sweeplab(*args)
    assert typo.returncode == 2
    assert (
        "sweep refused (nothing was run or stored): setup '2': sets model.activaton, which its config lacks "
        "(did you mean model.activation?)" in typo.stdout
    )
    assert not (tmp_path / "studies" / "typo.db").exists()  # refused before any storage was touched


@pytest.mark.slow
def test_a_rerun_tries_again_the_setups_whose_trials_failed(tmp_path, sweeplab):
    (tmp_path / "mine" / "sweep").mkdir(parents=True)
    (tmp_path / "mine" / "sweep" / "two.yaml").write_text(
        """# @package _global_
hydra:
  mode: MULTIRUN
  sweeper:
    study_name: two
    max_failure_rate: 1.0
    setups:
      - {name: signals, model: mlp}
      - {name: digits, dataset: mnist, dataset.download: false, model: linear}
"""
    )
    digits = tmp_path / "digits"
    args = ["train", f"--config-dir={tmp_path / 'mine'}", "sweep=two", f"data_dir={digits}", *FAST]
    first = sweeplab(*args)  # no MNIST files yet: the digits setup fails, naming them, without a traceback
    assert "trial 1 FAIL SweeplabError: MNIST data not found" in first.stdout
    assert "Traceback" not in first.stdout
    assert states(load(tmp_path, "two")) == {"COMPLETE": 1, "FAIL": 1}
    write_mnist(digits, n_train=200, n_test=50)
    again = sweeplab(*args)
    assert "this run: 1 trials (1 COMPLETE)" in again.stdout, again.stdout
    study = load(tmp_path, "two")
    assert states(study) == {"COMPLETE": 2, "FAIL": 1}  # the failure stays on record
    assert "this run: 0 trials" in sweeplab(*args).stdout


def test_tpe_fills_packs_with_the_structure_of_their_first_trial(tmp_path, sweeplab):
    """A space that mixes a structural key (norm) and packable ones (lr, seed): the first trial of a pack
    is sampled freely, the others with its norm fixed; two workers run two packs at a time, and each
    member is a trial of its own, with `packed_with` naming the others."""
    args = [LR, "model.norm=choice(none,batch)", "trainer.seed=choice(0,1,2)", *FAST]
    done = sweeplab(
        "train",
        "-m",
        *args,
        "hydra.sweeper.study_name=packs",
        "hydra.sweeper.n_trials=12",
        "hydra.sweeper.pack=3",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.sampler.seed=0",
    )
    assert done.returncode == 0, done.stdout[-3000:]
    trials = load(tmp_path, "packs").trials
    assert states(load(tmp_path, "packs")) == {"COMPLETE": 12}
    by_number = {t.number: t for t in trials}
    packed = [t for t in trials if t.user_attrs.get("packed_with")]
    assert len(packed) >= 9, [t.user_attrs.get("packed_with") for t in trials]
    for t in packed:
        for other in t.user_attrs["packed_with"]:
            assert by_number[other].params["model.norm"] == t.params["model.norm"]
            assert t.number in by_number[other].user_attrs["packed_with"]
        assert (Path(t.user_attrs["output_dir"]) / "history.csv").is_file()
    assert len({t.params["optimizer.lr"] for t in trials}) == 12  # the sampler still searched the rates
    # trials that end together (a pack) get one progress line, after the last of them: no estimate from
    # a pack counted as its first trial alone, no time left once all are done
    progress = [line for line in done.stdout.splitlines() if "progress: " in line]
    assert len(progress) < 12 and progress[-1].endswith(
        "12/12 trials (100%), " + progress[-1].split(", ")[1] + ", done"
    )


def test_a_configuration_drawn_again_takes_its_twins_result_instead_of_training(tmp_path, sweeplab):
    args = ["train", "-m", "model.hidden=choice([16],[32])", "hydra.sweeper.sampler.seed=0", *FAST]
    done = sweeplab(*args, "hydra.sweeper.study_name=again", "hydra.sweeper.n_trials=6")
    assert done.returncode == 0, done.stdout
    study = load(tmp_path, "again")
    assert states(study) == {"COMPLETE": 6}
    first: dict[str, optuna.trial.FrozenTrial] = {}
    for trial in study.trials:  # the first of each config trained; the others took its result
        twin = first.setdefault(trial.params["model.hidden"], trial)
        reused = trial.user_attrs.get("reused_from")
        assert reused == (None if twin is trial else twin.number)
        assert trial.values == twin.values and trial.user_attrs["metrics"] == twin.user_attrs["metrics"]
        assert trial.user_attrs["output_dir"] == twin.user_attrs["output_dir"]
    trained = sorted(p.name for p in (tmp_path / "outputs" / "sweeps" / "again").iterdir() if p.is_dir())
    assert len(first) == 2 and trained == sorted(str(t.number) for t in first.values())
    assert "4 of them took a completed twin's result" in done.stdout

    every = sweeplab(
        *args,
        "hydra.sweeper.study_name=every",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.reuse_results=false",
    )
    assert every.returncode == 0, every.stdout
    study = load(tmp_path, "every")
    assert not any("reused_from" in t.user_attrs for t in study.trials)
    assert len({t.user_attrs["output_dir"] for t in study.trials}) == 4
