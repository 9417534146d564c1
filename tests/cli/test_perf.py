"""``nox -s perf``'s arguments and ratios, and the results page's table generated from its JSON."""

import json

import pytest

from benchmarks.cli.perf import parse, spread
from reports import ReportError
from reports.perf_table import BEGIN, END, main, render, render_all, replace_block
from reports.perf_table import PAGE as PAGE_NAME
from tests.helpers import REPO

PAGE = REPO / PAGE_NAME
MEASURED_DIR = REPO / "reports" / "measured"
# oldest first, as the results page's block was generated
MEASURED = [MEASURED_DIR / "perf.json", *sorted(MEASURED_DIR.glob("perf-*.json"))]


def sample() -> dict:
    return {
        "architecture": "simple_cnn", "budget": "quick", "trials": 4, "repeats": 3,
        "command": "python -m benchmarks.cli.perf --trials 4", "seconds": 900.4,
        "git": {"commit": "abcdef0123", "dirty": False},
        "environment": {"cpu": "AMD EPYC 7B13", "cpu_count": 2, "cpu_flags": ["avx", "avx2"],
                        "threads": {"intra_op": 0, "inter_op": 0}, "python": "3.11.7",
                        "tensorflow": "2.21.0", "keras": "3.15.1", "keras_tuner": "1.4.8",
                        "wandb": "0.31.0"},
        "a_suite_vs_plain": {"trials": 4, "runs": [
            {"offline": 10.0, "disabled": 9.5, "plain": 9.0},
            {"offline": 11.0, "disabled": 10.0, "plain": 10.0},
            {"offline": 12.0, "disabled": 12.0, "plain": 12.0}],
            "ratio": spread([10 / 9, 11 / 10, 1.0]), "ratio_without_wandb": spread([9.5 / 9, 1.0, 1.0])},
        "c_input_pipeline": {"images": 11968, "batch_size": 64, "epochs": 4,
                             "runs": [{"suite": 1900.0, "prebatched": 2000.0}] * 3,
                             "ratio": spread([0.95] * 3)},
    }


def test_spread_gives_the_median_and_the_range_of_the_repeats():
    assert spread([1.2, 0.9, 1.0]) == {"median": 1.0, "min": 0.9, "max": 1.2,
                                       "repeats": [1.2, 0.9, 1.0]}


@pytest.mark.parametrize("argv, message", [
    (["--only", "a,x"], "--only x: choose among a,b,c,d,e"),
    (["--repeats", "0"], "--repeats must be at least 1, got 0"),
    (["--trials", "-2"], "--trials must be at least 1, got -2"),
])
def test_bad_perf_options_exit_2_naming_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        parse(argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
    assert parse(["--only", "c"]).only == ["c"] and parse([]).repeats == 3


def test_the_table_gives_every_ratio_with_its_spread_and_the_machine():
    text = render(sample())
    assert "AMD EPYC 7B13 (2 cores; avx, avx2)" in text and "3 repeats" in text
    assert "commit abcdef0" in text and "TensorFlow 2.21.0" in text
    lines = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| (")}
    a = next(line for label, line in lines.items() if label.startswith("(a) "))
    assert "| 1.100 " in a and "1.000-1.111" in a and "1.111, 1.100, 1.000" in a
    assert "at most 1.05" in a and "seconds 10.0, 11.0, 12.0 / 9.0, 10.0, 12.0" in a
    c = next(line for label, line in lines.items() if label.startswith("(c)"))
    assert "| 0.950 " in c and "at least 0.97" in c and "11,968 images" in c
    assert not any(label.startswith("(b)") for label in lines), "no row for what did not run"
    with pytest.raises(ReportError, match="missing 'environment'"):
        render({"command": "x"})


def test_a_jax_report_names_its_backend_and_gives_bfloat16_and_the_backends_side_by_side():
    report = sample()
    report["environment"] = {**report["environment"], "backend": "jax", "tensorflow": None,
                             "backend_versions": {"jax": "0.10.2", "platform": "cpu"},
                             "threads": {"cores": 2}, "gpus": []}
    runs = [{"float32": 100.0, "mixed_precision": 50.0, "bfloat16": 80.0}] * 3
    report["d_accelerator"] = {"runs": runs, "mixed_precision_ratio": spread([0.5] * 3),
                               "bfloat16_ratio": spread([0.8] * 3)}
    report["e_backends"] = {"budget": "quick", "ratio": spread([1.25]), "runs": [
        {"backend": "tensorflow", "seconds": 1000.0, "compilation_seconds": 40.0, "winner": "resnet"},
        {"backend": "jax", "seconds": 1250.0, "compilation_seconds": 300.0, "winner": "vgg"}]}
    text = render(report)
    assert "JAX 0.10.2 on cpu, 2 cores" in text and "TensorFlow" not in text.split("\n")[0]
    lines = [line for line in text.splitlines() if line.startswith("| (")]
    d = [line for line in lines if line.startswith("| (d)")]
    assert len(d) == 2 and "bfloat16 mixed precision / float32 (80.0, 80.0, 80.0 / 100.0" in d[1]
    assert "| 0.800 " in d[1] and not any("XLA" in line for line in d)  # jax: always XLA
    e = next(line for line in lines if line.startswith("| (e)"))
    assert "jax / tensorflow" in e and "| 1.250 " in e
    assert "tensorflow 1,000 s (compilation 40 s), winner resnet" in e


def test_the_page_block_is_replaced_and_a_hand_edit_is_caught(tmp_path, capsys):
    page, data = tmp_path / "page.md", tmp_path / "perf.json"
    data.write_text(json.dumps(sample()))
    page.write_text(f"# x\n\n{BEGIN}\nold table\n{END}\n\nafter\n")
    assert main([str(data), "--page", str(page)]) == 0
    text = page.read_text()
    assert "old table" not in text and render(sample()) in text and text.endswith(f"{END}\n\nafter\n")
    assert main([str(data), "--page", str(page), "--check"]) == 0
    page.write_text(text.replace("| 0.950 ", "| 0.990 "))
    assert main([str(data), "--page", str(page), "--check"]) == 1
    assert replace_block(text, "new") == f"# x\n\n{BEGIN}\nnew\n{END}\n\nafter\n"
    page.write_text("no markers\n")
    assert main([str(data), "--page", str(page)]) == 2
    assert "needs one '<!-- perf:begin" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.json")]) == 2


def test_a_comparison_measured_again_at_another_commit_replaces_the_older_one():
    old = sample()
    again = {**sample(), "git": {"commit": "1234567890", "dirty": False}}
    again.pop("c_input_pipeline")
    again["a_suite_vs_plain"] = {**again["a_suite_vs_plain"], "ratio": spread([0.9, 0.95, 1.0])}
    text = render_all([old, again])
    a_rows = [line for line in text.splitlines() if line.startswith("| (a) ")]
    assert len(a_rows) == 1 and "| 0.950 " in a_rows[0], "the older (a) is gone"
    first, second = text.split("commit 1234567")
    assert "commit abcdef0" in first and "(c) training" in first and "(a) suite" not in first
    assert "(a) suite" in second and "(c) training" not in second
    same_commit = {**again, "git": old["git"]}
    assert sum(line.startswith("| (a) ") for line in render_all([old, same_commit]).splitlines()) == 2


def test_the_results_pages_performance_table_is_the_committed_measurement():
    names = " ".join(str(path.relative_to(MEASURED_DIR.parents[1])) for path in MEASURED)
    assert main([*map(str, MEASURED), "--page", str(PAGE), "--check"]) == 0, (
        f"regenerate it: python -m reports.perf_table {names} --page {PAGE_NAME}")
