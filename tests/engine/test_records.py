"""The study's and trials' records (sweeplab.engine.records): typed views that read what this version
writes, and read a study of an older version (attributes missing) as empty, never as a KeyError."""

import datetime

import optuna
from optuna.trial import TrialState, create_trial

from sweeplab.engine.owner import this_process
from sweeplab.engine.records import (
    HEARTBEAT,
    OUTPUT_DIR,
    OWNER,
    REPLICATES,
    REUSED_FROM,
    SIGNATURE,
    Replicates,
    StudyRecord,
    TrialRecord,
    describe_replicates,
    last_sign,
)
from sweeplab.engine.study import pareto_front, ranked


def test_a_trial_without_sweeplab_attributes_reads_as_empty() -> None:
    record = TrialRecord({})
    assert (record.config, record.metrics, record.replicates, record.setup) == ({}, {}, [], {})
    assert record.output_dir is record.error is record.owner is record.heartbeat is record.resume_dir is None
    assert (record.retries, record.error_line, record.slurm_job) == (0, "", {})


def test_a_trials_records_read_back_typed() -> None:
    owner = this_process()
    record = TrialRecord(
        {
            OUTPUT_DIR: "/o/3",
            OWNER: owner.record(),
            HEARTBEAT: 12,
            "error": "ValueError: x\n  trace",
            "retries": 2,
        }
    )
    assert record.output_dir == "/o/3" and record.heartbeat == 12.0 and record.retries == 2
    assert record.owner == owner and record.error_line == "ValueError: x"


def test_the_replicates_signature_round_trips_and_is_said_one_way() -> None:
    stored = Replicates(3, "trainer.seed", (), "median").to_attr()
    assert stored == {"n": 3, "key": "trainer.seed", "seeds": [], "aggregate": "median"}
    assert Replicates.read(stored) == Replicates(3, "trainer.seed", (), "median")
    assert Replicates.read(None) is None and Replicates.read({}) is None
    assert (
        describe_replicates(Replicates.read(stored))
        == "replicates 3 of trainer.seed (its value + 0..2), aggregate median"
    )
    assert (
        Replicates(2, "trainer.seed", (7, 9)).describe()
        == "replicates 2 of trainer.seed (seeds 7, 9), aggregate mean"
    )
    assert describe_replicates(None) == "one run per trial (replicates 1)"


def test_a_studys_records_read_back_and_an_older_study_reads_as_empty() -> None:
    study = optuna.create_study()
    old = StudyRecord.of(study)
    assert not old.made_by_sweeplab and old.objectives == {} and old.replicates is None
    assert (old.commands, old.slurm_jobs, old.plan_queued, old.sampler_exhausted) == ([], [], None, False)
    signature = {
        "space": {},
        "objectives": {"val_acc": "maximize"},
        REPLICATES: Replicates(2, "trainer.seed").to_attr(),
    }
    study.set_user_attr(SIGNATURE, signature)
    study.set_user_attr("plan_queued", 4)
    record = StudyRecord.of(study)
    assert record.made_by_sweeplab and record.objectives == {"val_acc": "maximize"}
    assert record.replicates == Replicates(2, "trainer.seed") and record.plan_queued == 4


def test_a_trials_last_sign_of_life_is_its_heartbeat_else_its_start() -> None:
    start = datetime.datetime(2026, 1, 1, 12, 0, 0)
    running = create_trial(state=TrialState.RUNNING, user_attrs={HEARTBEAT: 1234.5})
    assert last_sign(running) == 1234.5
    quiet = create_trial(state=TrialState.RUNNING)
    quiet.datetime_start = start
    assert last_sign(quiet) == start.timestamp()


def test_the_best_and_the_front_name_each_run_once_not_a_trial_that_reused_its_twins_result():
    single = optuna.create_study(direction="maximize")
    front = optuna.create_study(directions=["maximize", "minimize"])
    # trial 1 took trial 0's result (the same config drawn again); trial 2 is worse, and its own run
    for value, attrs in [(0.9, {}), (0.9, {REUSED_FROM: 0}), (0.5, {})]:
        single.add_trial(create_trial(value=value, user_attrs=attrs))
        front.add_trial(create_trial(values=[value, 100.0], user_attrs=attrs))
    assert [t.number for t in ranked(single)] == [0, 2]
    assert [t.number for t in pareto_front(front)] == [0] and len(front.best_trials) == 2
