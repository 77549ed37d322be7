"""A peer reads snncc's NIR export: agreement of snnTorch's own NIR import with snncc.

For each shared snnTorch fixture, snncc imports the file, writes it back with ``--target nir``
(``convention=snntorch``: what snnTorch's exporter writes) and a peer environment loads that file
with its own NIR importer (``snntorch.import_nir.import_from_nir``),
feeds the first N test images as constant currents for T steps and counts output spikes. The
benchmark reports how often the peer's argmax agrees with snncc's simulator. Known peer bugs are
reported, not worked around: snnTorch 1.0.0 imports every LIF with ``reset_mechanism="zero"`` and
``reset_delay=False`` (its own exporter's subtract networks come back different) and imports
``IF`` as ``Leaky(beta=0.9, init_hidden=False)``, whose ``(spk, mem)`` tuple the next layer
cannot take (mnist_mlp converted to IF neurons that reset to zero, exported with the default
``spec`` convention, does not run in snnTorch's import).

The peer runs in its own Python (torch is not a snncc dependency): pass ``--peer-python`` or set
``SNNCC_PEER_PYTHON`` to an interpreter with torch, nir and snntorch.

    python benchmarks/bench_nir.py --peer-python PATH/bin/python --samples 1000

``--integer N`` instead measures snncc itself on each fixture: the float import against the
producer (agreement on the first 1,000 test images, full test accuracy), the network after
``fold,quantize`` for the Lava target (Loihi's integer CUBA rules, full test accuracy) and
lava-nc's simulator against snncc's integer mode on the first N images, raster by raster.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from snncc import engines
from snncc.backends.nir import write_nir
from snncc.datasets import load_dataset
from snncc.loading import load_model, model_inputs

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = ["snntorch_mnist_mlp_lif", "snntorch_fashion_mlp_if", "snntorch_mnist_cnn_lif"]

PEER = r"""
import json, sys, numpy as np, torch, nir
import snntorch.utils
from snntorch.import_nir import import_from_nir
path, data, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
x = torch.tensor(np.load(data), dtype=torch.float32)
net = import_from_nir(nir.read(path))
# one unbatched sample at a time: the files' Flatten(start_dim=0) (snnTorch's own export
# writes the same) becomes torch.nn.Flatten(0, -1) in the peer, which would flatten a batch too
preds = []
with torch.no_grad():
    for sample in x:
        snntorch.utils.reset(net)
        state, counts = None, 0
        for _ in range(steps):
            result = net(sample, state)
            out, state = result if isinstance(result, tuple) else (result, None)
            counts = counts + out
        preds.append(int(torch.as_tensor(counts).reshape(-1).argmax()))
print(json.dumps({"pred": preds}))
"""


def converted_mlp() -> Any:
    """mnist_mlp converted for reset to zero (the loihi2-netx profile's reset_zero pass: IF
    neurons that reset to zero and start at 0, what NIR's IF holds, bias-corrected), T = 32."""
    from snncc.pipeline import prepare

    source = load_model(SHARED / "models" / "mnist_mlp.onnx")
    graph, _ = prepare(source, ["convert", "reset_zero"], dataset="mnist",
                       data_dir=str(SHARED / "datasets"), timesteps=32)
    graph.metadata.update({"timesteps": 32, "dataset": "mnist"})
    return graph


def integer_figures(lava_samples: int) -> None:
    """The import, integer-mode and Lava figures of each fixture (see the module docstring)."""
    from snncc.backends import lava
    from snncc.pipeline import prepare

    for name in FIXTURES:
        graph = load_model(SHARED / "nir" / f"{name}.nir")
        steps = int(graph.metadata["timesteps"])
        dataset = graph.metadata["dataset"]
        test = load_dataset(dataset, "test", SHARED / "datasets")
        reference = np.load(SHARED / "nir" / f"{name}.npz")
        float_run = engines.run(graph, model_inputs(graph, test), steps, labels=test.labels)
        agreement = np.mean(float_run.predictions[-1][:1000] == reference["pred"])
        integer, _ = prepare(graph, ["fold", "quantize"], dataset=dataset,
                             data_dir=str(SHARED / "datasets"), timesteps=steps,
                             options={"quantize": {"target": "lava"}})
        raw = model_inputs(integer, test)
        integer_run = engines.run(integer, raw, steps, labels=test.labels)
        few = test.take(lava_samples)
        ours = engines.run(integer, raw[:lava_samples], steps, labels=few.labels, record=True)
        theirs = lava.run(integer, raw[:lava_samples], steps, labels=few.labels, record=True)
        exact = all(np.array_equal(ours.rasters[k], theirs.rasters[k]) for k in ours.rasters) \
            and np.array_equal(ours.predictions, theirs.predictions) \
            and np.array_equal(ours.readout_state, theirs.readout_state)
        producer = graph.metadata["producer_test_accuracy"]
        print(f"{name}: agreement with the producer {agreement:.1%} (first 1,000); accuracy "
              f"{float_run.accuracy:.2%} float / {integer_run.accuracy:.2%} integer after "
              f"fold,quantize (producer {producer:.2%}: {100 * (float_run.accuracy - producer):+.2f}"
              f" / {100 * (integer_run.accuracy - producer):+.2f} pp); lava vs simulator on "
              f"{lava_samples}: {'bit-exact' if exact else 'DIFFERENT'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", default=os.environ.get("SNNCC_PEER_PYTHON"))
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--integer", type=int, metavar="N",
                        help="measure import, integer mode and Lava (N samples) instead")
    args = parser.parse_args()
    if args.integer:
        integer_figures(args.integer)
        return
    if not args.peer_python:
        sys.exit("bench_nir: give --peer-python or SNNCC_PEER_PYTHON (a Python with torch, nir "
                 "and snntorch)")
    networks = [(name, load_model(SHARED / "nir" / f"{name}.nir"), "snntorch")
                for name in FIXTURES]
    networks.append(("mnist_mlp (converted, IF reset to zero)", converted_mlp(), "spec"))
    for name, graph, convention in networks:
        steps = int(graph.metadata["timesteps"])
        test = load_dataset(graph.metadata["dataset"], "test", SHARED / "datasets").take(
            args.samples)
        raw = model_inputs(graph, test)
        ours = engines.run(graph, raw, steps).predictions[-1]
        with tempfile.TemporaryDirectory() as folder:
            exported = write_nir(graph, Path(folder) / "network.nir", convention=convention)
            data = Path(folder) / "x.npy"
            np.save(data, graph.input.preprocess(raw).astype(np.float32))
            done = subprocess.run([args.peer_python, "-c", PEER, str(exported), str(data),
                                   str(steps)], capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{name}: snnTorch could not run snncc's export: {last}")
            continue
        peer = np.array(json.loads(done.stdout.strip().splitlines()[-1])["pred"])
        agreement = float(np.mean(peer == ours))
        accuracy = float(np.mean(peer == test.labels))
        print(f"{name}: snnTorch's import of snncc's NIR agrees with snncc on {agreement:.1%} "
              f"of {len(ours)} images (peer accuracy {accuracy:.2%}, snncc "
              f"{np.mean(ours == test.labels):.2%})")


if __name__ == "__main__":
    main()
