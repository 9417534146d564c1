"""Data: the real Fashion-MNIST files, the stratified split, and refusal of bad files."""

import gzip

import numpy as np
import pytest

from benchmarks.data.dataset import DataError, DataRequest, Dataset, check_dataset
from benchmarks.data.sources import (
    FASHION_MNIST,
    MNIST,
    find_idx_dir,
    load_dataset,
    load_idx,
    parse_idx,
)
from benchmarks.data.splits import make_splits, stratified_take
from tests.helpers.files import idx_bytes, write_fake_dataset


def test_real_files_load_with_expected_shapes_and_class_counts(fashion):
    assert fashion.x_train.shape == (60000, 28, 28, 1)
    assert fashion.x_test.shape == (10000, 28, 28, 1)
    assert fashion.name == "fashion_mnist" and fashion.class_names[0] == "T-shirt/top"
    assert np.bincount(fashion.y_train).tolist() == [6000] * 10
    assert np.bincount(fashion.y_test).tolist() == [1000] * 10
    assert set(fashion.checksums) == set(FASHION_MNIST.files.values())
    assert all(len(digest) == 64 for digest in fashion.checksums.values())


@pytest.mark.slow  # three splits of all 70,000 images: seconds
def test_split_is_stratified_disjoint_and_repeatable(fashion):
    a = make_splits(fashion, val_size=1000, train_size=2000, final_train_size=0, seed=3)
    b = make_splits(fashion, val_size=1000, train_size=2000, final_train_size=0, seed=3)
    c = make_splits(fashion, val_size=1000, train_size=2000, final_train_size=0, seed=4)
    assert np.bincount(a.y_val).tolist() == [100] * 10
    assert np.bincount(a.y_tune).tolist() == [200] * 10
    assert a.sizes() == {"tune": 2000, "validation": 1000, "final_train": 59000, "test": 10000}
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_val, c.x_val)
    # No validation image is in the training split (compare raw bytes of every image).
    val_keys = {img.tobytes() for img in a.x_val}
    assert not any(img.tobytes() in val_keys for img in a.x_final[:5000])
    assert a.x_val.dtype == np.float32 and a.x_val.shape[1:] == (28, 28, 1)
    assert 0.0 <= a.x_val.min() and a.x_val.max() <= 1.0


def test_test_set_is_left_whole(fashion):
    splits = make_splits(fashion, val_size=500, train_size=500, final_train_size=500, seed=0)
    np.testing.assert_array_equal(splits.y_test, fashion.y_test)


def test_stratified_take_rounds_to_the_requested_size():
    labels = np.array([0] * 7 + [1] * 3)
    rng = np.random.default_rng(0)
    idx = stratified_take(labels, 5, rng)
    assert len(idx) == 5
    assert np.bincount(labels[idx]).tolist() == [3, 2] or np.bincount(labels[idx]).tolist() == [4, 1]
    assert len(set(idx.tolist())) == 5


@pytest.mark.slow  # splits of all 70,000 images: seconds
def test_a_budget_larger_than_the_data_is_fitted_with_one_notice(fashion):
    notices = []
    splits = make_splits(fashion, val_size=1000, train_size=59001, final_train_size=0, seed=0,
                         notice=notices.append)
    assert splits.sizes()["tune"] == 59000, "train_size beyond the data means all of it"
    assert notices == ["archbench: the training set has 60,000 images, fewer than the budget "
                       "assumes: train_size 59,001 -> all 59,000"]
    notices.clear()
    splits = make_splits(fashion, val_size=60000, train_size=0, final_train_size=0, seed=0,
                         notice=notices.append)
    assert splits.sizes()["validation"] == 12000, "at most a fifth of the training set"
    assert "val_size 60,000 -> 12,000" in notices[0]
    notices.clear()
    make_splits(fashion, val_size=1000, train_size=2000, final_train_size=0, seed=0,
                notice=notices.append)
    assert notices == [], "a budget that fits says nothing"




def test_parse_idx_roundtrip_plain_and_gzipped():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(images, 0x803)
    np.testing.assert_array_equal(parse_idx(raw, "x"), images)
    np.testing.assert_array_equal(parse_idx(gzip.compress(raw), "x.gz"), images)


