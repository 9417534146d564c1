"""The command line: bad input gets one line naming the problem and exit code 2."""

import numpy as np
import pytest

from benchmarks.cli.main import EXIT_BAD_INPUT, main


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["-a", "resnt"], "unknown architecture 'resnt'; did you mean resnet"),
        (["-a", "zz*"], "pattern 'zz*' matches no architecture"),
        (["--trials", "0"], "trials must be at least 1"),
        (["--lr-min", "-1"], "lr_min must be a positive number"),
        (["--budget", "huge"], "unknown budget 'huge'"),
        (["--tuner", "grid"], "unknown tuner 'grid'"),
        (["--wandb-mode", "loud"], "unknown --wandb-mode 'loud'"),
        (["--dataset", "cifar99"], "unknown dataset 'cifar99'"),
        (["--data-dir", "/nonexistent/fm"], "data directory /nonexistent/fm does not exist"),
        (["--workers", "-1"], "--workers must be 0 or more"),
        (["--role", "worker", "--workers", "2"], "cannot go with --role worker"),
        (["--role", "boss"], "unknown --role 'boss'"),
        (["--role", "chief"], "--role chief needs the environment variable(s) KERASTUNER_TUNER_ID"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--chief-timeout", "0"], "--chief-timeout must be a positive number"),
        (["--dataset", "digits", "folder"], "--dataset folder needs --data-dir FOLDER"),
        (["--dataset", "digits", "mnist", "--data-dir", "x"],
         "--data-dir gives 1 path(s) for 2 dataset(s)"),
        (["--dataset", "digits", "digits"], "two datasets would share a run directory"),
        (["--dataset", "npz", "--data-dir", "/nonexistent/a.npz"],
         "data file /nonexistent/a.npz does not exist"),
        (["--test-fraction", "1.5"], "--test-fraction must be between 0 and 1"),
        (["--epochs", "3"], "--epochs would change nothing: budget quick is a budget of time "
         "(5 s per trial, 40 s per final training); add --budget-by epochs to train by epochs"),
        (["--budget", "smoke", "--final-seconds", "9"], "--final-seconds would change nothing: "
         "budget smoke is a budget of epochs (1 epoch(s) per trial, 1 per final training); add "
         "--budget-by time to train by time"),
    ],
)
def test_bad_run_input_is_one_line_and_exit_2(capsys, tmp_path, argv, message):
    code, _, err = run_cli(capsys, "run", "-o", str(tmp_path / "runs"), *argv)
    assert code == EXIT_BAD_INPUT
    assert message in err
    assert err.count("\n") == 1 and err.startswith("archbench: error: ")
    assert not (tmp_path / "runs").exists(), "nothing may be written for bad input"


def test_a_bad_later_dataset_is_refused_before_any_run_directory_is_claimed(capsys, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip archive")
    np.savez(tmp_path / "good.npz", x_train=np.zeros((20, 8, 8), np.uint8),
             y_train=np.arange(20) % 2, x_test=np.zeros((10, 8, 8), np.uint8),
             y_test=np.arange(10) % 2)
    code, _, err = run_cli(capsys, "run", "-o", str(tmp_path / "runs"), "--dataset", "digits",
                           "npz", "--data-dir", "-", str(bad), "--budget", "smoke")
    assert code == EXIT_BAD_INPUT and str(bad) in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists(), "digits' run directory was not claimed either"


def test_two_files_whose_run_directories_coincide_are_refused_at_once(capsys, tmp_path):
    for folder, name in (("one", "a b.npz"), ("two", "a_b.npz")):  # both run in a_b-smoke
        (tmp_path / folder).mkdir()
        np.savez(tmp_path / folder / name, x_train=np.zeros((20, 8, 8), np.uint8),
                 y_train=np.arange(20) % 2, x_test=np.zeros((10, 8, 8), np.uint8),
                 y_test=np.arange(10) % 2)
    code, _, err = run_cli(capsys, "run", "-o", str(tmp_path / "runs"), "--dataset", "npz", "npz",
                           "--data-dir", str(tmp_path / "one" / "a b.npz"),
                           str(tmp_path / "two" / "a_b.npz"), "--budget", "smoke")
    assert code == EXIT_BAD_INPUT and "two datasets would share a run directory" in err
    assert not (tmp_path / "runs").exists()


def test_non_finite_images_are_one_line_and_exit_2_before_anything_is_written(
    capsys, tmp_path, fashion_dir, monkeypatch
):
    from benchmarks.data import sources

    real = sources.parse_idx

    def poisoned(raw, path, magic=None):  # float images, the first 64 of the training set inf
        array = real(raw, path, magic)
        if "train-images" in str(path):
            array = array.astype(np.float32)
            array[:64] = np.inf
        return array

    monkeypatch.setattr(sources, "parse_idx", poisoned)
    code, _, err = run_cli(capsys, "run", "-o", str(tmp_path / "runs"), "--data-dir",
                           str(fashion_dir), "-a", "mlp", "--wandb-mode", "disabled")
    assert code == EXIT_BAD_INPUT
    assert err == ("archbench: error: fashion_mnist x_train holds 50,176 non-finite values "
                   "(NaN or infinity)\n")
    assert not (tmp_path / "runs").exists()


def test_an_output_directory_that_cannot_be_written_is_refused(capsys, tmp_path, fashion_dir):
    # A file where a directory must be: refused even as root, who may write anywhere else.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, _, err = run_cli(capsys, "run", "-o", str(blocker / "runs"), "--data-dir",
                           str(fashion_dir), "-a", "mlp", "--wandb-mode", "disabled")
    assert code == EXIT_BAD_INPUT
    assert err == f"archbench: error: cannot write to {blocker / 'runs'}: Not a directory\n"
    assert blocker.read_text() == "not a directory"


