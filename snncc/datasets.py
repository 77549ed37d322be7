"""Datasets: standard IDX files (MNIST, Fashion-MNIST) and scikit-learn's bundled 8x8 digits.

Images come back as raw ``uint8`` arrays of shape ``(N, 1, H, W)``; preprocessing belongs to the
model (:class:`snncc.ir.Input`). IDX files are found in ``--data-dir`` or ``$SNNCC_DATA_DIR``, either
directly or in a sub-directory named after the dataset, gzip-compressed or raw.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snncc.errors import SnnccError
from snncc.safety import check_size, regular_file

DATASETS = ("mnist", "fashion-mnist", "digits")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
DATA_DIR_ENV = "SNNCC_DATA_DIR"


@dataclass
class Dataset:
    """A labelled image set: ``images`` uint8 ``(N, 1, H, W)``, ``labels`` int64 ``(N,)``."""

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, limit: int | None) -> Dataset:
        """The first ``limit`` samples (all when ``None``)."""
        if limit is None or limit >= len(self):
            return self
        return Dataset(self.name, self.split, self.images[:limit], self.labels[:limit])


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into an array; bad files raise SnnccError.

    The header's dimensions are checked against :func:`snncc.safety.check_size` before the data
    is read, and a gzip file is inflated only as far as the header says (plus one byte, to
    refuse trailing data), so a small file cannot inflate into gigabytes.
    """
    path = regular_file(path, "IDX file")
    try:
        with path.open("rb") as raw_handle:
            compressed = raw_handle.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if compressed else path.open("rb")) as handle:
            magic = handle.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES:
                raise SnnccError(f"{path}: not an IDX file (bad magic number)")
            ndim = magic[3]
            header = handle.read(4 * ndim)
            if len(header) < 4 * ndim:
                raise SnnccError(f"{path}: truncated IDX header")
            dims = tuple(int.from_bytes(header[4 * i: 4 * i + 4], "big") for i in range(ndim))
            dtype = np.dtype(_IDX_DTYPES[magic[2]])
            expected = check_size(dims, f"{path}: IDX header", dtype.itemsize) * dtype.itemsize
            data = handle.read(expected + 1)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise SnnccError(f"{path}: corrupt or truncated gzip file ({error})") from None
    if len(data) != expected:
        found = f"{len(data)}" if len(data) <= expected else f"more than {expected}"
        raise SnnccError(f"{path}: truncated or corrupt IDX data ({found} bytes, expected "
                         f"{expected})")
    return np.frombuffer(data, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """``data_dir`` if given, else ``$SNNCC_DATA_DIR``, else ``None``."""
    if data_dir:
        return Path(data_dir)
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else None


def _find_idx(root: Path, name: str, stem: str) -> Path:
    for folder in (root / name, root / name.replace("-", "_"), root):
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.exists() or candidate.is_symlink():
                return candidate
    raise SnnccError(
        f"dataset {name!r}: {stem}(.gz) not found in {root} or {root / name} "
        f"(pass --data-dir or set {DATA_DIR_ENV})"
    )


def load_dataset(
    name: str, split: str = "test", data_dir: str | os.PathLike[str] | None = None
) -> Dataset:
    """Load ``name`` (``mnist``, ``fashion-mnist`` or ``digits``), ``split`` ``train`` or ``test``.

    IDX files are read once per process while they stay the same (path, size, modification
    time); every call returns its own arrays.
    """
    if name not in DATASETS:
        raise SnnccError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if split not in IDX_FILES:
        raise SnnccError(f"unknown split {split!r}; choose train or test")
    if name == "digits":
        return _digits(split)
    root = resolve_data_dir(data_dir)
    if root is None:
        raise SnnccError(
            f"dataset {name!r} needs its IDX files: pass --data-dir DIR or set {DATA_DIR_ENV}"
        )
    if not root.is_dir():
        raise SnnccError(f"data directory {root} does not exist")
    paths = [_find_idx(root, name, stem) for stem in IDX_FILES[split]]
    key = (name, split, *(_file_identity(path) for path in paths))
    if key not in _LOADED:
        images, labels = (read_idx(path) for path in paths)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise SnnccError(
                f"dataset {name!r}: images {images.shape} and labels {labels.shape} do not match"
            )
        _LOADED[key] = Dataset(name, split, images[:, None].astype(np.uint8),
                               labels.astype(np.int64))
        while len(_LOADED) > LOADED_SPLITS:
            _LOADED.popitem(last=False)
    _LOADED.move_to_end(key)
    kept = _LOADED[key]
    return Dataset(name, split, kept.images.copy(), kept.labels.copy())


#: IDX splits kept in memory per process (the least recently used goes first). A sweep loads the
#: same test and training split at every point, in this process or a worker, and inflating MNIST's
#: gzip-compressed splits took 0.3 s of a point's 2.5 to 30 s; a copy takes 10 ms.
LOADED_SPLITS = 4
_LOADED: OrderedDict[tuple[Any, ...], Dataset] = OrderedDict()


def _file_identity(path: Path) -> tuple[Any, ...]:
    """A file as the split cache knows it: a changed, replaced or touched file is read again."""
    try:
        status = path.stat()
    except OSError:
        return (str(path),)  # read_idx reports it
    return (str(path.resolve()), status.st_dev, status.st_ino, status.st_size,
            status.st_mtime_ns, status.st_ctime_ns)


def _digits(split: str) -> Dataset:
    """scikit-learn's 1,797 8x8 digits (0..16 scaled to 0..255); first 1,437 train, rest test."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    cut = 1437
    part = slice(0, cut) if split == "train" else slice(cut, None)
    return Dataset("digits", split, images[part], labels[part])


def arrange(images: np.ndarray, input_shape: tuple[int, ...], layout: str = "NCHW") -> np.ndarray:
    """Lay dataset images ``(N, C, H, W)`` out as a model's input ``(N, *input_shape)``.

    ``layout="NHWC"`` transposes to channels-last first; then any shape with the same number of
    elements (e.g. a flat ``(784,)`` MLP input) is a row-major reshape. Mismatches raise SnnccError.
    """
    images = np.asarray(images)
    if layout.upper() == "NHWC" and images.ndim == 4:
        images = images.transpose(0, 2, 3, 1)
    elif layout.upper() not in ("NCHW", "NHWC"):
        raise SnnccError(f"unknown layout {layout!r}; choose NCHW or NHWC")
    per_sample = int(np.prod(images.shape[1:]))
    if per_sample != int(np.prod(input_shape)):
        raise SnnccError(
            f"dataset samples of shape {images.shape[1:]} do not match the model input "
            f"{tuple(input_shape)} ({per_sample} vs {int(np.prod(input_shape))} values)"
        )
    return images.reshape((len(images),) + tuple(input_shape))
