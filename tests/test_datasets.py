"""IDX reading, dataset discovery, the digits default and input arrangement."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from snncc.datasets import arrange, load_dataset, read_idx
from snncc.errors import SnnccError


def _idx(images: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, images.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in images.shape)
    return header + images.astype(np.uint8).tobytes()


def test_read_idx_raw_and_gzip(tmp_path):
    images = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(np.uint8)
    (tmp_path / "a").write_bytes(_idx(images))
    (tmp_path / "b.gz").write_bytes(gzip.compress(_idx(images)))
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "b.gz"), images)


def test_read_idx_rejects_bad_files(tmp_path):
    images = np.zeros((2, 3, 4), np.uint8)
    (tmp_path / "short").write_bytes(_idx(images)[:-5])
    with pytest.raises(SnnccError, match="truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "magic").write_bytes(b"\x01\x02\x03\x04" + bytes(20))
    with pytest.raises(SnnccError, match="not an IDX"):
        read_idx(tmp_path / "magic")
    (tmp_path / "bad.gz").write_bytes(gzip.compress(_idx(images))[:-8])
    with pytest.raises(SnnccError, match="corrupt or truncated"):
        read_idx(tmp_path / "bad.gz")


def test_load_dataset_from_directory_layouts(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    labels = np.arange(5).astype(np.uint8)
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(_idx(labels))
    data = load_dataset("mnist", "test", tmp_path)
    assert data.images.shape == (5, 1, 28, 28) and data.labels.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(SnnccError, match="train-images"):
        load_dataset("mnist", "train", tmp_path)


def test_a_split_is_read_once_while_its_files_stay_the_same(tmp_path, monkeypatch):
    """A sweep loads the same splits at every point; each call still gets its own arrays."""
    import os

    from snncc import datasets

    images = np.random.default_rng(1).integers(0, 256, (4, 28, 28)).astype(np.uint8)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(images))
    labels_file = tmp_path / "t10k-labels-idx1-ubyte"
    labels_file.write_bytes(_idx(np.arange(4)))
    reads = []
    monkeypatch.setattr(datasets, "read_idx", lambda path: reads.append(path) or read_idx(path))
    first = load_dataset("mnist", "test", tmp_path)
    first.images[:] = 0
    second = load_dataset("mnist", "test", tmp_path)
    assert len(reads) == 2  # images and labels, once
    np.testing.assert_array_equal(second.images[:, 0], images)
    labels_file.write_bytes(_idx(np.array([3, 2, 1, 0])))
    stat = labels_file.stat()
    os.utime(labels_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert load_dataset("mnist", "test", tmp_path).labels.tolist() == [3, 2, 1, 0]
    assert len(reads) == 4


def test_missing_data_dir_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("SNNCC_DATA_DIR", raising=False)
    with pytest.raises(SnnccError, match="--data-dir"):
        load_dataset("mnist")
    with pytest.raises(SnnccError, match="unknown dataset"):
        load_dataset("cifar")
    with pytest.raises(SnnccError, match="does not exist"):
        load_dataset("mnist", data_dir=tmp_path / "nowhere")


def test_env_var_data_dir(monkeypatch, data_dir):
    monkeypatch.setenv("SNNCC_DATA_DIR", str(data_dir))
    data = load_dataset("fashion-mnist", "test")
    assert data.images.shape == (10000, 1, 28, 28)
    assert np.bincount(data.labels).tolist() == [1000] * 10


def test_digits_default_needs_no_files():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert train.images.shape == (1437, 1, 8, 8) and len(test) == 360
    assert train.images.dtype == np.uint8 and train.images.max() == 255


def test_arrange_layouts():
    images = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    assert arrange(images, (3, 4, 5)).shape == (2, 3, 4, 5)
    nhwc = arrange(images, (4, 5, 3), "NHWC")
    np.testing.assert_array_equal(nhwc, images.transpose(0, 2, 3, 1))
    assert arrange(images, (60,)).shape == (2, 60)
    with pytest.raises(SnnccError, match="do not match"):
        arrange(images, (7,))
