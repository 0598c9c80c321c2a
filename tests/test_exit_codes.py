"""The one table of expected faults (sweeplab.faults): what the `sweeplab` command and the Hydra plugin
exit with, and say, for each."""

import optuna  # noqa: F401  (loads the storage's exception classes, as a sweep has)
import pytest
import sqlalchemy

from sweeplab.config import ConfigError, SweeplabError
from sweeplab.faults import STUDY_GONE, expected_fault
from sweeplab.files import EnvironmentFault


@pytest.mark.parametrize(
    ("err", "code", "said"),
    [
        (SweeplabError("bad value"), 2, "bad value"),
        (ConfigError("model.hidden", "must be a list"), 2, "model.hidden: must be a list"),
        (EnvironmentFault("no space left on device writing x"), 1, "no space left on device writing x"),
        (
            sqlalchemy.exc.OperationalError("SELECT", {}, Exception("server closed the connection")),
            1,
            "the storage sqlite:////s/a.db failed: ",
        ),
        (KeyError("Record does not exist."), 1, STUDY_GONE),
    ],
)
def test_an_expected_fault_is_an_exit_code_and_one_line(err: BaseException, code: int, said: str) -> None:
    got_code, message = expected_fault(err, "sqlite:////s/a.db")
    assert got_code == code and message.startswith(said)


@pytest.mark.parametrize("err", [KeyError("model"), ValueError("a bug"), RuntimeError("a bug")])
def test_anything_else_is_not_expected_and_shows_its_traceback(err: BaseException) -> None:
    assert expected_fault(err) is None
