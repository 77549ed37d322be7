"""Small shared helpers: atomic output writing (and its rules), progress bars, JSON-ready values."""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from snncc.errors import SnnccError

#: Written into every directory snncc writes whole (``compile -o``): a later run may replace a
#: directory holding this marker for the same kind of output, and no other (unless forced).
OUTPUT_MARKER = ".snncc-output"


def check_writable(path: str | os.PathLike[str], what: str = "output") -> Path:
    """Fail before any work when file ``path`` cannot be written by :func:`atomic_path`.

    Its folder must exist and accept a new file, probed by creating and removing one (so a
    read-only mount or ``/proc`` is caught even for root), and ``path`` must not be a directory.
    """
    path = Path(path)
    if path.is_dir():
        raise SnnccError(f"cannot write the {what} {path}: it is a directory")
    _probe_folder(path, what)
    return path


def _probe_folder(path: Path, what: str) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise SnnccError(f"cannot write the {what} {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise SnnccError(f"cannot write the {what} {path}: {parent} is not a directory")
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
    except OSError as error:
        raise SnnccError(f"cannot write the {what} {path}: directory {parent} is not writable "
                         f"({error.strerror})") from None
    try:
        os.close(handle)
    finally:
        os.unlink(name)


def _check_parent(path: Path) -> None:
    _probe_folder(path, "file")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory, then rename."""
    path = Path(path)
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary file path beside ``path``; rename it over ``path`` on success only.

    The file gets the mode a plain ``open()`` would give it (``0o666`` less the umask), not
    ``mkstemp``'s private ``0o600``.
    """
    path = Path(path)
    _check_parent(path)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(handle)
    temporary = Path(name)
    try:
        os.chmod(temporary, 0o666 & ~_umask())
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def check_output_directory(path: str | os.PathLike[str], kind: str, *, force: bool = False,
                           inputs: tuple[str | os.PathLike[str], ...] = ()) -> Path:
    """Fail before any work when directory ``path`` may not be written whole.

    Rules: ``path`` is never empty, ``.``/``..``, the current directory or one of its parents, and
    never a directory holding one of ``inputs`` (``--force`` or not). An existing directory is
    replaced only when it is empty, holds snncc's :data:`OUTPUT_MARKER` for the same ``kind``,
    or ``force`` is set. Its parent must accept new entries.
    """
    text = os.fspath(path)
    path = Path(text)
    resolved = path.resolve()
    if text.strip() in ("", ".", "..") or resolved in (Path.cwd().resolve(), *Path.cwd().resolve()
                                                       .parents):
        raise SnnccError(f"output directory {text!r} is the current directory or one of its "
                         "parents; give a directory of its own")
    for source in inputs:
        if resolved in Path(source).resolve().parents:
            raise SnnccError(f"output directory {path} contains the input model {source}; "
                             "give a directory of its own")
    if path.is_symlink():
        raise SnnccError(f"cannot write directory {path}: it is a symbolic link")
    if path.exists():
        if not path.is_dir():
            raise SnnccError(f"cannot write directory {path}: a file of that name exists")
        marker = _read_marker(path / OUTPUT_MARKER)
        if any(path.iterdir()) and marker != kind and not force:
            found = f"no {OUTPUT_MARKER} marker" if marker is None else f"a {marker!r} output"
            raise SnnccError(f"output directory {path} exists and is not an snncc output of "
                             f"this kind ({found}, expected {kind!r}); remove it or pass --force "
                             "to replace it")
    _probe_folder(path, "output directory")
    return path


def _read_marker(path: Path) -> str | None:
    """The ``kind`` a marker file records; ``None`` when there is none or it is not snncc's."""
    from snncc.safety import read_text

    if not path.is_file():
        return None
    try:
        return json.loads(read_text(path, "output marker", 4096)).get("kind")
    except (SnnccError, ValueError, AttributeError):
        return None


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str], kind: str = "output", *, force: bool = False,
                     inputs: tuple[str | os.PathLike[str], ...] = ()) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success it replaces ``path`` whole.

    ``path`` is checked by :func:`check_output_directory` (``kind``, ``force``, ``inputs``) and
    receives the marker :data:`OUTPUT_MARKER`. An existing directory is replaced only after the
    new one is complete. The new directory's mode is ``0o777`` less the umask.
    """
    path = Path(path)
    check_output_directory(path, kind, force=force, inputs=inputs)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or "."))
    try:
        os.chmod(temporary, 0o777 & ~_umask())
        yield temporary
        (temporary / OUTPUT_MARKER).write_text(json.dumps({"kind": kind}) + "\n")
        if path.exists():
            backup = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, backup / "old")
            os.replace(temporary, path)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


# rich allows one live display at a time: a bar opened inside another (a validation inside a
# sweep) stays silent instead of failing.
_BAR_OPEN: contextvars.ContextVar[bool] = contextvars.ContextVar("snncc_bar_open", default=False)


def progress_enabled() -> bool:
    """Progress bars only on an interactive terminal and never under CI."""
    return sys.stderr.isatty() and not os.environ.get("CI")


@contextlib.contextmanager
def progress(description: str, total: int | None) -> Iterator[callable]:
    """A rich progress bar on stderr (silent when not interactive, or inside another bar);
    yields ``advance(n)``."""
    if not progress_enabled() or _BAR_OPEN.get():
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    token = _BAR_OPEN.set(True)
    try:
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n=1: bar.advance(task, n)
    finally:
        _BAR_OPEN.reset(token)


def jsonable(value: Any) -> Any:
    """``value`` with numpy arrays and scalars turned into lists and Python numbers (for JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value
