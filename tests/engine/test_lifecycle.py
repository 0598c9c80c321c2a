"""The trial lifecycle's contract, run against every storage backend (SQLite, the journal file and a
PostgreSQL server when SWEEPLAB_TEST_POSTGRES names one): create, queue, claim, heartbeat, reclaim,
finish, retry, under many processes, with the default settings."""

import dataclasses
import multiprocessing as mp
import os
import time
import uuid
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState

from sweeplab.config import SweeplabError
from sweeplab.engine.attrs import set_user_attrs
from sweeplab.engine.lifecycle import SharedStudy, StudySpec
from sweeplab.engine.owner import this_process
from sweeplab.engine.plan_queue import QUEUE_AHEAD
from sweeplab.engine.records import HEARTBEAT, OWNER
from sweeplab.engine.storage import (
    StudyLockBusy,
    masked,
    open_storage,
    open_storage_readonly,
    study_in_use,
)
from sweeplab.sweeper.grid import GridPlan

POSTGRES = os.environ.get("SWEEPLAB_TEST_POSTGRES")
BACKENDS = [
    "sqlite",
    "journal",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(not POSTGRES, reason="set SWEEPLAB_TEST_POSTGRES to a PostgreSQL URL"),
    ),
]
SPACE = {"space": {"x": "choice of 0, 1, 2, 3, 4, 5, 6, 7"}, "objectives": {"val_acc": "maximize"}}


@pytest.fixture(params=BACKENDS)
def url(request, tmp_path) -> str:
    return {
        "sqlite": f"sqlite:///{tmp_path}/s.db",
        "journal": f"journal://{tmp_path}/s.log",
        "postgresql": POSTGRES,
    }[request.param]


def spec(url: str, name: str, **changes) -> StudySpec:
    base = StudySpec(
        name=name,
        storage_url=url,
        directions=["maximize"],
        signature={**SPACE, "fixed": {"trainer.max_steps": 1000}},
        n_trials=8,
        plan=[{"x": i} for i in range(8)],
    )
    return dataclasses.replace(base, **changes)


def fresh_name() -> str:
    return f"s_{uuid.uuid4().hex[:10]}"  # a server outlives the test: a new study each time


def work(args: tuple) -> list[int]:
    """One process: open the study, then claim and complete trials until none is left."""
    url, name, seeded = args
    extra = {"plan": [], "sampler": {"name": "random", "seed": 0}} if seeded else {}
    shared = SharedStudy(spec(url, name, **extra))
    taken = []
    while (trial := shared.claim()) is not None:
        x = trial.suggest_categorical("x", list(range(8))) if not seeded else trial.suggest_float("x", 0, 1)
        taken.append(x)
        shared.complete(trial, [float(x)])
    shared.close()
    return taken


def test_eight_processes_create_one_study_queue_its_plan_once_and_run_each_trial_once(url):
    name = fresh_name()
    with mp.get_context("spawn").Pool(8) as pool:
        taken = pool.map(work, [(url, name, False)] * 8)
    assert sorted(x for xs in taken for x in xs) == list(range(8))  # each planned trial exactly once
    study = SharedStudy(spec(url, name)).study
    assert Counter(t.state for t in study.trials) == {TrialState.COMPLETE: 8}  # nothing queued twice


def test_a_seeded_sampler_repeats_no_draw_across_processes_or_resumes(url):
    name = fresh_name()
    with mp.get_context("spawn").Pool(2) as pool:
        taken = pool.map(work, [(url, name, True)] * 2)
    draws = [x for xs in taken for x in xs]
    assert len(draws) == 8 and len(set(draws)) == 8
    again = work((url, fresh_name(), True))  # the same seed in a new study: the same draws, in order
    assert sorted(again) == sorted(draws)


