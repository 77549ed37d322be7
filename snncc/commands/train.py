"""``snncc train bstdg``: train a binarized single-spike network and write a ``.bstdg.h5`` file."""

from __future__ import annotations

from pathlib import Path

import typer

from snncc.errors import SnnccError
from snncc.train.config import PRUNING_MODES, BSTDGConfig, recipe_config


def _hidden_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise SnnccError(f"--hidden must be sizes like 600 or 400,200, got {text!r}") from None
    return sizes


def _default(name: str) -> str:
    """``(MNIST default X)`` from :class:`BSTDGConfig`, so help never drifts from the code."""
    value = getattr(BSTDGConfig(), name)
    shown = ",".join(map(str, value)) if isinstance(value, tuple) else f"{value:g}"
    return f"(MNIST default {shown})"


def register(app: typer.Typer) -> None:
    """Add the ``train`` command group to ``app``."""
    train_app = typer.Typer(help="Train networks that snncc can deploy.", no_args_is_help=True)

    @train_app.command("bstdg")
    def bstdg(
        dataset: str = typer.Option(..., help="mnist, fashion-mnist or digits"),
        output: Path = typer.Option(..., "-o", "--output", help="network file (.bstdg.h5)"),
        data_dir: Path | None = typer.Option(None, help="folder with the IDX files"),
        hidden: str | None = typer.Option(
            None, help=f"hidden layer sizes, e.g. 600 or 400,200 {_default('hidden')}"),
        epochs: int | None = typer.Option(None, help=f"training epochs {_default('epochs')}"),
        tmax: int | None = typer.Option(
            None, help=f"time steps of the latency code (t_max) {_default('t_max')}"),
        seed: int = typer.Option(0, help="random seed (runs are deterministic)"),
        learning_rate: float | None = typer.Option(
            None, help="initial per-sample SGD learning rate, decayed to 1/100 on a cosine "
                       f"(MNIST default {BSTDGConfig().learning_rate:g}; "
                       f"{BSTDGConfig(target_sparsity=0.5, pruning='gradr').learning_rate:g} "
                       "with --pruning gradr)"),
        threshold_learning_rate: float | None = typer.Option(
            None, help="threshold learning rate, on the weights' schedule "
                       f"{_default('threshold_learning_rate')}"),
        margin: float | None = typer.Option(
            None, help="output margin gamma as a fraction of t_max (default "
                       f"1/{round(1 / BSTDGConfig().margin)}: one step at t_max 256)"),
        potential_margin: int | None = typer.Option(
            None, help="potential margin m: the error sees the correct output neuron with "
                       "threshold + m and the others with threshold - m "
                       f"{_default('potential_margin')}"),
        hidden_threshold: float | None = typer.Option(
            None, help=f"initial hidden-layer threshold {_default('hidden_threshold')}"),
        output_threshold: float | None = typer.Option(
            None, help=f"initial output-layer threshold {_default('output_threshold')}"),
        init_positive: bool | None = typer.Option(
            None, "--positive-init/--symmetric-init",
            help="one-hidden-layer networks: shadow weights start in U(0, s) (all +1) or "
                 "U(-s, s) (MNIST default positive)"),
        shift: int = typer.Option(
            0, help="augmentation: random translations of up to this many pixels"),
        target_sparsity: float = typer.Option(
            0.0, help="pruning-aware training: fraction of synapses removed, in [0, 1)"),
        pruning: str = typer.Option(
            "magnitude", help=f"pruning-aware mode: {' or '.join(PRUNING_MODES)} (fixed signs, "
                              "Gradient Rewiring)"),
        balanced_fan_in: bool = typer.Option(
            True, "--balanced-fan-in/--unbalanced-fan-in",
            help="pruning: every neuron of a layer keeps the same number of synapses (+-1), or "
                 "the layer's weakest go wherever they are"),
        limit: int | None = typer.Option(None, help="use only the first N samples of each split"),
        resume: bool = typer.Option(False, help="continue from <output>.ckpt.npz"),
    ) -> None:
        """Train a BSTDG network (binary weights, one spike per neuron) on a dataset.

        Options left out take the dataset's recipe: the MNIST defaults shown,
        higher thresholds for fashion-mnist, a small network without margin for digits.
        """
        from snncc.train.bstdg import train_dataset

        config = recipe_config(
            dataset, hidden=None if hidden is None else _hidden_sizes(hidden), t_max=tmax,
            epochs=epochs, seed=seed, shift=shift, target_sparsity=target_sparsity,
            pruning=pruning, balanced_fan_in=balanced_fan_in, learning_rate=learning_rate,
            threshold_learning_rate=threshold_learning_rate, margin=margin,
            potential_margin=potential_margin, hidden_threshold=hidden_threshold,
            output_threshold=output_threshold, init_positive=init_positive)
        result = train_dataset(
            config, dataset, output, data_dir=data_dir, resume=resume, limit=limit,
            on_epoch=lambda record: typer.echo(record.line(config.epochs), err=True),
        )
        accuracy = result.test_accuracy
        shown = "n/a" if accuracy is None else f"{accuracy:.2%}"
        typer.echo(f"wrote {output} (test accuracy {shown})")

    app.add_typer(train_app, name="train")
