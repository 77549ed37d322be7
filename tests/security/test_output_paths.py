"""Issue 21, defects 2 and 8: outputs never destroy data, are checked first, survive signals."""

from __future__ import annotations

import shutil
import signal
import stat

import pytest
from hostile import (
    EXAMPLE_ONNX,
    SLOW_SAVE_CODE,
    assert_refused,
    bstdg_model,
    ir_model,
    run_cli,
)

MARKER_FILE = ".snncc-output"


def _precious_folder(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious")
    shutil.copy(EXAMPLE_ONNX, folder / "model.onnx")
    shutil.copy(EXAMPLE_ONNX.with_suffix(".json"), folder / "model.json")
    return folder


def test_existing_foreign_directory_is_not_replaced(tmp_path):
    folder = _precious_folder(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert_refused(run_cli("compile", folder / "model.onnx", "-T", "4", "-o", other),
                   "not an snncc output", "--force")
    assert (other / "notes.txt").read_text() == "mine"


def test_output_holding_the_model_is_refused_even_with_force(tmp_path):
    folder = _precious_folder(tmp_path)
    for extra in ([], ["--force"]):
        assert_refused(run_cli("compile", folder / "model.onnx", "-T", "4", "-o", folder,
                               *extra), "contains the input model")
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt", "model.json", "model.onnx"]


@pytest.mark.parametrize("target", [".", "..", ""])
def test_current_directory_and_parents_are_refused(tmp_path, target):
    folder = _precious_folder(tmp_path)
    cwd = folder / "sub"
    cwd.mkdir()
    (cwd / "file.txt").write_text("x")
    assert_refused(run_cli("compile", folder / "model.onnx", "-T", "4", "-o", target,
                           "--force", cwd=cwd), "current directory")
    assert sorted(p.name for p in cwd.iterdir()) == ["file.txt"]
    assert (folder / "keep.txt").exists()


def test_previous_output_is_replaced_and_force_overwrites(tmp_path):
    model = ir_model(tmp_path / "model" / "net.snn.npz")
    out = tmp_path / "out"
    first = run_cli("compile", model, "-o", out)
    assert first.returncode == 0, first.describe()
    assert (out / MARKER_FILE).is_file()
    (out / "stale.txt").write_text("old")
    again = run_cli("compile", model, "-o", out)
    assert again.returncode == 0, again.describe()
    assert not (out / "stale.txt").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.txt").write_text("x")
    forced = run_cli("compile", model, "-o", foreign, "--force")
    assert forced.returncode == 0, forced.describe()
    assert (foreign / MARKER_FILE).is_file() and not (foreign / "x.txt").exists()


def test_output_path_is_checked_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # the data folder is missing too: the output must be the first complaint
    run = run_cli("compile", EXAMPLE_ONNX, "--dataset", "mnist", "--data-dir",
                  tmp_path / "missing", "-o", blocker / "sub")
    assert_refused(run, str(blocker))


def test_unwritable_report_path_is_refused_before_the_run(tmp_path):
    run = run_cli("validate", EXAMPLE_ONNX, "-n", "5", "-T", "4", "--json", "/proc/x")
    assert_refused(run, "/proc")
    assert "SNN accuracy" not in run.stdout  # refused before validating


def test_train_output_directory_is_refused_before_training(tmp_path):
    folder = tmp_path / "net.bstdg.h5"
    folder.mkdir()
    run = run_cli("train", "bstdg", "--dataset", "digits", "--hidden", "8", "--epochs", "1",
                  "--limit", "100", "-o", folder)
    assert_refused(run, "directory")
    assert "epoch" not in run.stderr


@pytest.mark.parametrize(("signum", "code", "word"),
                         [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_signals_leave_nothing_behind_and_say_so(tmp_path, signum, code, word):
    model = ir_model(tmp_path / "net.snn.npz")
    out = tmp_path / "out"
    run = run_cli("compile", model, "-o", out, python_code=SLOW_SAVE_CODE,
                  signal_after=(0.2, signum), signal_when=tmp_path / ".out.*.tmp", timeout=90)
    assert run.returncode == code, run.describe()
    assert run.error_lines == [f"error: {word}"], run.describe()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.snn.npz"]


def test_output_permissions_follow_the_umask(tmp_path):
    model = bstdg_model(tmp_path / "model" / "net.bstdg.h5")
    out = tmp_path / "out"
    run = run_cli("compile", model, "-o", out, umask=0o022)
    assert run.returncode == 0, run.describe()
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    trained = tmp_path / "t.bstdg.h5"
    run = run_cli("train", "bstdg", "--dataset", "digits", "--hidden", "8", "--epochs", "1",
                  "--limit", "60", "-o", trained, umask=0o027)
    assert run.returncode == 0, run.describe()
    assert stat.S_IMODE(trained.stat().st_mode) == 0o640
