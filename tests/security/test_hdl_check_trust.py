"""Issue 21, defects 6 and 10: hdl-check runs snncc's own HDL and trusts no path in a manifest."""

from __future__ import annotations

import hashlib
import json

import pytest
from hostile import MARKER, assert_refused, bstdg_model, run_cli, secret_file

from snncc.backends.fpga_hdl import iverilog_missing

pytestmark = pytest.mark.hdl

PAYLOAD = """
module snncc_hostile_payload;
    integer handle;
    initial begin
        handle = $fopen("PWNED", "w");
        $fdisplay(handle, "written by the bundle");
        $fclose(handle);
    end
endmodule
"""


@pytest.fixture
def bundle(tmp_path):
    model = bstdg_model(tmp_path / "model" / "net.bstdg.h5")
    out = tmp_path / "bundle"
    run = run_cli("compile", model, "--target", "fpga", "-o", out)
    assert run.returncode == 0, run.describe()
    return out


def _rewrite(bundle, relative, data: bytes):
    """Change one bundle file and make its manifest entry agree (as an attacker would)."""
    (bundle / relative).write_bytes(data)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"][relative] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_a_plain_bundle_checks(bundle):
    if iverilog_missing():
        pytest.skip(iverilog_missing())
    run = run_cli("hdl-check", bundle, "--dataset", "digits", "-n", "3")
    assert run.returncode == 0, run.describe()
    assert "3/3" in run.stdout


def test_bundle_verilog_is_never_run(bundle):
    engine = bundle / "hdl" / "if_layer.v"
    _rewrite(bundle, "hdl/if_layer.v", engine.read_bytes() + PAYLOAD.encode())
    run = run_cli("hdl-check", bundle, "--dataset", "digits", "-n", "3", cwd=bundle)
    assert_refused(run, "hdl/if_layer.v", "differs")
    assert not list(bundle.rglob("PWNED"))


@pytest.mark.parametrize("where", ["absolute", "parent"])
def test_manifest_paths_are_confined_to_the_bundle(bundle, tmp_path, where):
    secret = secret_file(tmp_path / "outside")
    relative = str(secret) if where == "absolute" else "../outside/secret.txt"
    manifest = json.loads((bundle / "manifest.json").read_text())
    data = secret.read_bytes()
    manifest["files"][relative] = {"sha256": hashlib.sha256(data).hexdigest(),
                                   "bytes": len(data)}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    run = run_cli("hdl-check", bundle, "--dataset", "digits", "-n", "3")
    assert_refused(run, "outside the bundle")
    assert MARKER not in run.stdout + run.stderr


@pytest.mark.parametrize("content", [
    {"format": "snncc-fpga-bundle", "format_version": 1, "files": [1, 2]},
    {"format": "snncc-fpga-bundle", "format_version": 1, "files": {"mem/x.mem": "abc"}},
    [1, 2, 3],
])
def test_malformed_manifest_is_refused(bundle, content):
    (bundle / "manifest.json").write_text(json.dumps(content))
    assert_refused(run_cli("hdl-check", bundle, "--dataset", "digits", "-n", "3"), "manifest")


def test_node_names_cannot_inject_verilog(tmp_path):
    """A deployed graph's node names end up in Verilog comments: they must stay comments."""
    from hostile import DIGITS_SHAPE, digits_network

    from snncc import ir
    from snncc.backends import fpga
    from snncc.frontend.bstdg import BSTDGModel, to_graph

    weights, thresholds = digits_network()
    graph = to_graph(BSTDGModel(weights, thresholds, 16, DIGITS_SHAPE, 1 / 255, {}))
    hostile = "dense1\nmodule x; initial $finish; endmodule //"
    renamed = ir.Graph(graph.metadata)
    for name in graph.topological_order():
        new = hostile if name == "dense1" else name
        inputs = [hostile if s == "dense1" else s for s in graph.inputs_of(name)]
        renamed.add(new, graph.nodes[name], inputs)
    files = fpga.build_bundle(renamed, timesteps=16)
    network = files["hdl/snn_network.v"].decode()
    assert "\nmodule x;" not in network
