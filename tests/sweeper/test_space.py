"""Hydra's sweep syntax becomes the Optuna distributions it means."""

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from sweeplab.config import ConfigError
from sweeplab.sweeper.space import as_scalar, describe, override_text, parse_params, split_overrides
from sweeplab.sweeper.spec import _command


def one(expression: str, group: bool = False):
    return parse_params({"k": expression}, {"k"} if group else set())["k"]


def test_interval_with_log_tag_is_log_uniform():
    assert one("tag(log, interval(1e-4, 1e-1))").distribution == FloatDistribution(1e-4, 1e-1, log=True)


def test_int_interval_is_an_integer_distribution():
    assert one("int(interval(1, 10))").distribution == IntDistribution(1, 10)
    assert one("tag(log, int(interval(1, 100)))").distribution == IntDistribution(1, 100, log=True)


def test_range_excludes_its_end_as_in_hydras_basic_sweeper():
    p = one("range(2, 6)")
    assert p.distribution == IntDistribution(2, 5, step=1) and p.grid_values() == [2, 3, 4, 5]
    assert one("range(0, 10, 4)").grid_values() == [0, 4, 8]
    assert one("range(0.1, 0.4, 0.1)").grid_values() == [0.1, 0.2, 0.3]


def test_choice_of_lists_is_stored_as_override_text_and_comes_back_as_lists():
    p = one("choice([100],[100,100])")
    assert p.distribution == CategoricalDistribution(["[100]", "[100,100]"])
    override = OverridesParser.create().parse_override(p.override("[100,100]"))
    assert override.key_or_group == "k" and override.value() == [100, 100]


def test_choice_of_groups_is_marked_as_a_group():
    assert one("choice(mlp, cnn)", group=True).is_group


@pytest.mark.parametrize(
    "value", [None, True, 3, 0.001, "relu", "a b", [100, 100], [1, [2, "x y"]], {"a": 1}]
)
def test_override_text_round_trips_through_hydras_parser(value):
    parsed = OverridesParser.create().parse_override(f"k={override_text(value)}").value()
    assert parsed == value


def test_enqueued_values_are_stored_like_choices():
    assert as_scalar([100, 100]) == "[100,100]" == one("choice([100, 100], [5])").distribution.choices[0]


def test_split_overrides_separates_sweeps_from_fixed_values():
    sweeps, fixed = split_overrides(["model=cnn", "optimizer.lr=choice(0.1,0.01)", "+x=1", "trainer.seed=3"])
    assert sweeps == {"optimizer.lr": "choice(0.1,0.01)"} and fixed == ["model=cnn", "+x=1", "trainer.seed=3"]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("tag(log, interval(0, 1))", r"^k: a log interval needs a positive start, got 0$"),
        (
            "interval(1, 0.5)",
            r"^k: k=interval\(1, 0.5\): the start must be below the end \(interval\(0.5, 1.0\)\?\)",
        ),
        (
            "tag(lg, interval(0.1, 1))",
            r"^k: unknown tag lg in k=tag\(lg, interval\(0.1, 1\)\); the only tag is log",
        ),
        ("tag(log, choice(1, 2))", r"^k: unknown tag log in"),
        ("range(5, 5)", r"is empty \(the end of a range is excluded\)"),
        ("choice(1, 1)", r"choice has repeated values"),
        ("interval(1", r"^k: cannot parse 'interval\(1'"),
    ],
)
def test_bad_expressions_name_the_parameter(expression, message):
    with pytest.raises(ConfigError, match=message):
        one(expression)


def test_grid_needs_discrete_values():
    with pytest.raises(ConfigError, match=r"the grid and brute-force samplers need discrete values"):
        one("interval(0.1, 1)").grid_values()


def test_descriptions_read_like_the_space():
    assert describe(one("tag(log, interval(1e-4, 1e-1))").distribution) == "log-uniform [0.0001, 0.1]"
    assert describe(one("choice(relu, elu)").distribution) == "choice of relu, elu"
    assert describe(one("range(0, 10, 2)").distribution) == "integers [0, 8] step 2"


def test_the_recorded_command_carries_the_environment_the_run_needed(monkeypatch):
    monkeypatch.setenv("SWEEPLAB_VERIFY_MD5", "false")
    monkeypatch.setenv("SWEEPLAB_DATA_DIR", "/data")  # where, not what: not part of the command
    assert _command(["sweep=x"]) == "SWEEPLAB_VERIFY_MD5=false sweeplab train -m sweep=x"
