"""Streamed splits: lazy rows of a memory-mapped cache, read batch by batch while training."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks.data import rows as rows_module
from benchmarks.data.dataset import Dataset
from benchmarks.data.rows import STREAM_SHARE, Rows, should_stream, to_float
from benchmarks.data.splits import make_splits
from tests.helpers import REPO


@pytest.fixture
def cached(tmp_path):
    """A small uint8 image array on disk, memory-mapped as a folder's cache is."""
    rng = np.random.default_rng(0)
    path = tmp_path / "x.npy"
    np.save(path, rng.integers(0, 256, (50, 6, 5, 3), dtype=np.uint8))
    return np.load(path, mmap_mode="r")


def test_rows_compose_like_numpy_indexing_and_scale_to_floats(cached):
    outer = np.array([40, 3, 17, 3, 9, 0, 49])
    inner = np.array([6, 0, 2, 5])
    lazy = Rows(cached, outer).take(inner)
    assert isinstance(lazy.source, np.memmap), "no copy: the rows keep the memory map"
    assert lazy.shape == (4, 6, 5, 3) and lazy.dtype == np.uint8 and len(lazy) == 4
    np.testing.assert_array_equal(np.asarray(lazy), cached[outer][inner])
    np.testing.assert_array_equal(lazy[1], cached[40])
    np.testing.assert_array_equal(lazy[1:3], cached[outer][inner][1:3])
    floats = lazy.floats()
    assert floats.dtype == np.float32 and floats.nbytes == 4 * 6 * 5 * 3 * 4
    np.testing.assert_array_equal(floats[::-1], to_float(cached[outer][inner][::-1]))
    assert floats[0].max() <= 1.0


def test_auto_streams_only_splits_larger_than_the_memory_share():
    gib = 2**30
    assert not should_stream("auto", int(STREAM_SHARE * 8 * gib), 8 * gib)
    assert should_stream("auto", int(STREAM_SHARE * 8 * gib) + 1, 8 * gib)
    assert not should_stream("auto", 100 * gib, None), "unknown memory: keep today's path"
    assert should_stream("stream", 1, 8 * gib) and not should_stream("memory", 100 * gib, gib)
    with pytest.raises(ValueError, match="unknown input mode 'disk'"):
        should_stream("disk", 1, gib)


def _dataset(cached) -> Dataset:
    labels = np.arange(50) % 5
    return Dataset("cache", tuple("abcde"), Rows(cached, np.arange(40)), labels[:40],
                   Rows(cached, np.arange(40, 50)), labels[40:], source="test")


def test_streamed_splits_hold_the_same_images_as_the_in_memory_ones(cached):
    dataset = _dataset(cached)
    memory = make_splits(dataset, 8, 20, 0, seed=1, input_mode="memory")
    streamed = make_splits(dataset, 8, 20, 0, seed=1, input_mode="stream")
    assert streamed.streamed and not memory.streamed
    for name in ("x_tune", "x_val", "x_final", "x_test"):
        lazy = getattr(streamed, name)
        assert isinstance(lazy, Rows) and isinstance(lazy.source, np.memmap), name
        np.testing.assert_array_equal(np.asarray(lazy), getattr(memory, name))
    for name in ("y_tune", "y_val", "y_final", "y_test"):
        np.testing.assert_array_equal(getattr(streamed, name), getattr(memory, name))
    assert streamed.image_shape == (6, 5, 3) and streamed.sizes() == memory.sizes()


def test_auto_streams_with_a_notice_when_memory_is_short(cached, monkeypatch):
    monkeypatch.setattr("benchmarks.data.splits.available_memory", lambda: 1000)
    notices = []
    splits = make_splits(_dataset(cached), 8, 20, 0, seed=1, notice=notices.append)
    assert splits.streamed and isinstance(splits.x_final, Rows)
    assert len(notices) == 1 and "training reads them batch by batch" in notices[0]
    assert "--input memory" in notices[0]
    monkeypatch.setattr("benchmarks.data.splits.available_memory", lambda: 2**40)
    assert not make_splits(_dataset(cached), 8, 20, 0, seed=1, notice=notices.append).streamed