def test_wrong_magic_number_is_refused():
    raw = idx_bytes(np.zeros((2, 2, 2)), 0x0000_0B03)
    with pytest.raises(DataError, match="wrong magic number 0x00000b03"):
        parse_idx(raw, "bad-file")


def test_a_labels_file_in_place_of_an_images_file_is_named(tmp_path):
    write_fake_dataset(tmp_path / "fm")
    labels = (tmp_path / "fm" / "train-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "fm" / "train-images-idx3-ubyte.gz").write_bytes(labels)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: wrong magic number "
                       r"0x00000801 \(expected 0x00000803 for images\)"):
        load_idx(FASHION_MNIST, tmp_path / "fm")


def test_truncated_file_is_refused():
    raw = idx_bytes(np.zeros((4, 3, 3)), 0x803)
    with pytest.raises(DataError, match="truncated or corrupt"):
        parse_idx(raw[:-5], "short-file")
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        parse_idx(gzip.compress(raw)[:-10], "short.gz")




def test_data_dir_is_used_first_and_checked(tmp_path):
    write_fake_dataset(tmp_path / "fm")
    dataset = load_dataset(DataRequest("fashion_mnist", tmp_path / "fm"))
    assert isinstance(dataset, Dataset) and dataset.source == str(tmp_path / "fm")


def test_mnist_reads_the_same_idx_format(tmp_path):
    write_fake_dataset(tmp_path / "mnist")
    dataset = load_dataset(DataRequest("mnist", tmp_path / "mnist"))
    assert dataset.name == "mnist" and dataset.class_names == tuple("0123456789")
    assert dataset.x_train.shape == (60000, 28, 28, 1) and dataset.image_shape == MNIST.image_shape


def test_label_out_of_range_is_refused(tmp_path):
    write_fake_dataset(tmp_path / "fm", train_labels=np.full(60000, 12))
    with pytest.raises(DataError, match="train labels reach 12, beyond the 10 classes"):
        load_dataset(DataRequest("fashion_mnist", tmp_path / "fm"))


def test_missing_data_dir_and_missing_files_are_refused(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        find_idx_dir(FASHION_MNIST, tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="lacks train-images-idx3-ubyte.gz"):
        find_idx_dir(FASHION_MNIST, tmp_path / "empty")


def test_keras_cache_comes_before_the_system_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    write_fake_dataset(tmp_path / "keras" / "datasets" / "fashion-mnist")
    assert find_idx_dir(FASHION_MNIST) == tmp_path / "keras" / "datasets" / "fashion-mnist"


def _float_dataset(x_train: np.ndarray) -> Dataset:
    n_test = FASHION_MNIST.counts["test"]
    return Dataset(
        "fashion_mnist", FASHION_MNIST.class_names, x_train[..., None],
        np.arange(len(x_train)) % 10, np.zeros((n_test, 28, 28, 1), np.float32),
        np.arange(n_test) % 10, source="memory",
    )


def test_non_finite_float_images_are_refused_with_the_count(monkeypatch):
    from benchmarks.data import dataset

    monkeypatch.setattr(dataset, "FINITE_CHECK_CHUNK", 7000)  # several chunks, one partial
    x = np.zeros((60000, 28, 28), np.float32)
    x[0, 0, :5] = np.nan
    x[-1] = np.inf  # 784 values in the last, partial chunk
    x[30000, 3, 3] = -np.inf
    with pytest.raises(DataError, match=r"^fashion_mnist x_train holds 790 non-finite values"):
        check_dataset(_float_dataset(x))
    check_dataset(_float_dataset(np.zeros((60000, 28, 28), np.float32)))  # finite: accepted


def test_non_finite_memory_mapped_images_are_found(tmp_path):
    x = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32,
                                  shape=(60000, 28, 28))
    x[59999, 27, 27] = np.nan
    x.flush()
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    with pytest.raises(DataError, match="x_train holds 1 non-finite values"):
        check_dataset(_float_dataset(mapped))