def test_a_trial_of_a_dead_process_on_this_host_is_reclaimed_at_once_and_queued_to_resume(url):
    name = fresh_name()
    shared = SharedStudy(spec(url, name))
    trial = shared.claim()
    trial.set_user_attr("output_dir", "/somewhere/0")
    dead = dataclasses.replace(this_process(), pid=2**22 + 17)  # no such process
    trial.set_user_attr(OWNER, dead.record())
    shared.mine.clear()  # as if another process had claimed it
    other = SharedStudy(spec(url, name))  # a rerun, at once: no waiting for a stale heartbeat
    trials = other.study.trials
    assert trials[0].state == TrialState.FAIL and "is gone" in trials[0].user_attrs["error"]
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == 0)
    assert retry.state == TrialState.WAITING and retry.user_attrs["resume_dir"] == "/somewhere/0"
    assert retry.system_attrs["fixed_params"] == {"x": 0}


def test_a_killed_trial_of_a_study_that_searches_nothing_is_queued_to_resume_within_the_budget(url):
    # e.g. one configuration run n_trials times, or replicated: its trials have no values at all
    name = fresh_name()
    nothing = {"space": {}, "objectives": SPACE["objectives"], "fixed": {"trainer.max_steps": 1000}}
    unsearched = {"signature": nothing, "plan": [], "n_trials": 3}
    shared = SharedStudy(spec(url, name, **unsearched))
    trial = shared.claim()
    trial.set_user_attr("output_dir", "/somewhere/0")
    trial.set_user_attr(OWNER, dataclasses.replace(this_process(), pid=2**22 + 17).record())
    shared.mine.clear()
    other = SharedStudy(spec(url, name, **unsearched))
    retry = next(t for t in other.study.trials if t.user_attrs.get("retry_of") == 0)
    assert retry.state == TrialState.WAITING and retry.user_attrs["resume_dir"] == "/somewhere/0"
    first = other.claim()
    assert first.number == retry.number  # the retry before any new trial
    other.complete(first, [1.0])
    while (trial := other.claim()) is not None:
        other.complete(trial, [1.0])
    assert Counter(t.state for t in other.study.trials) == {TrialState.COMPLETE: 3, TrialState.FAIL: 1}


def test_a_trial_killed_before_it_had_its_values_is_not_queued_with_none(url):
    # it was drawn by the sampler, not queued: a retry without values would resume another configuration
    name = fresh_name()
    shared = SharedStudy(spec(url, name, plan=[], sampler={"name": "random", "seed": 0}))
    trial = shared.claim()
    shared.fail(trial, "its worker process was killed by SIGKILL", requeue=True, counts_as_retry=True)
    assert not any("retry_of" in t.user_attrs for t in shared.study.trials)


def test_a_trial_of_another_host_is_waited_for_until_its_heartbeat_is_older_than_stale_after(url):
    name = fresh_name()
    shared = SharedStudy(spec(url, name))
    assert shared.spec.stale_after == 60  # the default: what users get
    trial = shared.claim()
    elsewhere = dataclasses.replace(this_process(), host="node-17")
    trial.set_user_attr(OWNER, elsewhere.record())
    shared.mine.clear()
    rerun = SharedStudy(spec(url, name))
    assert rerun.study.trials[0].state == TrialState.RUNNING  # alive as far as anyone can tell
    [waiting] = rerun.elsewhere()
    assert waiting.number == 0 and waiting.owner.endswith("on node-17") and waiting.silent_for < 60
    trial.set_user_attr(HEARTBEAT, time.time() - 61)  # its host went silent a minute ago
    assert rerun.reclaim() == [0]
    assert "no heartbeat from pid" in rerun.study.trials[0].user_attrs["error"]


def test_the_heartbeat_stamps_running_trials(url):
    shared = SharedStudy(spec(url, fresh_name(), heartbeat_interval=0.2))
    trial = shared.claim()
    first = shared.study._storage.get_trial(trial._trial_id).user_attrs[HEARTBEAT]
    time.sleep(1.0)
    assert shared.study._storage.get_trial(trial._trial_id).user_attrs[HEARTBEAT] > first
    shared.close()


