"""In CI a skipped test fails the run: there a skip would hide what the test checks.

CI means ``ARCHBENCH_CI`` (``.ci/run`` sets it to 1) or ``CI`` (set by most CI services)
is true. tests/conftest.py loads this; it is a plugin of its own (``-p tests.ci_policy``)
so that tests/test_ci_policy.py can run it on throw-away test files.
"""

from __future__ import annotations

import os

import pytest

TRUE = {"1", "true", "yes", "on"}
PLUGIN = "archbench-skips-fail-ci"


def in_ci() -> bool:
    """Whether ``ARCHBENCH_CI`` or ``CI`` is set to a true value (1, true, yes, on)."""
    return any(os.environ.get(var, "").strip().lower() in TRUE for var in ("ARCHBENCH_CI", "CI"))


def pytest_configure(config: pytest.Config) -> None:
    if in_ci() and not config.pluginmanager.has_plugin(PLUGIN):
        config.pluginmanager.register(SkipsFailCI(), PLUGIN)


class SkipsFailCI:
    """Records every skip (of a test or a whole module); any skip makes the exit status 1."""

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self.record(report)

    def record(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):  # an xfail is not a skip
            self.skipped.append((report.nodeid, reason(report)))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.skipped and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.skipped:
            return
        terminalreporter.section("skipped in CI (ARCHBENCH_CI/CI set): a failure", red=True)
        for nodeid, why in self.skipped:
            terminalreporter.line(f"SKIPPED {nodeid}: {why}", red=True)
        terminalreporter.line(
            f"{len(self.skipped)} skipped; in CI every test must run, so the exit status is 1"
        )


def reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: why")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)
