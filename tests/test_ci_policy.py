"""Skips: a missing dataset skips its tests and says how to install it, except in CI,
where any skip fails the run (tests/ci_policy.py), checked on throw-away test files."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_fashion_dir

REPO = Path(__file__).parents[1]

PASS_SKIP_XFAIL = """
import pytest

def test_passes():
    pass

@pytest.mark.skip(reason="no dataset here")
def test_skipped():
    pass

@pytest.mark.xfail(reason="known bug", strict=True)
def test_known_bug():
    assert False
"""

PASS_XFAIL = """
import pytest

def test_passes():
    pass

@pytest.mark.xfail(reason="known bug", strict=True)
def test_known_bug():
    assert False
"""

SKIPPED_MODULE = """
import pytest

pytest.importorskip("no_such_module_anywhere")
"""


def run_pytest(tmp_path: Path, files: dict[str, str], **env: str) -> subprocess.CompletedProcess:
    """A pytest of its own on ``files``, with only this plugin and ``env`` as CI settings."""
    for name, source in files.items():
        (tmp_path / name).write_text(source)
    environ = {k: v for k, v in os.environ.items() if k not in ("ARCHBENCH_CI", "CI")}
    environ.update(env, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.ci_policy", "-p", "no:cacheprovider",
         "-q", "-ra", *files],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120,
    )


def ci_section(stdout: str) -> list[str]:
    """The lines of the plugin's own section of the terminal summary."""
    assert "skipped in CI" in stdout, stdout
    return stdout.split("skipped in CI", 1)[1].split("\n=", 1)[0].splitlines()[1:]


@pytest.mark.parametrize("env", [{}, {"ARCHBENCH_CI": "0"}, {"CI": "false"}])
def test_outside_ci_a_skip_is_only_reported(tmp_path, env):
    done = run_pytest(tmp_path, {"test_sample.py": PASS_SKIP_XFAIL}, **env)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 1 skipped, 1 xfailed" in done.stdout
    assert "skipped in CI" not in done.stdout


@pytest.mark.parametrize("env", [{"ARCHBENCH_CI": "1"}, {"CI": "true"}])
def test_in_ci_any_skip_fails_the_run_and_is_named(tmp_path, env):
    done = run_pytest(tmp_path, {"test_sample.py": PASS_SKIP_XFAIL}, **env)
    assert done.returncode == 1, done.stdout
    named = [line for line in ci_section(done.stdout) if line.startswith("SKIPPED ")]
    assert named == ["SKIPPED test_sample.py::test_skipped: no dataset here"], done.stdout


def test_in_ci_a_module_skipped_at_collection_fails_the_run(tmp_path):
    files = {"test_fine.py": PASS_XFAIL, "test_optional.py": SKIPPED_MODULE}
    assert run_pytest(tmp_path, files).returncode == 0
    done = run_pytest(tmp_path, files, ARCHBENCH_CI="1")
    assert done.returncode == 1, done.stdout
    named = [line for line in ci_section(done.stdout) if line.startswith("SKIPPED ")]
    assert len(named) == 1, done.stdout
    assert named[0].startswith("SKIPPED test_optional.py: could not import 'no_such_module_anywhere'")


def test_in_ci_a_run_without_skips_passes(tmp_path):
    done = run_pytest(tmp_path, {"test_sample.py": PASS_XFAIL}, ARCHBENCH_CI="1")
    assert done.returncode == 0, done.stdout
    assert "1 passed, 1 xfailed" in done.stdout


@pytest.fixture
def not_ci(monkeypatch):
    monkeypatch.delenv("ARCHBENCH_CI", raising=False)
    monkeypatch.delenv("CI", raising=False)
    return monkeypatch


def test_a_missing_dataset_skips_with_the_install_command(tmp_path, not_ci):
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install dataset-fashion-mnist"):
        require_fashion_dir(tmp_path / "fashion-mnist")
    assert require_fashion_dir(tmp_path) == tmp_path


@pytest.mark.parametrize("var", ["ARCHBENCH_CI", "CI"])
def test_in_ci_a_missing_dataset_fails(tmp_path, not_ci, var):
    not_ci.setenv(var, "true" if var == "CI" else "1")
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install dataset-fashion-mnist"):
        require_fashion_dir(tmp_path / "fashion-mnist")
