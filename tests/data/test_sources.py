"""Every dataset source on real data or on small files written here in the real format,
and every bad input refused with one line naming the file or folder."""

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.data.cifar import CIFAR10, CIFAR100, read_cifar_batch
from benchmarks.data.dataset import DataError, DataRequest
from benchmarks.data.sources import input_shape, load_dataset
from tests.helpers import REPO
from tests.helpers.files import write_folder


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Folder caches and Keras' cache in this test's own directory."""
    monkeypatch.setenv("ARCHBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))


# CIFAR: the upstream "python version" batches, pickled as the upstream files are.

def write_cifar(directory, spec, per_file=20, classes=10):
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in (*spec.train_files, spec.test_file):
        batch = {b"data": rng.integers(0, 256, (per_file, 3072), dtype=np.uint8),
                 spec.label_key: [i % classes for i in range(per_file)],
                 b"batch_label": b"x", b"filenames": [b"f"] * per_file}
        (directory / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {spec.names_key: [f"class{i}".encode() for i in range(classes)]}
    (directory / spec.meta_file).write_bytes(pickle.dumps(meta, protocol=2))


@pytest.mark.parametrize("spec,classes", [(CIFAR10, 10), (CIFAR100, 100)])
def test_cifar_batches_load_as_32x32_rgb(tmp_path, spec, classes):
    write_cifar(tmp_path / spec.folder, spec, per_file=classes * 2, classes=classes)
    dataset = load_dataset(DataRequest(spec.name, tmp_path))  # the folder inside --data-dir
    train_files = len(spec.train_files)
    assert dataset.x_train.shape == (classes * 2 * train_files, 32, 32, 3)
    assert dataset.x_test.shape == (classes * 2, 32, 32, 3) and dataset.num_classes == classes
    assert dataset.class_names[1] == "class1"
    raw = pickle.loads((tmp_path / spec.folder / spec.test_file).read_bytes())[b"data"]
    # channel-first rows of 3 x 1024 become height x width x channels
    assert dataset.x_test[0, 0, 1, 2] == raw[0, 2 * 1024 + 1]
    assert set(dataset.checksums) == {*spec.train_files, spec.test_file, spec.meta_file}


def test_a_cifar_batch_that_names_other_code_is_refused_not_run(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Exploit(), b"labels": []}, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_1: not a CIFAR batch file \(refused to "
                                        r"load __builtin__.print\)"):  # protocol 2 spelling
        read_cifar_batch(path, (b"data", b"labels"))


def test_a_cifar_folder_without_its_batches_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"data directory .*empty lacks the cifar10 batches"):
        load_dataset(DataRequest("cifar10", tmp_path / "empty"))


# digits: scikit-learn's bundled real data.

def test_digits_are_real_8x8_images_with_a_carved_stratified_test_split():
    dataset = load_dataset(DataRequest("digits", test_fraction=0.2), seed=3)
    assert dataset.x_train.shape[1:] == (8, 8, 1) and dataset.x_train.dtype == np.float32
    assert len(dataset.y_train) + len(dataset.y_test) == 1797
    assert len(dataset.y_test) == round(1797 * 0.2)
    assert 0.0 <= dataset.x_train.min() and dataset.x_train.max() == 1.0
    assert np.bincount(dataset.y_test).min() >= 35, "every class is in the test split"
    again = load_dataset(DataRequest("digits", test_fraction=0.2), seed=3)
    np.testing.assert_array_equal(again.y_test, dataset.y_test)
    other = load_dataset(DataRequest("digits", test_fraction=0.2), seed=4)
    assert dataset.checksums != other.checksums, "the carved split is part of the fingerprint"


# npz: arrays from one file, loaded without pickle.

def test_npz_arrays_load_with_class_names_and_a_channel_axis(tmp_path):
    path = tmp_path / "mine.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 256, (30, 12, 10), dtype=np.uint8),
             y_train=np.arange(30) % 3, x_test=rng.integers(0, 256, (9, 12, 10), dtype=np.uint8),
             y_test=np.arange(9) % 3, class_names=np.array(["cat", "dog", "eel"]))
    dataset = load_dataset(DataRequest("npz", path))
    assert dataset.name == "mine" and dataset.class_names == ("cat", "dog", "eel")
    assert dataset.image_shape == (12, 10, 1)
    assert input_shape(DataRequest("npz", path)) == ((12, 10, 1), 3)


@pytest.mark.parametrize("arrays,message", [
    ({"x_train": np.zeros((4, 8, 8)), "y_train": np.zeros(4, int)}, "lacks x_test, y_test"),
    ({"x_train": np.zeros((4, 8, 8)), "y_train": np.zeros(3, int), "x_test": np.zeros((2, 8, 8)),
      "y_test": np.zeros(2, int)}, "x_train has 4 images but y_train 3 labels"),
    ({"x_train": np.zeros((4, 8, 8)), "y_train": np.array([0, 1, 2, 7]),
      "x_test": np.zeros((2, 8, 8)), "y_test": np.array([0, -1])}, "test labels reach -1"),
    ({"x_train": np.full((4, 8, 8), np.nan), "y_train": np.array([0, 1, 0, 1]),
      "x_test": np.zeros((2, 8, 8)), "y_test": np.array([0, 1])},
     "x_train holds 256 non-finite values"),
])
def test_bad_npz_files_are_named(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset(DataRequest("npz", path))


@pytest.mark.parametrize("x_train,y_train,message", [
    (np.full((4, 8, 8), 255.0), np.array([0, 1, 0, 1]), "holds floats from 255 to 255; images must"),
    (np.zeros((4, 8, 8), np.uint16), np.array([0, 1, 0, 1]), "x_train holds uint16"),
    (np.zeros((4, 3, 8, 8), np.uint8), np.array([0, 1, 0, 1]), "looks channels-first"),
    (np.zeros((4, 8, 8), np.uint8), np.array(["cat", "dog", "cat", "dog"]),
     "y_train holds <U3 values; labels must be integers"),
    (np.zeros(()), np.zeros(4, int), r"x_train has shape \(\) and y_train \(4,\)"),
])
def test_npz_arrays_of_the_wrong_kind_are_named(tmp_path, x_train, y_train, message):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=np.zeros((2, 8, 8), np.uint8),
             y_test=np.array([0, 1]))
    with pytest.raises(DataError, match=message):
        load_dataset(DataRequest("npz", path))


def test_mnist_is_read_from_the_npz_keras_downloads(tmp_path):
    rng = np.random.default_rng(0)
    cache = tmp_path / "keras" / "datasets"  # KERAS_HOME is tmp_path/keras (own_cache)
    cache.mkdir(parents=True)
    np.savez(cache / "mnist.npz", x_train=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
             y_train=np.arange(50) % 10, x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
             y_test=np.arange(20) % 10)
    dataset = load_dataset(DataRequest("mnist"))
    assert dataset.name == "mnist" and dataset.class_names == tuple("0123456789")
    assert dataset.x_train.shape == (50, 28, 28, 1) and set(dataset.checksums) == {"mnist.npz"}


def test_an_npz_that_needs_pickle_is_refused(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, x_train=np.array([object()], dtype=object))
    with pytest.raises(DataError, match=r"objects.npz: not a readable .npz file"):
        load_dataset(DataRequest("npz", path))


# folder: the user's own images.



def test_a_folder_of_pngs_and_jpegs_loads_with_class_names_from_its_folders(tmp_path, fashion):
    write_folder(tmp_path / "shop", fashion, per_class=10, fmt="png")
    write_folder(tmp_path / "shop", fashion, per_class=5, classes=(0,), fmt="jpg")
    notices = []
    dataset = load_dataset(DataRequest("folder", tmp_path / "shop", test_fraction=0.2), seed=0,
                           notice=notices.append)
    assert dataset.name == "shop" and dataset.class_names == ("Pullover", "T-shirt-top", "Trouser")
    assert dataset.image_shape == (28, 28, 1), "grey images stay one channel"
    assert len(dataset.y_train) + len(dataset.y_test) == 35 and len(dataset.y_test) == 7
    assert len(notices) == 1 and notices[0].startswith("archbench: decoding 35 images of ")
    # the pixels are the real images' (PNG is lossless)
    first_png = np.asarray(Image.open(tmp_path / "shop" / "Pullover" / "img0.png"))
    stored = np.concatenate([dataset.x_train, dataset.x_test])[..., 0]
    assert any(np.array_equal(first_png, img) for img in stored)


def test_a_folder_with_train_and_test_rgb_images_of_two_sizes(tmp_path, fashion):
    write_folder(tmp_path / "d", fashion, split="train", rgb=True, size=(32, 32))
    write_folder(tmp_path / "d", fashion, split="test", rgb=True, size=(32, 32), per_class=2)
    write_folder(tmp_path / "d", fashion, split="train", rgb=True, size=(40, 48), per_class=1,
                 classes=(1,), fmt="bmp")
    notices = []
    dataset = load_dataset(DataRequest("folder", tmp_path / "d"), notice=notices.append)
    assert dataset.image_shape == (32, 32, 3) and len(dataset.y_test) == 6
    assert "have 2 sizes; 24 of 25 are 32x32" in notices[0] and "--image-size" in notices[0]
    assert notices[1].startswith("archbench: decoding 25 images")
    resized = load_dataset(DataRequest("folder", tmp_path / "d", image_size=(16, 20)))
    assert resized.image_shape == (16, 20, 3)


def test_a_folder_is_decoded_once_and_a_changed_image_changes_its_fingerprint(
    tmp_path, fashion, monkeypatch
):
    from benchmarks.data import folders

    write_folder(tmp_path / "d", fashion)
    first = load_dataset(DataRequest("folder", tmp_path / "d"))
    real_decode = folders._decode_into

    def must_not_decode(*args):
        raise AssertionError("decoded again although the cache holds these images")

    monkeypatch.setattr(folders, "_decode_into", must_not_decode)
    again = load_dataset(DataRequest("folder", tmp_path / "d"))
    assert again.checksums == first.checksums
    np.testing.assert_array_equal(again.x_train, first.x_train)
    monkeypatch.setattr(folders, "_decode_into", real_decode)
    Image.new("L", (28, 28), 255).save(tmp_path / "d" / "Trouser" / "img0.png")
    changed = load_dataset(DataRequest("folder", tmp_path / "d"))
    assert changed.checksums["images"] != first.checksums["images"]
    assert len([p for p in folders.cache_root().iterdir() if p.is_dir()]) == 2, "a second cache"
    resized = load_dataset(DataRequest("folder", tmp_path / "d", image_size=(14, 14)))
    assert resized.checksums["image shape"] == "14x14x1" != changed.checksums["image shape"]


def test_half_decoded_copies_of_dead_processes_are_removed_others_kept(tmp_path, fashion):
    import os
    import socket
    import subprocess

    from benchmarks.data import folders

    write_folder(tmp_path / "d", fashion)
    first = load_dataset(DataRequest("folder", tmp_path / "d"))
    cache = Path(first.source.split("(cache ")[1].rstrip(")"))
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs
    host = socket.gethostname()
    dead = cache.parent / f".{cache.name}.{host}.{gone.pid}.abc_1"
    live = cache.parent / f".{cache.name}.{host}.{os.getpid()}.abc_2"
    elsewhere = cache.parent / f".{cache.name}.other-host.{gone.pid}.abc_3"
    for work in (dead, live, elsewhere):
        (work / "train").mkdir(parents=True)
    folders.shutil.rmtree(cache)  # decode again: the abandoned copies are looked at then
    load_dataset(DataRequest("folder", tmp_path / "d"))
    assert not dead.exists(), "left by a killed decoder: removed"
    assert live.exists() and elsewhere.exists(), "a live decoder's, another host's: kept"
    assert (cache / "done.json").is_file()


def test_sixteen_bit_grey_images_are_scaled_not_clipped(tmp_path):
    for c, value in (("dark", 1000), ("light", 35000)):
        (tmp_path / "d" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((6, 6), value, np.uint16)).save(tmp_path / "d" / c / f"{i}.png")
    dataset = load_dataset(DataRequest("folder", tmp_path / "d", test_fraction=0.34))
    pixels = np.concatenate([dataset.x_train, dataset.x_test])
    assert dataset.image_shape == (6, 6, 1)
    assert set(np.unique(pixels)) == {round(1000 / 257), round(35000 / 257)}


def test_an_exif_rotated_photo_is_decoded_as_a_viewer_shows_it(tmp_path):
    for c in ("a", "b"):
        (tmp_path / "d" / c).mkdir(parents=True)
        for i in range(3):
            image = Image.new("RGB", (40, 20), (200, 10, 10))  # stored 40 wide, 20 high
            exif = Image.Exif()
            exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
            image.save(tmp_path / "d" / c / f"{i}.jpg", exif=exif)
    dataset = load_dataset(DataRequest("folder", tmp_path / "d", test_fraction=0.34))
    assert dataset.image_shape == (40, 20, 3), "viewed: 20 wide, 40 high"


@pytest.mark.parametrize("layout,message", [
    (("train/a", "train/b", "val/a", "val/b"), r"holds train, val/: give exactly train/ and test/"),
    (("train/a", "train/b"), r"holds train/: give exactly train/ and test/"),
])
def test_split_folders_other_than_train_and_test_are_refused(tmp_path, layout, message):
    for folder in layout:
        (tmp_path / "d" / folder).mkdir(parents=True)
        Image.new("L", (4, 4)).save(tmp_path / "d" / folder / "x.png")
    with pytest.raises(DataError, match=message):
        load_dataset(DataRequest("folder", tmp_path / "d"))


@pytest.mark.parametrize("make,message", [
    (lambda d: d.mkdir(), "holds no class folders"),
    (lambda d: (d / "only").mkdir(parents=True) or Image.new("L", (4, 4)).save(d / "only/a.png"),
     r"holds one class \(only\)"),
    (lambda d: [(d / c).mkdir(parents=True) for c in ("a", "b")]
     and Image.new("L", (4, 4)).save(d / "a/x.png"), r"class folder .*/b holds no images"),
    (lambda d: [(d / c).mkdir(parents=True) for c in ("a", "b")]
     and [Image.new("L", (4, 4)).save(d / f"{c}/x.png") for c in ("a", "b")]
     and (d / "a/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
     and (d / "b/broken.jpg").write_bytes(b"nope"),
     r"cannot read image .*/a/broken.png: .* \(and 1 more unreadable image\(s\)\)"),
])
def test_bad_folders_are_named(tmp_path, make, message):
    make(tmp_path / "d")
    with pytest.raises(DataError, match=message):
        load_dataset(DataRequest("folder", tmp_path / "d"))


def test_a_truncated_image_is_named(tmp_path, fashion):
    write_folder(tmp_path / "d", fashion)
    victim = tmp_path / "d" / "Trouser" / "img3.png"
    victim.write_bytes(victim.read_bytes()[:-60])
    with pytest.raises(DataError, match=r"cannot read image .*Trouser/img3.png"):
        load_dataset(DataRequest("folder", tmp_path / "d"))


@pytest.mark.slow
def test_a_folder_benchmark_end_to_end_reads_its_cache_and_refuses_changed_images(tmp_path, fashion):
    import json

    from benchmarks import rundir
    from tests.helpers.commands import archbench

    write_folder(tmp_path / "shop", fashion, per_class=40)
    root = REPO
    argv = ["run", "--dataset", "folder", "--data-dir", str(tmp_path / "shop"), "--budget",
            "smoke", "-a", "mlp", "-o", str(tmp_path / "runs"), "--wandb-mode", "offline"]
    first = archbench(*argv, cwd=root)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "decoding 120 images of" in first.stdout
    run_dir = tmp_path / "runs" / "shop-smoke"
    board = (run_dir / rundir.LEADERBOARD).read_text()
    assert "- **Classes**: Pullover, T-shirt-top, Trouser; images 28x28x1" in board
    manifest = json.loads((run_dir / rundir.MANIFEST).read_text())
    assert manifest["dataset"]["name"] == "shop"
    assert len(manifest["dataset"]["checksums"]["images"]) == 64
    predictions = rundir.read_rows(rundir.predictions_path(run_dir, "mlp"))
    assert {p["label_name"] for p in predictions} == {"Pullover", "T-shirt-top", "Trouser"}
    [matrix] = (run_dir / rundir.WANDB_DIR / "wandb").glob(
        "offline-run-*/files/media/table/test/confusion_matrix_table_*.table.json")
    names = {row[0] for row in json.loads(matrix.read_text())["data"]}  # the "Actual" column
    assert names == {"Pullover", "T-shirt-top", "Trouser"}, "W&B's confusion matrix names them"

    second = archbench(*argv, cwd=root)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "decoding" not in second.stdout and "already finished, skipped" in second.stdout

    Image.new("L", (28, 28), 255).save(tmp_path / "shop" / "Trouser" / "img0.png")
    third = archbench(*argv, cwd=root)
    assert third.returncode == 2
    assert "was made from other dataset files" in third.stderr


@pytest.mark.slow
def test_several_datasets_in_one_run_end_with_the_cross_dataset_report(tmp_path, fashion):
    from benchmarks import rundir
    from tests.helpers.commands import archbench

    write_folder(tmp_path / "shop", fashion, per_class=40, classes=tuple(range(10)))
    done = archbench("run", "--dataset", "digits", "folder", "--data-dir", "-", str(tmp_path / "shop"),
                     "--budget", "smoke", "-a", "mlp", "-o", str(tmp_path / "runs"),
                     "--wandb-mode", "offline", cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("digits-smoke", "shop-smoke"):
        [row] = rundir.read_rows(tmp_path / "runs" / name / rundir.RESULTS)
        assert row["status"] == "ok"
    across = tmp_path / "runs" / "across-datasets-smoke" / "across-datasets.md"
    assert f"cross-dataset report written to {across}" in done.stdout
    text = across.read_text()
    assert "2 dataset(s): digits, shop" in text and "| mlp " in text
