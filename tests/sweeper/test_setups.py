"""Setups: an ordered list of configurations, and ordered ablations built from kept changes."""

import pytest

from sweeplab.config import ConfigError
from sweeplab.sweeper.setups import expand_setups


def test_ablation_rows_build_on_the_changes_kept_so_far():
    setups = expand_setups(
        [
            {"model.hidden": [100], "model.activation": "relu", "optimizer.lr": 2e-3},
            {"model.activation": "leaky_relu"},
            {"model.hidden": [100, 50], "keep": False},
            {"optimizer.lr": "5e-2"},
            {"scheduler": "plateau"},
        ],
        ablation=True,
    )
    assert [s.label for s in setups] == ["1", "2", "3", "4", "5"]
    assert setups[2].overrides == {
        "model.hidden": "[100,50]",
        "model.activation": "leaky_relu",
        "optimizer.lr": "0.002",
    }
    assert setups[3].overrides["model.hidden"] == "[100]"  # the undone change is not carried on
    assert setups[4].overrides == {
        "model.hidden": "[100]",
        "model.activation": "leaky_relu",
        "optimizer.lr": "5e-2",
        "scheduler": "plateau",
    }
    assert [s.changed for s in setups] == [
        (),
        ("model.activation",),
        ("model.hidden",),
        ("optimizer.lr",),
        ("scheduler",),
    ]
    assert [s.keep for s in setups] == [True, True, False, True, True]


def test_a_setup_with_sweeps_stands_for_each_of_its_values():
    setups = expand_setups(
        [
            {"name": "linear", "model": "linear"},
            {
                "name": "cnn",
                "model": "cnn",
                "model.kernel_size": "choice(3,5,7)",
                "model.hidden": "choice([100],[500])",
            },
        ],
        ablation=False,
    )
    assert len(setups) == 1 + 3 * 2
    assert {s.name for s in setups[1:]} == {"cnn"} and setups[1].position == 2
    assert setups[1].label == "cnn: model.kernel_size=3 model.hidden=[100]"
    assert setups[-1].overrides == {"model": "cnn", "model.kernel_size": "7", "model.hidden": "[500]"}
    assert all(s.changed == () for s in setups)  # only ablations compare rows


@pytest.mark.parametrize(
    ("entries", "ablation", "message"),
    [
        ([{"model.hidden": [1], "keep": False}], False, r"setups\[0\]\.keep: applies to ablations only"),
        (
            [{"a.b": 1}, {"a.b": "choice(1,2)"}],
            True,
            r"setups\[1\]: a kept ablation step must be one configuration",
        ),
        (
            [{"name": "x", "a.b": 1}, {"name": "x", "a.b": 2}],
            False,
            r"setups\[1\]\.name: 'x' names an earlier",
        ),
        ([{}], False, r"setups\[0\]: is a mapping of config keys to values"),
        ([{"a.b": "choice(1,"}], False, r"setups\[0\]\.a\.b: cannot parse"),
    ],
)
def test_bad_setups_name_the_entry(entries, ablation, message):
    with pytest.raises(ConfigError, match=message):
        expand_setups(entries, ablation)
