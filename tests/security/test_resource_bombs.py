"""Issue 21, defect 3: declared sizes are checked against stated limits before allocating.

Every bomb runs the CLI under a 2 GiB address-space cap and must be refused with one line that
names the limit, with its peak resident memory near a plain start (no large allocation).
"""

from __future__ import annotations

import os

import pytest
from hostile import (
    EXAMPLE_ONNX,
    MEMORY_CAP,
    assert_refused,
    bstdg_declared_bomb,
    chip_profile,
    fifo,
    idx_gzip_bomb,
    ir_lying_npy,
    ir_model,
    ir_zip_bomb,
    mnist_dir,
    nir_declared_bomb,
    onnx_constant_of_shape_bomb,
    onnx_expand_bomb,
    raw_bstdg,
    run_cli,
    yaml_alias_bomb,
)

#: Peak resident memory allowed for a refused bomb (a plain `snncc inspect` peaks near 200 MB).
BOMB_PEAK_MB = 700


def assert_bomb_refused(run, *fragments):
    assert_refused(run, *fragments)
    assert run.peak_rss_mb < BOMB_PEAK_MB, run.describe()


@pytest.mark.parametrize("build", [onnx_constant_of_shape_bomb, onnx_expand_bomb])
def test_onnx_constant_folding_bombs(tmp_path, build):
    model = build(tmp_path / "bomb.onnx")
    assert_bomb_refused(run_cli("inspect", model, cap=MEMORY_CAP), "bomb", "limit")


def test_bstdg_declared_shape_bomb(tmp_path):
    model = bstdg_declared_bomb(tmp_path / "bomb.bstdg.h5")
    assert_bomb_refused(run_cli("inspect", model, cap=MEMORY_CAP), "/layers/0/weight", "limit")


def test_nir_declared_shape_bomb(tmp_path):
    model = nir_declared_bomb(tmp_path / "bomb.nir")
    assert_bomb_refused(run_cli("inspect", model, cap=MEMORY_CAP), "/node/nodes/fc/weight",
                        "limit")


def test_bstdg_t_max_bomb(tmp_path):
    model = raw_bstdg(tmp_path / "bomb.bstdg.h5", t_max=10**12)
    assert_bomb_refused(run_cli("validate", model, "-n", "5", cap=MEMORY_CAP), "t_max", "limit")


def test_npz_lying_npy_header(tmp_path):
    model = ir_lying_npy(tmp_path / "bomb.snn.npz")
    assert_bomb_refused(run_cli("inspect", model, cap=MEMORY_CAP), "limit")


def test_npz_zip_bomb(tmp_path):
    model = ir_zip_bomb(tmp_path / "bomb.snn.npz")
    assert model.stat().st_size < 8 << 20
    assert_bomb_refused(run_cli("inspect", model, cap=MEMORY_CAP), "limit")


def test_ir_declared_layer_size_bomb(tmp_path):
    # a padded 1x1 conv whose output map is 100,008 x 100,008 neurons
    model = ir_model(tmp_path / "bomb.snn.npz", input_padding=50_000)
    assert_bomb_refused(run_cli("validate", model, "-n", "5", cap=MEMORY_CAP), "pad", "limit")


def test_idx_gzip_bomb(tmp_path):
    data = mnist_dir(tmp_path / "data")
    images = data / "mnist" / "t10k-images-idx3-ubyte"
    images.unlink()
    images.with_suffix(".gz").write_bytes(idx_gzip_bomb())
    run = run_cli("validate", EXAMPLE_ONNX, "--dataset", "mnist", "--data-dir", data,
                  cap=MEMORY_CAP)
    assert_bomb_refused(run, "t10k-images")


def test_yaml_alias_bomb(tmp_path):
    profile = yaml_alias_bomb(tmp_path / "chip.yaml")
    run = run_cli("partition", EXAMPLE_ONNX, "--chip", profile, cap=MEMORY_CAP, timeout=60)
    assert_bomb_refused(run, "alias")
    assert run.seconds < 30


def test_cores_per_chip_bomb(tmp_path):
    profile = chip_profile(tmp_path / "chip.yaml", cores_per_chip=10**12)
    run = run_cli("partition", EXAMPLE_ONNX, "--chip", profile, cap=MEMORY_CAP, timeout=60)
    assert_bomb_refused(run, "cores_per_chip", "limit")


@pytest.mark.parametrize("command", ["validate", "compile", "stages"])
def test_timesteps_bomb(tmp_path, command):
    extra = {"validate": ["-n", "5"], "compile": ["-o", tmp_path / "out"],
             "stages": ["--limit", "5"]}[command]
    run = run_cli(command, EXAMPLE_ONNX, "-T", "1000000000", *extra, cap=MEMORY_CAP)
    assert_bomb_refused(run, "timesteps", "limit")


def test_hidden_size_bomb(tmp_path):
    run = run_cli("train", "bstdg", "--dataset", "digits", "--hidden", "100000000", "-o",
                  tmp_path / "net.bstdg.h5", cap=MEMORY_CAP)
    assert_bomb_refused(run, "limit")


def test_shift_bomb(tmp_path):
    run = run_cli("train", "bstdg", "--dataset", "digits", "--shift", "1000000", "-o",
                  tmp_path / "net.bstdg.h5", cap=MEMORY_CAP)
    assert_bomb_refused(run, "shift")


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_special_files_as_models(tmp_path, special):
    path = fifo(tmp_path / "model.onnx") if special == "fifo" else special
    run = run_cli("inspect", path, cap=MEMORY_CAP, timeout=60)
    assert_bomb_refused(run, "not a regular file")


def test_special_files_as_data_and_config(tmp_path):
    data = mnist_dir(tmp_path / "data")
    images = data / "mnist" / "t10k-images-idx3-ubyte"
    images.unlink()
    os.mkfifo(images)
    run = run_cli("validate", EXAMPLE_ONNX, "--dataset", "mnist", "--data-dir", data,
                  timeout=60)
    assert_refused(run, "not a regular file")
    config = fifo(tmp_path / "snncc.toml")
    assert_refused(run_cli("validate", "--config", config, timeout=60), "not a regular file")
