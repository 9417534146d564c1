"""TensorFlow's start-up is quiet: its C++ and absl lines are caught, unless they explain
a failure or --debug asks for them."""

import os
import subprocess
import sys

import pytest

from benchmarks.runtime import startup
from tests.helpers import REPO

NOISE = ("absl::InitializeLog", "cuInit", "cudart_stub", "I0000", "E0000")


def test_what_the_start_writes_to_file_descriptor_2_is_caught(monkeypatch, capfd):
    monkeypatch.delitem(sys.modules, "tensorflow")  # as in a fresh process
    monkeypatch.setattr(startup, "_start", lambda: os.write(2, b"I0000 noise from C++\n"))
    startup.start_tensorflow()
    print("after", file=sys.stderr)
    assert capfd.readouterr().err == "after\n"


def test_a_failed_start_shows_what_it_wrote_and_raises(monkeypatch, capfd):
    monkeypatch.delitem(sys.modules, "tensorflow")

    def broken():
        os.write(2, b"libcudnn.so: cannot open shared object file\n")
        raise ImportError("no tensorflow")

    monkeypatch.setattr(startup, "_start", broken)
    with pytest.raises(ImportError, match="no tensorflow"):
        startup.start_tensorflow()
    assert "libcudnn.so: cannot open shared object file" in capfd.readouterr().err


def test_with_debug_nothing_is_caught(monkeypatch, capfd):
    monkeypatch.delitem(sys.modules, "tensorflow")
    monkeypatch.setattr(startup, "_start", lambda: os.write(2, b"I0000 shown\n"))
    startup.start_tensorflow(debug=True)
    assert "I0000 shown" in capfd.readouterr().err


@pytest.mark.slow  # a process that loads TensorFlow and builds every architecture: 10 s
def test_tensorflow_warnings_other_than_the_expected_retracing_still_show(caplog):
    import logging

    logger = logging.getLogger("archbench-test-retracing")
    logger.addFilter(startup.expected_retracing)
    with caplog.at_level(logging.WARNING, logger=logger.name):
        logger.warning("5 out of the last 13 calls to <function f> %s. Tracing is expensive",
                       startup.RETRACING)
        logger.warning("a real problem")
    assert [r.getMessage() for r in caplog.records] == ["a real problem"]
    import tensorflow as tf

    startup._start()
    assert startup.expected_retracing in tf.get_logger().filters


def test_archbench_models_prints_its_table_and_no_tensorflow_lines():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.cli", "models"], env=env,
                          cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("architecture")
    assert not [line for line in done.stderr.splitlines() if any(n in line for n in NOISE)]


def test_version_is_the_packages_and_needs_no_tensorflow():
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())
    done = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom benchmarks.cli.main import main\n"
         "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
         "print('tensorflow' in sys.modules)"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["archbench", declared["project"]["version"], "False"]


HEAVY = ("tensorflow", "keras", "keras_tuner", "wandb", "pandas")


def _bad_inputs(tmp_path):
    """argv -> what the one-line error says, for each kind of input check."""
    from benchmarks import rundir
    from tests.helpers.files import write_fake_dataset

    fm = tmp_path / "fm"
    write_fake_dataset(fm)
    labels = (fm / "train-labels-idx1-ubyte.gz").read_bytes()
    (fm / "train-images-idx3-ubyte.gz").write_bytes(labels)  # a wrong magic number
    old = tmp_path / "runs" / "old"
    old.mkdir(parents=True)
    rundir.write_json(old / rundir.MANIFEST, {"budget": {"hash": "other", "fields": {}}})
    return {
        "folder": (["--dataset", "folder", "--data-dir", str(tmp_path / "none")],
                   "does not exist"),
        "architecture": (["-a", "resnt"], "unknown architecture 'resnt'; did you mean resnet"),
        "budget": (["--budget", "huge"], "unknown budget 'huge'"),
        "magic": (["--dataset", "fashion_mnist", "--data-dir", str(fm)], "wrong magic number"),
        "run directory": (["-a", "mlp", "--budget", "smoke", "--output", str(tmp_path / "runs"),
                           "--name", "old"], "holds a run with a different budget"),
        "wandb": (["--wandb-mode", "loud"], "unknown --wandb-mode 'loud'"),
    }


@pytest.mark.parametrize("case", ["folder", "architecture", "budget", "magic", "run directory",
                                  "wandb"])
def test_bad_input_is_refused_before_tensorflow_wandb_or_pandas_load(tmp_path, case):
    argv, message = _bad_inputs(tmp_path)[case]
    code = ("import sys\nfrom benchmarks.cli.main import main\ncode = main(['run', *sys.argv[1:]])\n"
            f"print(code, [m for m in {HEAVY!r} if m in sys.modules])")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "2 []", (done.stdout, done.stderr[-2000:])
    assert done.stderr.startswith("archbench: error: ") and message in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr


@pytest.mark.parametrize("argv", [["--help"], pytest.param(["report", "RUN"], marks=pytest.mark.slow)])
def test_help_and_report_run_without_tensorflow_and_print_none_of_it(tmp_path, argv):
    from tests.helpers.runs import ROWS, make_run

    run = make_run(tmp_path, ROWS)
    argv = [str(run) if a == "RUN" else a for a in argv]
    code = ("import sys\nfrom benchmarks.cli.main import main\ntry:\n    code = main(sys.argv[1:])\n"
            "except SystemExit as exit:\n    code = exit.code\n"
            f"print('EXIT', code, [m for m in {HEAVY[:3]!r} if m in sys.modules])")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines()[-1] == "EXIT 0 []", (done.stdout[-500:], done.stderr[-2000:])
    assert not [line for line in done.stderr.splitlines() if any(n in line for n in NOISE)]
