"""pytest plugin (`-p failures_now`, bench/ on PYTHONPATH): each failure's traceback appended to
$FAILURES_NOW the moment it is known. With xdist the tracebacks come only in the closing summary, which a
run cut by its time limit never prints (bench/gpu_check.sh runs the suite under one)."""

import os

import pytest


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed and "FAILURES_NOW" in os.environ:
        with open(os.environ["FAILURES_NOW"], "a") as out:
            head = f"==== {report.nodeid} ({report.when}, {report.duration:.1f} s)"
            out.write(f"{head}\n{report.longreprtext}\n\n")