def _mem_available() -> int:
    """MemAvailable of /proc/meminfo, in bytes."""
    line = next(line for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemAvailable:"))
    return int(line.split()[1]) * 1024


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="a Linux machine's /proc")
def test_available_memory_here_is_the_kernels_figure_or_the_cgroups_smaller_one():
    def expected():  # the kernel's figure, or what the cgroup leaves where that is less
        left = rows_module._cgroup_memory_left(Path("/proc"), Path("/sys/fs/cgroup"))
        return min(_mem_available(), left if left is not None else math.inf)

    before = expected()
    available = rows_module.available_memory()
    after = expected()
    assert isinstance(available, int) and available > 0
    # other processes allocate meanwhile: within a tenth of the figures read either side
    assert 0.9 * min(before, after) <= available <= 1.1 * max(before, after)


def _machine(tmp_path, cgroup_line, files):
    proc, cgroups = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text("MemTotal: 25000000 kB\nMemAvailable: 20000000 kB\n")
    (proc / "self" / "cgroup").write_text(cgroup_line + "\n")
    for name, text in files.items():
        (cgroups / name).parent.mkdir(parents=True, exist_ok=True)
        (cgroups / name).write_text(text)
    return proc, cgroups


@pytest.mark.parametrize(("cgroup_line", "files", "expected"), [
    ("4:memory:/job", {"memory/job/memory.limit_in_bytes": "3000000000",
                       "memory/job/memory.usage_in_bytes": "1000000000"}, 2_000_000_000),
    ("0::/job", {"job/memory.max": "3000000000", "job/memory.current": "500000000"}, 2_500_000_000),
    ("0::/job", {"memory.max": "1000", "memory.current": "400"}, 600),  # namespace: the root
    ("0::/job", {"job/memory.max": "max", "job/memory.current": "5"}, 20_000_000 * 1024),
    ("4:memory:/", {"memory/memory.limit_in_bytes": str(2**63 - 4096),
                    "memory/memory.usage_in_bytes": "1"}, 20_000_000 * 1024),
    ("1:cpu:/x", {}, 20_000_000 * 1024),
])
def test_available_memory_is_the_smaller_of_the_machine_and_its_cgroup(tmp_path, cgroup_line,
                                                                      files, expected):
    proc, cgroups = _machine(tmp_path, cgroup_line, files)
    assert rows_module.available_memory(proc, cgroups) == expected


