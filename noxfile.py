"""Sessions: tests (default), benchmark, report, lint, perf, docs. `nox -l` lists them."""

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (unit tests and a smoke benchmark on the real data) in two
    pytest workers, a test file to a worker (its module-wide fixtures run once); `-- ARGS`
    replace those options (`-- -m "not slow"`: the fast lane, in one process)."""
    session.install("-e", ".[test]")
    session.run("pytest", *(session.posargs or ["-q", "-n", "2", "--dist", "loadfile"]))


@nox.session(default=False)
def benchmark(session: nox.Session) -> None:
    """Benchmark every architecture (`quick` budget); `-- ARGS` go to `archbench run`."""
    session.install("-e", ".")
    session.run("archbench", "run", *session.posargs)


@nox.session(default=False)
def report(session: nox.Session) -> None:
    """Write the leaderboard of a run directory: `nox -s report -- RUN_DIR [-o FILE]`."""
    if not session.posargs:
        session.error("usage: nox -s report -- RUN_DIR [-o FILE]")
    session.install("-e", ".")
    session.run("archbench", "report", *session.posargs)


@nox.session(default=False)
def lint(session: nox.Session) -> None:
    """Check style and common mistakes with ruff."""
    session.install("ruff")
    session.run("ruff", "check", ".", *session.posargs)


@nox.session(default=False)
def perf(session: nox.Session) -> None:
    """What the suite costs on top of training: suite vs plain Keras, workers vs one
    process, input pipeline vs pre-batched tensors, accelerator options; each repeated
    (`-- --repeats N`). `-- ARGS` go to benchmarks.cli.perf; its JSON makes the
    results page's table (python -m reports.perf_table runs/perf/perf.json --page
    docs/results/performance.md)."""
    session.install("-e", ".")
    session.run("python", "-m", "benchmarks.cli.perf", *session.posargs)


@nox.session(default=False)
def docs(session: nox.Session) -> None:
    """Build the documentation site (MkDocs, Material theme) into site/, failing on any
    warning (a broken link, a missing page); `-- serve` previews it instead."""
    session.install("-r", "docs/requirements.txt")
    if session.posargs[:1] == ["serve"]:
        session.run("mkdocs", "serve", *session.posargs[1:])
    else:
        session.run("mkdocs", "build", "--strict", *session.posargs)