def test_a_directory_of_something_else_is_not_taken_over(capsys, tmp_path, fashion_dir):
    theirs = tmp_path / "mine"
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("years of work")
    code, _, err = run_cli(capsys, "run", "-o", str(tmp_path), "--name", "mine", "--data-dir",
                           str(fashion_dir), "-a", "mlp", "--wandb-mode", "disabled", "--overwrite")
    assert code == EXIT_BAD_INPUT
    assert f"{theirs} exists and is not an archbench run directory; choose another --name" in err
    assert [p.name for p in theirs.iterdir()] == ["thesis.tex"]


def test_overwrite_replaces_a_run_directory_and_only_with_the_flag(tmp_path):
    from benchmarks import rundir
    from benchmarks.budget import make_budget
    from benchmarks.run.manifest import check_run_dir, prepare_run_dir
    from benchmarks.run.options import RunOptions

    def options(overwrite):
        return RunOptions(architectures=["mlp"], budget=make_budget("smoke", trials=3),
                          dataset="fashion_mnist", output=tmp_path, name="old", overwrite=overwrite)

    old = tmp_path / "old"
    old.mkdir()
    rundir.write_json(old / rundir.MANIFEST, {"budget": {"hash": "other", "fields": {}},
                                              "dataset": {"name": "fashion_mnist"}})
    (old / rundir.TRIALS).write_text("architecture\n")
    with pytest.raises(rundir.RunDirError, match="holds a run with a different budget"):
        check_run_dir(options(overwrite=False))
    assert (old / rundir.TRIALS).exists(), "a refused run leaves the old one alone"
    assert check_run_dir(options(overwrite=True)) is None, "a new run, nothing to resume"
    prepare_run_dir(options(overwrite=True))
    assert old.is_dir() and list(old.iterdir()) == []


def test_the_run_gets_the_dataset_the_cli_loaded_once_and_holds_its_lock(tmp_path, monkeypatch):
    from benchmarks.data import sources
    from benchmarks.run import runner

    loads, seen = [], []
    real = sources.load_dataset
    monkeypatch.setattr(sources, "load_dataset",
                        lambda *args, **kwargs: loads.append(args) or real(*args, **kwargs))

    def run(options, dataset, write_leaderboard, resumed):
        seen.append((options.lock_path.exists(), dataset, resumed))
        return 0

    monkeypatch.setattr(runner, "run_benchmark", run)
    argv = ["run", "--dataset", "digits", "-o", str(tmp_path), "-a", "mlp", "--budget", "smoke",
            "--wandb-mode", "disabled"]
    assert main(argv) == 0
    assert len(loads) == 1 and len(seen) == 1
    locked, dataset, resumed = seen[0]
    assert locked, "the run directory's lock is held while the run goes on"
    assert dataset.name == "digits" and resumed is None
    assert not (tmp_path / ".digits-smoke.lock").exists(), "and released after it"