def test_available_memory_without_memavailable_is_the_free_pages_and_else_unknown(tmp_path,
                                                                                 monkeypatch):
    proc, cgroups = _machine(tmp_path, "0::/job", {"job/memory.max": "max"})
    (proc / "meminfo").write_text("MemTotal: 25000000 kB\nMemFree: 1000 kB\n")  # an old kernel
    pages = {"SC_AVPHYS_PAGES": 300, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(rows_module.os, "sysconf", lambda name: pages[name])
    assert rows_module.available_memory(proc, cgroups) == 300 * 4096
    (cgroups / "job" / "memory.max").write_text("1000000")
    (cgroups / "job" / "memory.current").write_text("999000")
    assert rows_module.available_memory(proc, cgroups) == 1000, "the cgroup leaves less"
    (cgroups / "job" / "memory.current").write_text("2000000")
    assert rows_module.available_memory(proc, cgroups) == 0, "over its limit: nothing left"

    def unknown(name):
        raise ValueError(name)

    monkeypatch.setattr(rows_module.os, "sysconf", unknown)
    (proc / "meminfo").unlink()
    (cgroups / "job" / "memory.max").write_text("max")
    assert rows_module.available_memory(proc, cgroups) is None


def epoch_orders(images, labels, batch_size, seed, epochs=3):
    """The labels each training epoch reads, checking that every image matches its label."""
    from benchmarks.data.streaming import Batches

    np.random.seed(seed)  # what the trial's seed does
    batches = Batches(images, labels, batch_size=batch_size, shuffle=True)
    seen = []
    for _ in range(epochs):
        order = []
        for i in range(len(batches)):
            x, y = batches[i]
            assert len(y) == batch_size, "training batches are all full"
            np.testing.assert_array_equal(x, np.asarray(images)[y])  # images match labels
            order += y.tolist()
        batches.on_epoch_end()
        seen.append(order)
    return seen


@pytest.mark.parametrize("source", ["array", "rows"])
def test_each_epoch_reads_a_new_permutation_fixed_by_the_seed(cached, source):
    images = Rows(cached).floats()
    images = np.asarray(images)[:48] if source == "array" else images.take(np.arange(48))
    labels = np.arange(48)
    first = epoch_orders(images, labels, 8, seed=7)
    for order in first:
        assert sorted(order) == list(range(48)), "each epoch is a permutation of every image"
    assert len({tuple(order) for order in first}) == 3, "a new order each epoch"
    assert epoch_orders(images, labels, 8, seed=7) == first, "the trial's seed fixes the order"
    assert epoch_orders(images, labels, 8, seed=8) != first, "another seed, another order"


def test_streamed_and_in_memory_splits_are_read_in_the_same_batches(cached):
    lazy = Rows(cached).floats()
    labels = np.arange(50)
    assert epoch_orders(lazy, labels, 8, seed=5) == epoch_orders(np.asarray(lazy), labels, 8, seed=5)


def test_the_images_left_over_by_whole_batches_change_from_epoch_to_epoch(cached):
    images, labels = np.asarray(Rows(cached).floats()), np.arange(50)
    orders = epoch_orders(images, labels, 8, seed=3, epochs=6)  # 6 batches: 48 of 50 images
    assert all(len(set(order)) == 48 for order in orders)
    left_out = [frozenset(range(50)) - set(order) for order in orders]
    assert len(set(left_out)) > 1, "not the same two images every epoch"
    from benchmarks.data.streaming import Batches

    few = Batches(images[:5], labels[:5], batch_size=8, shuffle=True)  # fewer than a batch
    assert len(few) == 1 and sorted(few[0][1]) == [0, 1, 2, 3, 4]


def test_validation_and_prediction_batches_cover_every_image_in_order(cached):
    from benchmarks.data.streaming import Batches

    images = Rows(cached).floats()
    plain = Batches(images, None, batch_size=8)
    assert len(plain) == 7 and plain[6].shape == (2, 6, 5, 3)
    np.testing.assert_array_equal(np.concatenate([plain[i] for i in range(7)]), np.asarray(images))


def test_fit_arguments_turn_rows_and_other_backends_arrays_into_batches(cached, monkeypatch):
    from benchmarks.data.streaming import Batches, fit_arguments
    from benchmarks.runtime import backends

    arrays = np.zeros((40, 6, 5, 3), np.float32)
    for x, backend in ((Rows(cached).floats(), backends.TENSORFLOW), (arrays, backends.JAX)):
        monkeypatch.setattr(backends, "current", lambda backend=backend: backend)
        y = np.zeros(len(x), int)
        args, kwargs = fit_arguments((x, y), {"validation_data": (x, y), "epochs": 2,
                                              "batch_size": 99}, 16)
        assert len(args) == 1 and isinstance(args[0], Batches) and args[0].shuffle
        assert args[0].images is x and len(args[0]) == len(x) // 16
        assert isinstance(kwargs["validation_data"], Batches) and not kwargs["validation_data"].shuffle
        assert kwargs == {"validation_data": kwargs["validation_data"], "epochs": 2, "shuffle": False}


def pipeline_orders(images, labels, seed, epochs=3):
    """The labels each epoch of ``tensorflow_pipeline`` reads (batch 8), checking that every
    image matches its label and that every batch is full."""
    from benchmarks.data.streaming import fit_arguments

    np.random.seed(seed)  # what the trial's seed does
    args, kwargs = fit_arguments((images, labels), {}, 8)
    read, seen = iter(args[0]), []
    for _ in range(epochs):
        order = []
        for _ in range(kwargs["steps_per_epoch"]):
            x, y = (part.numpy() for part in next(read))
            assert len(y) == 8, "training batches are all full"
            np.testing.assert_array_equal(x, images[y])
            order += y.tolist()
        seen.append(order)
    return seen


def test_arrays_on_tensorflow_reach_fit_as_a_pipeline_of_whole_shuffled_batches():
    import tensorflow as tf

    from benchmarks.data.streaming import fit_arguments

    images = np.random.default_rng(0).random((50, 6, 5, 3), dtype=np.float32)
    labels = np.arange(50)
    args, kwargs = fit_arguments((images, labels), {"validation_data": (images, labels),
                                                    "batch_size": 99}, 8)
    assert isinstance(args[0], tf.data.Dataset)
    # freeing an autotuned pipeline's iterator waits for its thread (streaming.py says why)
    assert args[0].options().autotune.enabled is False, "no autotuning thread"
    assert kwargs == {"validation_data": (images, labels), "validation_batch_size": 8,
                      "steps_per_epoch": 6, "shuffle": False}
    first = pipeline_orders(images, labels, seed=7)
    assert all(len(set(order)) == 48 for order in first), "48 distinct images an epoch"
    assert len({tuple(order) for order in first}) == 3, "a new order each epoch"
    left_out = {frozenset(range(50)) - set(order) for order in first}
    assert len(left_out) > 1, "not the same two images every epoch"
    assert pipeline_orders(images, labels, seed=7) == first, "the trial's seed fixes the order"
    assert pipeline_orders(images, labels, seed=8) != first, "another seed, another order"


def test_a_tensorflow_training_on_arrays_never_calls_python(monkeypatch):
    import keras

    from benchmarks.data.streaming import Batches, fit_arguments

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 5, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(5, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    images, labels = np.zeros((40, 6, 5, 3), np.float32), np.arange(40) % 5
    args, kwargs = fit_arguments((images, labels), {"validation_data": (images, labels)}, 16)

    def python(self, *args):
        raise AssertionError("the training pipeline called Python")

    for method in ("__getitem__", "epoch_order", "on_epoch_end"):
        monkeypatch.setattr(Batches, method, python)
    history = model.fit(*args, epochs=3, verbose=0, **kwargs)
    assert len(history.history["val_loss"]) == 3


def test_a_model_trains_and_predicts_the_same_from_streamed_rows(cached):
    import keras

    from benchmarks.data.streaming import fit_arguments, predict

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 5, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(5, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    lazy, labels = Rows(cached).floats(), np.arange(50) % 5
    args, kwargs = fit_arguments((lazy, labels), {"validation_data": (lazy, labels)}, 16)
    history = model.fit(*args, epochs=2, verbose=0, **kwargs)
    assert len(history.history["val_accuracy"]) == 2
    np.testing.assert_allclose(predict(model, lazy, 16), predict(model, np.asarray(lazy), 16),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_streamed_folder_benchmark_completes_and_records_its_input(tmp_path, fashion):
    from benchmarks import rundir
    from tests.helpers.commands import archbench
    from tests.helpers.files import write_folder

    write_folder(tmp_path / "shop", fashion, per_class=40)
    argv = ["run", "--dataset", "folder", "--data-dir", str(tmp_path / "shop"), "--budget",
            "smoke", "-a", "simple_cnn", "-o", str(tmp_path / "runs"), "--wandb-mode", "offline",
            "--input", "stream"]
    done = archbench(*argv, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "runs" / "shop-smoke"
    manifest = json.loads((run_dir / rundir.MANIFEST).read_text())
    assert manifest["dataset"]["input"] == "streamed"
    trials = rundir.read_rows(run_dir / rundir.TRIALS)
    assert trials and {t["status"] for t in trials} == {"COMPLETED"}
    [result] = rundir.read_rows(run_dir / rundir.RESULTS)
    assert result["status"] == "ok" and 0.0 < float(result["test_accuracy"]) <= 1.0
    predictions = rundir.read_rows(rundir.predictions_path(run_dir, "simple_cnn"))
    assert len(predictions) == manifest["dataset"]["split_sizes"]["test"]


def test_a_split_is_copied_for_tensorflow_once_and_let_go_with_its_arrays():
    import gc

    from benchmarks.data import streaming

    images, labels = np.random.default_rng(1).random((40, 6, 5, 3), dtype=np.float32), np.arange(40)
    key = (id(images), id(labels))
    first = streaming.hold(images, labels)
    assert streaming.hold(images, labels) is first, "one copy for every training of the split"
    np.testing.assert_array_equal(first[0].numpy(), images)
    np.testing.assert_array_equal(first[1].numpy(), labels)
    del images, first
    gc.collect()
    assert key not in streaming._HELD, "the copy goes with the split"


def test_prepare_copies_a_split_only_where_the_tensorflow_pipeline_will_read_it(monkeypatch):
    from benchmarks.data import streaming
    from benchmarks.runtime import backends

    images, labels = np.zeros((12, 4, 4, 1), np.float32), np.arange(12)
    lazy = Rows(images)
    key = (id(images), id(labels))
    streaming.prepare(lazy, labels)
    assert (id(lazy), id(labels)) not in streaming._HELD, "a streamed split is read as Batches"
    monkeypatch.setattr(backends, "current", lambda: backends.JAX)
    streaming.prepare(images, labels)
    assert key not in streaming._HELD, "JAX reads Batches: no TensorFlow copy"
    monkeypatch.undo()
    streaming.prepare(images, labels)
    assert key in streaming._HELD, "TensorFlow's pipeline reads the copy made here"
