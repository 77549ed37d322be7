"""Issue 21, defect 1: an HDF5 file reads nothing outside itself (links, external storage, VDS)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from hostile import (
    assert_refused,
    bstdg_external_link,
    bstdg_external_storage,
    bstdg_model,
    bstdg_soft_link,
    bstdg_virtual,
    bstdg_with_weight,
    nir_external_link,
    run_cli,
    secret_file,
)

from snncc.errors import SnnccError


def test_external_storage_is_refused_and_never_echoed(tmp_path):
    secret = secret_file(tmp_path / "outside")
    model = bstdg_external_storage(tmp_path / "model" / "net.bstdg.h5", secret)
    run = run_cli("inspect", model)
    assert_refused(run, "external file")
    assert "found" not in run.stderr  # no byte of the secret file in the message


def test_external_storage_is_not_copied_into_outputs(tmp_path):
    # bytes that are valid weights (0, +1, -1): today compile succeeds and copies them
    secret = secret_file(tmp_path / "outside", bytes([0, 1, 255, 1]) * 128)
    model = bstdg_external_storage(tmp_path / "model" / "net.bstdg.h5", secret)
    out = tmp_path / "model" / "out"
    assert_refused(run_cli("compile", model, "-o", out), "external file")
    assert not out.exists()


def test_external_link_is_refused(tmp_path):
    model = bstdg_external_link(tmp_path / "model" / "net.bstdg.h5",
                                tmp_path / "outside" / "secret.h5")
    out = tmp_path / "model" / "out"
    assert_refused(run_cli("compile", model, "-o", out), "external link", "/layers/0")
    assert not out.exists()


def test_soft_link_is_refused(tmp_path):
    model = bstdg_soft_link(tmp_path / "model" / "net.bstdg.h5")
    assert_refused(run_cli("inspect", model), "soft link", "/layers/1/weight")


def test_virtual_dataset_is_refused(tmp_path):
    model = bstdg_virtual(tmp_path / "model" / "net.bstdg.h5", tmp_path / "outside" / "w.h5")
    assert_refused(run_cli("inspect", model), "virtual dataset")


def test_bad_weight_values_are_not_echoed(tmp_path):
    model = bstdg_with_weight(tmp_path / "net.bstdg.h5", 114)
    run = run_cli("inspect", model)
    assert_refused(run, "weights must be -1, 0 or +1")
    assert "114" not in run.stderr


def test_a_plain_bstdg_file_still_loads(tmp_path):
    model = bstdg_model(tmp_path / "net.bstdg.h5")
    run = run_cli("inspect", model)
    assert run.returncode == 0, run.describe()
    assert "dense1" in run.stdout


def test_every_hdf5_reader_uses_the_safe_opener(tmp_path):
    """netx files (read by the Lava backend's linter) follow the same rule."""
    from snncc.backends import netx

    outside = tmp_path / "outside.h5"
    with h5py.File(outside, "w") as handle:
        handle.create_dataset("layer/0/weight", data=np.zeros((2, 2)))
    path = tmp_path / "net.net"
    with h5py.File(path, "w") as handle:
        handle["layer"] = h5py.ExternalLink(str(outside), "/layer")
    with pytest.raises(SnnccError, match="external link"):
        netx.read_netx(path)


def test_nir_files_follow_the_same_rule(tmp_path):
    model = nir_external_link(tmp_path / "model" / "net.nir", tmp_path / "outside" / "other.nir")
    assert_refused(run_cli("inspect", model), "external link", "/node/nodes/fc")
