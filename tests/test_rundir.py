"""The run directory's file helpers: safe names, atomic writes, one row per key."""

from pathlib import Path

import pytest

from benchmarks import rundir


@pytest.mark.parametrize("name", ["../../etc/passwd", "/abs/path", "..", "a/../../b", "x\\..\\y", ""])
def test_safe_name_cannot_leave_its_directory(tmp_path, name):
    cleaned = rundir.safe_name(name)
    assert cleaned and "/" not in cleaned and "\\" not in cleaned and cleaned not in (".", "..")
    assert (tmp_path / cleaned).resolve().parent == tmp_path.resolve()


def test_safe_name_keeps_ordinary_names():
    assert rundir.safe_name("fashion_mnist-quick.v2") == "fashion_mnist-quick.v2"


def test_upsert_replaces_the_row_with_the_same_key(tmp_path):
    path = tmp_path / "t.csv"
    rundir.upsert_row(path, ["a", "b", "v"], {"a": 1, "b": "x", "v": 1}, ["a", "b"])
    rundir.upsert_row(path, ["a", "b", "v"], {"a": 2, "b": "x", "v": 2}, ["a", "b"])
    rundir.upsert_row(path, ["a", "b", "v"], {"a": 1, "b": "x", "v": 3}, ["a", "b"])
    rows = rundir.read_rows(path)
    assert [(r["a"], r["v"]) for r in rows] == [("2", "2"), ("1", "3")]


def test_atomic_write_leaves_no_temporary_file_and_keeps_old_content_on_failure(tmp_path):
    path = tmp_path / "f.txt"
    rundir.atomic_write_text(path, "old")

    with pytest.raises(TypeError):
        rundir.atomic_write_text(path, 12345)  # not text: the write fails midway
    assert path.read_text() == "old"
    assert [p.name for p in Path(tmp_path).iterdir()] == ["f.txt"]


def test_nothing_reads_results_with_pickle_or_eval():
    """Only CIFAR's upstream batch files are pickles; they are read with an unpickler that
    refuses every class but NumPy's arrays (tests/data/test_sources.py checks it)."""
    root = Path(__file__).parents[1]
    sources = [p for d in ("benchmarks", "models", "reports") for p in (root / d).rglob("*.py")]
    assert sources
    restricted = root / "benchmarks" / "data" / "cifar.py"
    assert "class _ArraysOnly(pickle.Unpickler)" in restricted.read_text()
    for path in sources:
        text = path.read_text()
        allowed = {"import pickle"} if path == restricted else set()
        for forbidden in {"import pickle", "pickle.load", "eval(", "allow_pickle=True"} - allowed:
            assert forbidden not in text, f"{path.name} uses {forbidden}"


def test_the_machine_record_names_what_measurements_depend_on():
    from benchmarks.run.manifest import MACHINE_FIELDS, environment, machine

    env = environment()
    assert "keras" in env["packages"] and "tensorflow" in env["packages"]
    assert {"intra_op", "inter_op"} <= set(env["threads"]) and "cuda" in env
    digest, record = machine({"gpus": 0, "xla": False})
    assert len(digest) == 12 and set(record) == {*MACHINE_FIELDS, "accelerator"}
    assert machine({"gpus": 0, "xla": False})[0] == digest
    assert machine({"gpus": 0, "xla": True})[0] != digest, "the settings in effect count"


def test_the_split_indices_have_a_hash_that_the_seed_decides(fashion):
    from benchmarks.data.splits import make_splits

    first, again, other = (make_splits(fashion, 500, 1000, 1000, seed, notice=lambda _: None)
                           for seed in (0, 0, 1))
    assert len(first.index_hash) == 64 and first.index_hash == again.index_hash
    assert other.index_hash != first.index_hash
