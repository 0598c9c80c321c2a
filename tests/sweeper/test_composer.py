"""The trial composer (sweeplab.sweeper.composer) and the pack matcher (sweeplab.sweeper.packs) on the
real config, without a sweep: what a trial's values become, where its folder is, which trials pack."""

from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.callbacks import Callbacks
from hydra.core.global_hydra import GlobalHydra
from hydra.types import HydraContext
from optuna.trial import FixedTrial

from sweeplab.config import SweeplabError
from sweeplab.paths import config_dir, register_resolvers
from sweeplab.sweeper.composer import TrialComposer
from sweeplab.sweeper.packs import PackMatcher
from sweeplab.sweeper.space import parse_params
from sweeplab.sweeper.task import Packing

SPACE = {
    "optimizer": "choice(sgd, adam)",
    "optimizer.lr": "tag(log, interval(1e-4, 1e-1))",
    "optimizer.momentum": "interval(0.5, 0.99)",  # only SGD has it
    "model.hidden": "choice([10],[20])",
}


def make_composer(folder: Path, *fixed: str, space: dict[str, str] = SPACE) -> TrialComposer:
    register_resolvers()
    overrides = [f"hydra.sweep.dir={folder}", "trainer.max_steps=5", *fixed]
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        config = compose("config", overrides=overrides, return_hydra_config=True)
        loader = GlobalHydra.instance().config_loader()
    context = HydraContext(config_loader=loader, callbacks=Callbacks(config))
    groups = {"optimizer"} & set(space)
    return TrialComposer(context, config, list(fixed), groups, parse_params(space, groups), {})


def test_a_trials_values_are_set_and_a_key_its_group_lacks_is_not_asked_for(tmp_path: Path) -> None:
    composer = make_composer(tmp_path)
    # a FixedTrial raises for a value it was not given: Adam's trial must never ask for a momentum
    adam = FixedTrial({"optimizer": "adam", "optimizer.lr": 0.003, "model.hidden": "[20]"}, number=4)
    config, folder, shown = composer.compose(adam, "study")
    assert config.optimizer.name == "adam" and config.optimizer.lr == 0.003
    assert "momentum" not in config.optimizer and list(config.model.hidden) == [20]
    assert folder == tmp_path / "4" and config.hydra.job.num == 4 and config.hydra.job.id == "study_4"
    assert shown == "optimizer=adam optimizer.lr=0.003 model.hidden=[20]"
    assert "optimizer.lr=0.003" in config.hydra.overrides.task
    assert "optimizer.lr=0.003" in config.hydra.job.override_dirname

    sgd = FixedTrial(
        {"optimizer": "sgd", "optimizer.lr": 0.1, "optimizer.momentum": 0.7, "model.hidden": "[10]"}
    )
    config, _, _ = composer.compose(sgd, "study")
    assert (config.optimizer.name, config.optimizer.momentum, config.optimizer.lr) == ("sgd", 0.7, 0.1)


def test_the_composition_of_a_group_choice_is_made_once_and_each_trial_gets_its_own_copy(tmp_path) -> None:
    composer = make_composer(tmp_path)
    values = {"optimizer": "adam", "optimizer.lr": 0.003, "model.hidden": "[20]"}
    first, _, _ = composer.compose(FixedTrial(values, number=1), "s")
    second, _, _ = composer.compose(FixedTrial({**values, "optimizer.lr": 0.01}, number=2), "s")
    assert len(composer._bases) == 1  # one Hydra composition for the two trials
    assert first.optimizer.lr == 0.003 and second.optimizer.lr == 0.01  # neither changed the other


def test_a_retry_carries_on_in_the_folder_of_the_trial_it_resumes(tmp_path: Path) -> None:
    composer = make_composer(tmp_path)
    study = optuna.create_study()
    study.enqueue_trial(
        {"optimizer": "adam", "optimizer.lr": 0.003, "model.hidden": "[20]"},
        user_attrs={"resume_dir": str(tmp_path / "2"), "retry_of": 2},
    )
    trial = study.ask()
    _, folder, _ = composer.compose(trial, "study")
    assert trial.number == 0 and folder == tmp_path / "2"


def test_a_trial_folder_outside_the_sweep_folder_is_refused(tmp_path: Path) -> None:
    composer = make_composer(tmp_path / "sweep", "hydra.sweep.subdir=../elsewhere")
    trial = FixedTrial({"optimizer": "adam", "optimizer.lr": 0.003, "model.hidden": "[20]"})
    with pytest.raises(SweeplabError, match="is not inside the study's folder"):
        composer.compose(trial, "study")


def test_a_config_that_does_not_compose_names_the_trial(tmp_path: Path) -> None:
    composer = make_composer(
        tmp_path, space={"model.hidden": "choice([10],[20])", "optimizer": "choice(nadam)"}
    )
    with pytest.raises(SweeplabError, match="trial 0: the config does not compose"):
        composer.compose(FixedTrial({"model.hidden": "[10]", "optimizer": "nadam"}), "study")


PACKABLE = {"optimizer.lr", "trainer.seed"}


def test_trials_pack_when_they_differ_only_in_packable_values(tmp_path: Path) -> None:
    space = {"optimizer.lr": "interval(1e-4, 1e-1)", "model.hidden": "choice([10],[20])"}
    composer = make_composer(tmp_path, space=space)
    matcher = PackMatcher(composer, Packing(run=lambda *a: [], keys=lambda cfg: PACKABLE), "study")
    first = {"optimizer.lr": 0.01, "model.hidden": "[10]"}
    config, _, _ = composer.compose(FixedTrial(first), "study")
    fits, structural = matcher.matcher(first, config)
    assert structural == {"model.hidden": "[10]"}  # what the sampler keeps fixed to fill the pack
    assert fits({"optimizer.lr": 0.05, "model.hidden": "[10]"})
    assert not fits({"optimizer.lr": 0.01, "model.hidden": "[20]"})


def test_a_trial_whose_config_does_not_compose_does_not_fit_and_fails_on_its_own(tmp_path: Path) -> None:
    space = {"optimizer": "choice(adam, nadam)", "optimizer.lr": "interval(1e-4, 1e-1)"}
    composer = make_composer(tmp_path, space=space)
    matcher = PackMatcher(composer, Packing(run=lambda *a: [], keys=lambda cfg: PACKABLE), "study")
    first = {"optimizer": "adam", "optimizer.lr": 0.01}
    fits, structural = matcher.matcher(first, composer.compose(FixedTrial(first), "study")[0])
    assert structural == {"optimizer": "adam"}
    assert not fits({"optimizer": "nadam", "optimizer.lr": 0.01})  # no error here: its own run says why
    assert fits({"optimizer": "adam", "optimizer.lr": 0.09})
