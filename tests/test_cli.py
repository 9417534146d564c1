"""The command line: bad input gets one line naming the problem and exit code 2."""

import pytest

from benchmarks.cli import EXIT_BAD_INPUT, main


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
    ],
)
def test_bad_run_input_is_one_line_and_exit_2(capsys, tmp_path, argv, message):
    code, _, err = run_cli(capsys, "run", "-o", str(tmp_path / "runs"), *argv)
    assert code == EXIT_BAD_INPUT
    assert message in err
    assert err.count("\n") == 1 and err.startswith("archbench: error: ")
    assert not (tmp_path / "runs").exists(), "nothing may be written for bad input"


def test_oversized_subset_is_refused(capsys, tmp_path, fashion_dir):
    code, _, err = run_cli(
        capsys, "run", "-o", str(tmp_path), "--data-dir", str(fashion_dir), "--train-size", "70000"
    )
    assert code == EXIT_BAD_INPUT
    assert "train_size 70000 is larger than the 59000 training images" in err


def test_non_numeric_budget_value_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--trials", "many"])
    assert exc.value.code == 2
    assert "expected a whole number, got 'many'" in capsys.readouterr().err


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