def test_a_trials_attributes_are_written_together_and_never_onto_a_finished_trial(url):
    shared = SharedStudy(spec(url, fresh_name()))
    trial = shared.claim()  # its owner and first heartbeat, written together
    records = {"metrics": {"val_acc": 0.5, "steps": None}, "output_dir": "/x/0", "overrides": ["a=1"]}
    set_user_attrs(trial, records)
    stored = open_storage(url).get_trial(trial._trial_id).user_attrs  # as another process reads it
    assert {k: stored[k] for k in records} == records and {OWNER, HEARTBEAT} <= set(stored)
    assert trial.user_attrs == stored  # the trial's own copy agrees
    shared.complete(trial, [0.5])
    with pytest.raises((optuna.exceptions.UpdateFinishedTrialError, RuntimeError)):
        set_user_attrs(trial, {"late": 1, "metrics": {}})
    after = open_storage(url).get_trial(trial._trial_id).user_attrs
    assert "late" not in after and after["metrics"] == records["metrics"]
    shared.close()


def test_an_interrupted_trial_is_queued_again_without_using_a_retry(url):
    shared = SharedStudy(spec(url, fresh_name(), max_retries=0))
    trial = shared.claim()
    shared.fail(trial, "interrupted (SIGTERM)", requeue=True)
    assert [t.state for t in shared.study.trials][:2] == [TrialState.FAIL, TrialState.WAITING]
    again = shared.claim()
    shared.fail(again, "its worker process was killed by SIGKILL", requeue=True, counts_as_retry=True)
    assert shared.count(TrialState.WAITING) == 7  # the plan's others: max_retries=0 queues no retry


def test_a_changed_fixed_value_is_refused_unless_accepted_and_nothing_changes(url):
    name = fresh_name()
    SharedStudy(spec(url, name))
    changed = spec(url, name, signature={**SPACE, "fixed": {"trainer.max_steps": 300}})
    with pytest.raises(SweeplabError, match=r"other fixed values: trainer.max_steps is 300, stored: 1000"):
        SharedStudy(changed)
    assert len(SharedStudy(spec(url, name)).study.trials) == 8  # the plan, untouched
    accepted = SharedStudy(dataclasses.replace(changed, accept_changes=True))
    assert accepted.study.user_attrs["sweeplab"]["fixed"] == {"trainer.max_steps": 300}


def test_the_budget_counts_every_process_and_a_finished_study_claims_nothing(url):
    shared = SharedStudy(spec(url, fresh_name(), n_trials=2))
    a, b = shared.claim(), shared.claim()
    assert shared.claim() is None  # two running: the budget is taken
    shared.complete(a, [1.0])
    shared.prune(b)
    assert shared.claim() is None and shared.count(TrialState.COMPLETE, TrialState.PRUNED) == 2


def test_reading_a_storage_never_writes_to_it(tmp_path):
    for url in (f"sqlite:///{tmp_path}/none.db", f"journal://{tmp_path}/none.log"):
        with pytest.raises(SweeplabError, match="does not exist"):
            open_storage_readonly(url)
    assert not list(tmp_path.iterdir())
    (tmp_path / "empty.db").touch()
    with pytest.raises(SweeplabError, match="holds no Optuna studies"):
        open_storage_readonly(f"sqlite:///{tmp_path}/empty.db")
    assert (tmp_path / "empty.db").stat().st_size == 0 and len(list(tmp_path.iterdir())) == 1


def test_a_password_is_never_shown():
    assert masked("postgresql://me:s3cret@db.example/x") == "postgresql://me:***@db.example/x"


def test_a_plan_of_any_size_is_queued_as_trials_start_and_a_rerun_carries_on_in_order(url):
    name = fresh_name()
    grid = GridPlan({"x": list(range(100_000))})
    shared = SharedStudy(spec(url, name, plan=grid, n_trials=3))
    assert shared.count(TrialState.WAITING) == 3  # the budget's worth, not 100,000
    taken = []
    while (trial := shared.claim()) is not None:
        taken.append(trial.suggest_int("x", 0, 99_999))
        shared.complete(trial, [0.0])
    more = SharedStudy(spec(url, name, plan=grid, n_trials=3 + QUEUE_AHEAD + 10))
    assert more.count(TrialState.WAITING) == QUEUE_AHEAD  # never more than this ahead
    while (trial := more.claim()) is not None:
        taken.append(trial.suggest_int("x", 0, 99_999))
        more.complete(trial, [0.0])
    assert taken == list(range(3 + QUEUE_AHEAD + 10))  # the plan in order, each point once
    assert not more.count(TrialState.WAITING)


