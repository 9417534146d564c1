"""Keras' backend as a recorded choice: picked before Keras loads, part of the budget, and
each backend-specific piece working on every backend CI has (TensorFlow and JAX on CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras_tuner as kt
import pytest

from benchmarks import timing
from benchmarks.budget import BudgetError, make_budget
from benchmarks.cli.main import main
from benchmarks.runtime import backends
from benchmarks.training.callbacks import CompileTimer
from models.registry import declared_names, get_architecture
from tests.helpers import REPO

ROOT = REPO


def run_quiet(args: list[str], env: dict | None = None, timeout: int = 600):
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "WANDB_MODE": "offline", **(env or {})})


def test_the_backend_is_part_of_the_budget_and_its_hash():
    tensorflow, jax = make_budget("smoke"), make_budget("smoke", backend="jax")
    assert tensorflow.backend == "tensorflow" and jax.backend == "jax"
    assert tensorflow.hash != jax.hash
    # TensorFlow, the backend before there was a choice, keeps the hashes runs were made with
    assert tensorflow.hash == make_budget("smoke", backend=None).hash


@pytest.mark.parametrize("overrides, message", [
    ({"backend": "torch"}, "backend 'torch' is not offered"),
    ({"backend": "mxnet"}, "unknown backend 'mxnet'; choose one of tensorflow, jax"),
    ({"backend": "jax", "xla": "off"}, "jax always compiles with XLA"),
])
def test_backends_that_cannot_be_used_are_refused(overrides, message):
    with pytest.raises(BudgetError, match=message):
        make_budget("smoke", **overrides)


def test_a_bad_backend_is_one_line_and_exit_2_before_anything_loads(tmp_path, capsys):
    assert main(["run", "--backend", "torch", "--budget", "smoke", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "backend 'torch' is not offered" in err[0]
    assert not list(tmp_path.iterdir())  # nothing written


def test_kerass_backend_env_is_honoured_and_the_flag_wins(monkeypatch):
    monkeypatch.setenv(backends.ENV, "jax")
    assert backends.requested(None) == "jax"
    assert backends.requested("tensorflow") == "tensorflow"
    monkeypatch.delenv(backends.ENV)
    assert backends.requested(None) == "tensorflow"


def test_another_backend_than_the_loaded_one_is_refused_in_process(capsys):
    import keras

    assert keras.backend.backend() == "tensorflow"  # this test process
    assert main(["models", "mlp", "--backend", "jax"]) == 2
    assert "already loaded with the tensorflow backend" in capsys.readouterr().err


def test_compilation_is_its_own_phase_less_one_step():
    now = [0.0]
    clock = timing.Phases()
    clock.clock = lambda: now[0]
    clock.started = clock._mark = 0.0
    timer = CompileTimer(clock)
    clock.enter(timing.TRAINING)
    for batch, start in enumerate([1.0, 6.0, 6.5, 7.0]):  # first batch: 5 s; later: 0.5 s
        now[0] = start
        timer.on_train_batch_begin(batch)
    clock.enter(timing.VALIDATION)
    now[0] = 7.5
    timer.on_test_begin()
    for batch, start in enumerate([7.5, 9.5, 9.6]):  # first validation batch: 2 s; later 0.1
        now[0] = start
        timer.on_test_batch_begin(batch)
    now[0] = 9.7
    timer.on_test_end()
    clock.exit()
    now[0] = 10.0
    timer.on_epoch_end(0)
    timer.on_train_batch_begin(0)  # a second epoch compiles nothing
    now[0] = 11.0
    clock.exit()
    totals = clock.summary()
    assert totals["compilation"] == pytest.approx(4.5 + 1.9)
    # before the first batch, the batches after the second, one step given back, the rest
    assert totals["training"] == pytest.approx(1.0 + 1.0 + 0.5 + 1.3)
    assert totals["validation"] == pytest.approx(0.5 + 0.1 + 0.1 + 0.1)
    assert totals["wall"] == pytest.approx(11.0)


def test_validation_is_charged_once_the_queued_training_steps_have_run(monkeypatch):
    from benchmarks.training.callbacks import ValidationTimer

    now = [0.0]
    clock = timing.Phases()
    clock.clock = lambda: now[0]
    clock.started = clock._mark = 0.0

    def wait(model):  # the training steps still queued take 5 s to run
        now[0] += 5.0

    monkeypatch.setattr(backends, "wait_for_steps", wait)
    timer = ValidationTimer(clock)
    clock.enter(timing.TRAINING)
    now[0] = 1.0
    timer.on_test_begin()
    now[0] = 7.0
    timer.on_test_end()
    now[0] = 8.0
    clock.exit()
    totals = clock.summary()
    assert totals["training"] == pytest.approx(1.0 + 5.0 + 1.0)
    assert totals["validation"] == pytest.approx(1.0)


@pytest.mark.slow
@pytest.mark.parametrize("backend", backends.BACKENDS)
def test_each_backend_piece_works_on_that_backend(backend):
    # the whole registry on JAX (TensorFlow's builds and steps are tested in-process)
    names = sorted(declared_names()) if backend == "jax" else ["mlp", "simple_cnn"]
    done = run_quiet([sys.executable, "-m", "tests.runtime.backend_probe", backend, ",".join(names)])
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["backend"] == backend and found["versions"]["backend"] == backend
    assert found["out_of_memory"] == [True, False]
    parallel = found["data_parallel"]
    assert parallel["trained_loss"] == parallel["trained_loss"]  # not NaN
    if backend == "jax":
        assert found["threads"] == {"cores": 1}  # pinned to one core
        assert parallel["replicas"] == 2 and "33 cannot be split evenly over 2" in parallel["refused_33"]
        assert found["tensorflow_loaded"] is False
        assert found["waits_for_steps"] is True
    else:
        assert found["threads"] == {"intra_op": 1, "inter_op": 1}
        assert parallel["replicas"] >= 1 and parallel["refused_33"] == ""
    assert sorted(found["architectures"]) == names
    for name, result in found["architectures"].items():
        assert result["forward_type"] == "ndarray", name
        assert result["forward_vs_predict"] < 1e-4, (name, result)
        assert result["gradients"] == result["weights"] > 0, (name, result)
        assert result["gradient_norm"] > 0, (name, result)
        assert result["loss_after_step"] < result["loss_before"], (name, result)  # descent
        assert result["train_loss"] == result["train_loss"], name  # not NaN


@pytest.mark.slow
def test_models_and_check_work_on_jax_with_the_backend_chosen_before_keras_loads():
    models = run_quiet([sys.executable, "-m", "benchmarks.cli", "models", "mlp", "simple_cnn",
                        "--backend", "jax"])
    assert models.returncode == 0, models.stderr[-2000:]
    assert "starting Keras on jax" in models.stderr
    for name in ("mlp", "simple_cnn"):  # the same counts as on TensorFlow, in this process
        model = get_architecture(name).build(kt.HyperParameters(), (28, 28, 1), 10)
        assert f"{model.count_params():,}" in models.stdout, name
    # KERAS_BACKEND alone picks it too; the CLI module imports no Keras before choosing
    code = ("import sys; from benchmarks.cli import main as cli; assert 'keras' not in sys.modules; "
            "args = cli.build_parser().parse_args(['check', 'mlp']); cli._start_backend(args); "
            "import keras; print(keras.backend.backend(), 'tensorflow' in sys.modules)")
    chosen = run_quiet([sys.executable, "-c", code], env={backends.ENV: "jax"})
    assert chosen.stdout.split() == ["jax", "False"], chosen.stderr[-2000:]
    check = run_quiet([sys.executable, "-m", "benchmarks.cli", "check", "simple_cnn",
                       "--backend", "jax"])
    assert check.returncode == 0 and "simple_cnn: ok" in check.stdout, check.stderr[-2000:]


@pytest.mark.slow
def test_a_smoke_benchmark_runs_end_to_end_on_jax_and_keeps_its_backend(fashion_dir, tmp_path):
    from benchmarks import rundir

    argv = [sys.executable, "-m", "benchmarks.cli", "run", "--budget", "smoke",
            "-a", "mlp,simple_cnn", "-o", str(tmp_path), "--name", "on-jax",
            "--data-dir", str(fashion_dir), "--wandb-mode", "offline"]
    done = run_quiet([*argv, "--backend", "jax"])
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "on-jax"
    manifest = rundir.read_json(run_dir / rundir.MANIFEST)
    assert manifest["budget"]["fields"]["backend"] == "jax"
    assert manifest["environment"]["backend"] == "jax"
    assert manifest["environment"]["tensorflow"] is None  # never imported
    assert manifest["accelerator"]["xla"] is True and manifest["accelerator"]["policy"] == "float32"
    assert manifest["time"]["run"]["compilation"] > 0  # its own phase
    rows = {r["architecture"]: r for r in rundir.read_rows(run_dir / rundir.RESULTS)}
    assert sorted(rows) == ["mlp", "simple_cnn"]
    for name, row in rows.items():
        assert row["status"] == "ok", (name, row.get("error"))
        assert float(row["test_accuracy"]) > 0.2, name  # chance is 0.1
        assert float(row["inference_latency_ms"]) > 0 and float(row["train_images_per_second"]) > 0
    assert "Keras on jax (jax " in (run_dir / rundir.LEADERBOARD).read_text()

    other = run_quiet([*argv, "--backend", "tensorflow"])  # the same directory, another backend
    assert other.returncode == 2
    assert "backend 'jax' -> 'tensorflow'" in other.stderr and len(other.stderr.splitlines()) == 1
    again = run_quiet(argv, env={backends.ENV: "jax"})  # KERAS_BACKEND picks it: a resume
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("already finished, skipped") == 2


def test_the_leaderboard_header_names_the_backend_its_versions_and_precision():
    from reports.leaderboard import backend_line

    jax = backend_line({"backend": "jax"}, {"backend_versions": {
        "jaxlib": "0.10.2", "jax": "0.10.2", "platform": "gpu"}}, {"policy": "mixed_bfloat16",
                                                                   "xla": True})
    assert jax == ("- **Backend**: Keras on jax (jax 0.10.2, jaxlib 0.10.2, platform gpu); "
                   "precision mixed_bfloat16, XLA on")
    # a run made before the choice: TensorFlow, its version from the environment
    old = backend_line({}, {"tensorflow": "2.16.1"}, {"mixed_precision": False, "xla": False})
    assert old == "- **Backend**: Keras on tensorflow (tensorflow 2.16.1); precision float32, XLA off"


def test_bfloat16_is_refused_on_a_gpu_without_it_and_auto_is_float16_from_volta():
    from benchmarks.training.accelerator import precision_policy

    assert precision_policy("bfloat16", []) == "mixed_bfloat16"  # CPU
    assert precision_policy("bfloat16", [(9, 0)]) == "mixed_bfloat16"  # H100/H200
    with pytest.raises(BudgetError, match="compute capability 8.0 or more; this one has 7.5"):
        precision_policy("bfloat16", [(7, 5)])
    assert precision_policy("auto", []) == "float32"
    assert precision_policy("auto", [(7, 0)]) == "mixed_float16"
    assert precision_policy("auto", [(6, 1)]) == "float32"
    assert precision_policy("on", []) == "mixed_float16"
