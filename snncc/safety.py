"""Untrusted files: stated size limits, regular files only, HDF5 and zip archives read confined.

Models, bundles, checkpoints and datasets are files people download from strangers. Every reader
of such a file goes through this module, so the rules hold in one place:

* **Limits are checked on declared sizes, before allocating** (a shape in a header, an HDF5
  dataset's shape, a zip member's uncompressed size, an ONNX constant's folded shape). A value
  past a limit raises :class:`SnnccError` naming the thing, its size and the limit.
* **Only regular files are read** (never a FIFO that blocks forever, nor ``/dev/zero``).
* **An HDF5 file reads nothing but itself**: external links, soft links, external storage and
  virtual datasets are refused, and only hard-linked objects are visited
  (:func:`open_hdf5`). Error messages never quote data read from a file.
* **Text files are bounded and UTF-8** (:func:`read_text`).
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from snncc.errors import SnnccError

#: Values in one array (a weight tensor, a dataset file, a folded constant). 2**28 values are
#: 2 GiB as float64, the IR's working type; VGG-16's largest layer (fc6) holds 102,760,448.
MAX_ARRAY_VALUES = 1 << 28
#: Bytes of one array or archive member once decompressed (the same 2 GiB).
MAX_ARRAY_BYTES = 2 << 30
#: Neurons in one node's output (batch excluded): 16 Loihi 2 chips of neurons in one layer; the
#: simulators hold several float64 copies of it per sample in a batch.
MAX_LAYER_NEURONS = 1 << 24
#: Timesteps of a simulation or latency code: the training kernel keeps spike times as int16.
#: Per-step records are (T, samples) int64 arrays, 2.6 GB for a 10,000-sample test set at this
#: T; the docs' runs use 4 to 256 steps.
MAX_TIMESTEPS = 32767
#: Bytes of a text file (snncc.toml, chip profile, sidecar JSON, report, manifest).
MAX_TEXT_BYTES = 16 << 20
#: Bytes of an ONNX file: protobuf cannot parse a larger message.
MAX_ONNX_BYTES = 2 << 30
#: Members of a zip archive (.snn.npz, checkpoints) and objects in an HDF5 file.
MAX_MEMBERS = 10_000
#: Cores per chip and chips per system in a chip profile. TrueNorth has 4,096 cores per chip,
#: Hala Point 1,152 Loihi 2 chips; placement loops over every core.
MAX_CORES_PER_CHIP = 1 << 16
MAX_CHIPS = 1 << 16


# -------------------------------------------------------------------------------------- limits


def check_size(shape: Iterable[int], what: str, itemsize: int = 8) -> int:
    """The number of values of ``shape``; raises when it passes :data:`MAX_ARRAY_VALUES` or,
    at ``itemsize`` bytes each, :data:`MAX_ARRAY_BYTES`. Python integers: nothing overflows."""
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise SnnccError(f"{what}: negative dimension in shape {tuple(dims)}")
    count = math.prod(dims)
    if count > MAX_ARRAY_VALUES or count * itemsize > MAX_ARRAY_BYTES:
        raise SnnccError(f"{what}: shape {tuple(dims)} holds {count:,} values, beyond snncc's "
                         f"limit of {MAX_ARRAY_VALUES:,} values ({MAX_ARRAY_BYTES >> 30} GiB) "
                         "per array")
    return count


def check_timesteps(value: int, what: str = "timesteps") -> int:
    """``value`` when it is in ``1 .. MAX_TIMESTEPS``."""
    if int(value) < 1:
        raise SnnccError(f"{what} must be >= 1, got {value}")
    if int(value) > MAX_TIMESTEPS:
        raise SnnccError(f"{what} = {int(value):,} is beyond snncc's limit of {MAX_TIMESTEPS:,} "
                         "timesteps")
    return int(value)


def is_finite_number(value: Any) -> bool:
    """A finite int or float (numpy scalars included), never a bool: what a numeric option or
    report value must be."""
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)) and bool(np.isfinite(value)))


def check_finite(values: Any, what: str) -> None:
    """Raise when a float array (or number) holds NaN or infinity; ``what`` names the tensor."""
    array = np.asarray(values)
    if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise SnnccError(f"{what} contains NaN or inf values ({bad:,} of {array.size:,})")


def check_graph(graph: Any, where: str) -> None:
    """A loaded graph's declared sizes and values: every node's output within
    :data:`MAX_LAYER_NEURONS` and not empty, every array within the limits, not empty and
    finite, scales finite and Clip bounds not NaN (``where`` names the file)."""
    shapes = graph.infer_shapes()
    for name in graph.topological_order():
        node = graph.nodes[name]
        neurons = math.prod(shapes[name])
        label = f"{where}: node {name!r} ({type(node).__name__})"
        if neurons == 0:
            raise SnnccError(f"{label}: output shape {shapes[name]} has no neurons")
        if neurons > MAX_LAYER_NEURONS:
            raise SnnccError(f"{label}: output shape {shapes[name]} has {neurons:,} neurons, "
                             f"beyond snncc's limit of {MAX_LAYER_NEURONS:,} per layer")
        for field, array in node.arrays().items():
            check_size(array.shape, f"{label} {field}", array.dtype.itemsize)
            if array.size == 0:
                raise SnnccError(f"{label}: {field} is empty (shape {array.shape})")
            check_finite(array, f"{label} {field}")
        for field in ("low", "high"):  # Clip bounds: inf is a bound, NaN is not
            value = getattr(node, field, None)
            if isinstance(value, float) and math.isnan(value):
                raise SnnccError(f"{label}: {field} is NaN")
        scale = getattr(node, "scale", None)  # Input, SumPool2d
        if isinstance(scale, (int, float)):
            check_finite(float(scale), f"{label} scale")


# ---------------------------------------------------------------------------------- plain files


def regular_file(path: str | os.PathLike[str], what: str = "file") -> Path:
    """``path`` when it is an existing regular file (symlinks followed); else a one-line error.

    ``os.stat`` never blocks, unlike opening a FIFO.
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SnnccError(f"{what} {path}: no such file") from None
    except OSError as error:
        raise SnnccError(f"{what} {path}: cannot read ({error.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise SnnccError(f"{what} {path}: is a directory, expected a file")
    if not stat.S_ISREG(info.st_mode):
        raise SnnccError(f"{what} {path}: is not a regular file (a device, pipe or socket)")
    return path


def read_bytes(path: str | os.PathLike[str], what: str = "file",
               limit: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of regular file ``path``, refused when it is larger than ``limit``."""
    path = regular_file(path, what)
    size = path.stat().st_size
    if size > limit:
        raise SnnccError(f"{what} {path}: {size:,} bytes, beyond snncc's limit of {limit:,}")
    try:
        with path.open("rb") as handle:
            data = handle.read(size + 1)  # read(n) allocates n bytes first: never the limit
    except OSError as error:
        raise SnnccError(f"{what} {path}: cannot read ({error.strerror})") from None
    if len(data) > size:  # grew while we read
        raise SnnccError(f"{what} {path}: changed while it was read")
    return data


def read_text(path: str | os.PathLike[str], what: str = "file",
              limit: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of regular file ``path`` (at most ``limit`` bytes)."""
    data = read_bytes(path, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SnnccError(f"{what} {path}: not UTF-8 text (byte {error.start})") from None


# ---------------------------------------------------------------------------------------- HDF5


@contextlib.contextmanager
def open_hdf5(path: str | os.PathLike[str], what: str = "HDF5 file") -> Iterator[Any]:
    """Open ``path`` read-only after checking that it reads nothing but itself.

    Every object reachable from the root through hard links is visited once (at most
    :data:`MAX_MEMBERS`); any soft or external link, any dataset with external storage or a
    virtual layout is refused, and every dataset's declared shape and chunk shape must be within
    the array limits. Read datasets with :func:`read_dataset`.
    """
    import h5py

    path = regular_file(path, what)
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        reason = str(error).splitlines()[0] if str(error) else "OSError"
        raise SnnccError(f"{path}: cannot read {what}: corrupt or truncated file, not readable "
                         f"as HDF5 ({reason})") from None
    with handle:
        _confine(handle, path)
        yield handle


def _confine(handle: Any, path: Path) -> None:
    import h5py

    seen = {handle.id}
    pending = [("", handle)]
    while pending:
        prefix, group = pending.pop()
        for key in group:
            location = f"{prefix}/{key}"
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise SnnccError(f"{path}: HDF5 external link at {location!r} is not allowed "
                                 "(snncc reads only what the file itself holds)")
            if isinstance(link, h5py.SoftLink):
                raise SnnccError(f"{path}: HDF5 soft link at {location!r} is not allowed "
                                 "(snncc reads only hard-linked objects)")
            item = group[key]
            if item.id in seen:
                continue
            seen.add(item.id)
            if len(seen) > MAX_MEMBERS:
                raise SnnccError(f"{path}: more than {MAX_MEMBERS:,} HDF5 objects")
            if isinstance(item, h5py.Group):
                pending.append((location, item))
            elif isinstance(item, h5py.Dataset):
                _check_dataset(item, f"{path}: dataset {location!r}")


def _check_dataset(dataset: Any, where: str) -> None:
    if dataset.external:
        raise SnnccError(f"{where} keeps its data in an external file, which is not allowed "
                         "(snncc reads only what the file itself holds)")
    if dataset.is_virtual:
        raise SnnccError(f"{where} is a virtual dataset, which is not allowed (snncc reads only "
                         "what the file itself holds)")
    itemsize = max(1, dataset.dtype.itemsize)
    check_size(dataset.shape or (), where, itemsize)
    if dataset.chunks:  # reading one value decompresses its whole chunk
        check_size(dataset.chunks, f"{where} chunks", itemsize)


def read_dataset(dataset: Any) -> np.ndarray:
    """All values of an HDF5 dataset of a file opened with :func:`open_hdf5`."""
    check_size(dataset.shape or (), f"dataset {dataset.name!r}", max(1, dataset.dtype.itemsize))
    return np.asarray(dataset[()])


# ----------------------------------------------------------------------------------------- zip


def open_zip(path: str | os.PathLike[str], what: str = "archive") -> zipfile.ZipFile:
    """A zip archive whose members are at most :data:`MAX_MEMBERS` and each at most
    :data:`MAX_ARRAY_BYTES` uncompressed (zipfile never inflates past a member's declared size).
    """
    path = regular_file(path, what)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise SnnccError(f"{path}: corrupt or truncated {what} ({error})") from None
    members = archive.infolist()
    problem = None
    if len(members) > MAX_MEMBERS:
        problem = f"{len(members):,} members, beyond snncc's limit of {MAX_MEMBERS:,}"
    for info in members:
        if info.file_size > MAX_ARRAY_BYTES:
            problem = (f"member {info.filename!r} inflates to {info.file_size:,} bytes, beyond "
                       f"snncc's limit of {MAX_ARRAY_BYTES:,}")
            break
    if sum(info.file_size for info in members) > 2 * MAX_ARRAY_BYTES:
        problem = f"members inflate beyond snncc's limit of {2 * MAX_ARRAY_BYTES:,} bytes"
    if problem:
        archive.close()
        raise SnnccError(f"{path}: {what} {problem}")
    return archive


def read_member(archive: zipfile.ZipFile, name: str, limit: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of a (small) member such as a JSON manifest."""
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise SnnccError(f"{archive.filename}: member {name!r} has {info.file_size:,} bytes, "
                         f"beyond snncc's limit of {limit:,}")
    return archive.read(name)


def read_npy(archive: zipfile.ZipFile, name: str) -> np.ndarray:
    """A ``.npy`` member whose header is checked against the limits and the member's size.

    The header's shape and dtype must account for exactly the bytes the member holds, so a
    header promising more than the data (which numpy would allocate first) is refused.
    """
    where = f"{archive.filename}: member {name!r}"
    info = archive.getinfo(name)
    with archive.open(name) as handle:
        try:
            version = np.lib.format.read_magic(handle)
            reader = {(1, 0): np.lib.format.read_array_header_1_0,
                      (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if reader is None:
                raise ValueError(f"unsupported .npy version {version}")
            shape, fortran_order, dtype = reader(handle)
        except (ValueError, EOFError, SyntaxError) as error:
            raise SnnccError(f"{where}: not a .npy array ({error})") from None
        if dtype.hasobject:
            raise SnnccError(f"{where}: holds Python objects, which snncc never loads")
        count = check_size(shape, where, max(1, dtype.itemsize))
        header = handle.tell()
        if info.file_size - header != count * dtype.itemsize:
            raise SnnccError(f"{where}: its header declares {count * dtype.itemsize:,} bytes of "
                             f"data but the member holds {info.file_size - header:,}")
        data = handle.read(count * dtype.itemsize)
    array = np.frombuffer(data, dtype=dtype, count=count)
    if fortran_order:
        return array.reshape(shape[::-1]).transpose().copy()
    return array.reshape(shape).copy()


def read_npz(path: str | os.PathLike[str], what: str = "archive") -> dict[str, np.ndarray]:
    """Every ``.npy`` member of an ``.npz`` file by name (without ``.npy``), read with
    :func:`read_npy` (pickles are never loaded)."""
    with open_zip(path, what) as archive:
        try:
            return {name[:-4]: read_npy(archive, name) for name in archive.namelist()
                    if name.endswith(".npy")}
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
            raise SnnccError(f"{path}: corrupt or truncated {what} ({error})") from None