def test_a_failed_planned_trial_is_queued_again_by_a_rerun_not_by_the_same_run(url):
    name = fresh_name()
    shared = SharedStudy(spec(url, name, n_trials=8))
    first = shared.claim()  # the plan's first, x 0
    shared.fail(first, "a bad value")  # not queued again: a config error would fail again at once
    for _ in range(7):
        trial = shared.claim()
        shared.complete(trial, [0.0])
    assert shared.claim() is None and shared.count(TrialState.WAITING) == 0
    rerun = SharedStudy(spec(url, name, n_trials=8))
    waiting = [t for t in rerun.study.trials if t.state == TrialState.WAITING]
    assert [t.system_attrs["fixed_params"] for t in waiting] == [{"x": 0}]


def run_seeded(url: str, name: str, interrupt_at: int | None) -> list[dict]:
    """Five trials of a seeded random sampler; trial `interrupt_at` is killed once and retried."""
    shared = SharedStudy(spec(url, name, plan=[], n_trials=5, sampler={"name": "random", "seed": 3}))
    while (trial := shared.claim()) is not None:
        x = trial.suggest_float("x", 0, 1)
        if trial.number == interrupt_at:
            shared.fail(trial, "killed", requeue=True, counts_as_retry=True)
            continue
        shared.complete(trial, [x])
    shared.close()
    return [t.params for t in shared.study.trials if t.state == TrialState.COMPLETE]


def test_an_interrupted_seeded_study_ends_with_the_same_configurations(url):
    calm = run_seeded(url, fresh_name(), interrupt_at=None)
    interrupted = run_seeded(url, fresh_name(), interrupt_at=2)
    assert len(calm) == 5 and interrupted == calm


def test_a_refused_sweep_leaves_no_new_study_behind_and_an_old_one_as_it_was(url):
    def refuse(study_id, trials):
        raise SweeplabError("a folder of another study is in the way")

    name = fresh_name()
    with pytest.raises(SweeplabError, match="in the way"):
        SharedStudy(spec(url, name), check=refuse)
    assert name not in optuna.get_all_study_names(open_storage(url))
    SharedStudy(spec(url, name))
    with pytest.raises(SweeplabError, match="in the way"):
        SharedStudy(spec(url, name), check=refuse)
    assert len(optuna.load_study(study_name=name, storage=open_storage(url)).trials) == 8


def test_a_study_in_use_cannot_be_taken_exclusively(url):
    name = fresh_name()
    open_storage(url)
    with (
        study_in_use(url, name),
        study_in_use(url, name),  # many commands may run one study at once
        pytest.raises(StudyLockBusy),
        study_in_use(url, name, exclusive=True),
    ):
        pass
    with study_in_use(url, name, exclusive=True):  # free again once they end
        pass


def test_a_planned_trial_whose_retries_a_dead_process_used_up_is_queued_again_by_the_rerun(url):
    name = fresh_name()
    shared = SharedStudy(spec(url, name, max_retries=0))
    trial = shared.claim()  # the plan's first, x 0
    trial.set_user_attr(OWNER, dataclasses.replace(this_process(), pid=2**22 + 17).record())
    shared.mine.clear()  # its process died: no retry is left for it (max_retries 0)
    rerun = SharedStudy(spec(url, name, max_retries=0))
    assert rerun.study.trials[0].state == TrialState.FAIL
    waiting = [t.system_attrs["fixed_params"] for t in rerun.study.trials if t.state == TrialState.WAITING]
    assert sorted(w["x"] for w in waiting) == list(range(8))  # x 0 again, the others once