@pytest.mark.parametrize("argv,message", [
    (["--trials", "many"], "expected a whole number, got 'many'"),
    (["--image-size", "64"], "expected HEIGHTxWIDTH such as 64x64, got '64'"),
])
def test_a_value_of_the_wrong_form_is_refused(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(["run", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and err.startswith("archbench run: error: ")


def test_report_on_a_non_run_directory(capsys, tmp_path):
    code, _, err = run_cli(capsys, "report", str(tmp_path))
    assert code == EXIT_BAD_INPUT
    assert "is not an archbench run directory" in err


def test_models_lists_every_family_with_parameters(capsys):
    code, out, _ = run_cli(capsys, "models", "res*", "mlp")
    assert code == 0
    lines = out.splitlines()
    assert any(line.startswith("resnet ") for line in lines)
    mlp_line = next(line for line in lines if line.startswith("mlp "))
    assert "269,322" in mlp_line  # 784*256+256 + 256*256+256 + 256*10+10 at the defaults
    assert not any(line.startswith("vgg") for line in lines)


@pytest.mark.slow
def test_check_passes_a_good_architecture(capsys):
    code, out, _ = run_cli(capsys, "check", "mlp")
    assert code == 0
    assert "default hyperparameters: ok, 269,322 parameters" in out
    assert out.count("sample ") == 3
    assert "one training step: loss" in out and "forward latency at batch 1" in out
    assert out.strip().endswith("mlp: ok")


@pytest.mark.parametrize(
    "body,reason",
    [
        ("raise ValueError('bad default')", "build at default hyperparameters failed: ValueError: bad default"),
        ("return keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(inp)))",
         "outputs shape (None, 3), expected (None, 10)"),
        ("m = keras.Model(inp, keras.layers.Dense(num_classes)(keras.layers.Flatten()(inp)))\n"
         "    m.compile('sgd', 'mse')\n    return m", "returned a compiled model"),
        pytest.param(  # runs every step of the check: seconds
            "return keras.Model(inp, keras.layers.Dense(num_classes, activation='softmax')("
            "keras.layers.Lambda(lambda t: t * float('nan'))(keras.layers.Flatten()(inp))))",
            "non-finite loss", marks=pytest.mark.slow),
    ],
)
def test_check_fails_a_broken_architecture_with_the_reason(capsys, body, reason):
    from models.registry import register

    namespace = {"keras": __import__("keras"), "__name__": "models.broken_arch"}
    source = f"def broken(hp, input_shape, num_classes):\n    inp = keras.Input(input_shape)\n    {body}\n"
    exec(compile(source, "broken_arch.py", "exec"), namespace)  # a user's broken file, in miniature
    register(namespace["broken"])
    code, _, err = run_cli(capsys, "check", "broken")
    assert code == 1
    assert err.startswith("archbench: check failed: broken: ")
    assert reason in err and err.count("\n") == 1


def test_check_unknown_name_is_bad_input(capsys):
    code, _, err = run_cli(capsys, "check", "mpl")
    assert code == EXIT_BAD_INPUT and "did you mean mlp" in err


def test_debug_shows_the_traceback_instead_of_one_line(tmp_path):
    from benchmarks.budget import BudgetError

    with pytest.raises(BudgetError, match="trials must be at least 1"):
        main(["--debug", "run", "-o", str(tmp_path), "--trials", "0"])


def test_lost_workers_end_the_run_with_one_line_and_exit_3(capsys, tmp_path, monkeypatch):
    from benchmarks.cli.main import EXIT_WORKERS_LOST
    from benchmarks.run import runner
    from benchmarks.search.distributed import WorkersLost

    def lose(*args):
        raise WorkersLost("worker0 died 4 times (last exit code 1); see w.log")

    monkeypatch.setattr(runner, "run_benchmark", lose)
    code, _, err = run_cli(capsys, "run", "-o", str(tmp_path), "-a", "mlp", "--workers", "1")
    assert code == EXIT_WORKERS_LOST == 3
    assert err == "archbench: error: worker0 died 4 times (last exit code 1); see w.log\n"


def test_report_over_several_run_directories_adds_the_cross_dataset_report(capsys, tmp_path):
    from tests.helpers.runs import make_dataset_run, result

    runs = [make_dataset_run(tmp_path, name, [result("x", acc, 10, 1, 1)])
            for name, acc in (("A", 0.9), ("B", 0.8))]
    code, out, _ = run_cli(capsys, "report", *map(str, runs))
    assert code == 0
    across = tmp_path / "across-datasets" / "across-datasets.md"
    assert out.split() == [str(runs[0] / "leaderboard.md"), str(runs[1] / "leaderboard.md"),
                           str(across)]
    assert "# archbench across datasets" in across.read_text()


@pytest.mark.parametrize("selection,message", [
    ("ghost", "unknown architecture 'ghost'"),
    ("gh*", "pattern 'gh*' matches no architecture"),
])
def test_a_name_whose_file_fails_to_import_is_refused_after_the_import(
        capsys, tmp_path, monkeypatch, selection, message):
    from models import registry

    real = registry.declared_names()
    monkeypatch.setattr(registry, "declared_names", lambda: real | {"ghost"})  # in a broken file
    code, out, err = run_cli(capsys, "run", "-o", str(tmp_path / "runs"), "-a", selection,
                             "--budget", "smoke", "--wandb-mode", "disabled")
    assert "input checked" in out, "the name read from the source passed the first check"
    assert code == EXIT_BAD_INPUT and message in err


@pytest.mark.parametrize("command", [[], ["run"], ["models"], ["check"], ["report"]])
def test_every_help_text_renders(command, capsys):
    from benchmarks.cli.main import build_parser

    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: archbench")
    if command == ["run"]:  # the memory share, with argparse's % escaped
        assert "more than 50% of the memory available" in " ".join(out.split())
