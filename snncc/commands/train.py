"""``snncc train bstdg``: train a binarized single-spike network and write a ``.bstdg.h5`` file."""

from __future__ import annotations

from pathlib import Path

import typer

from snncc.errors import SnnccError
from snncc.train.config import PRUNING_RECIPE, BSTDGConfig


def _hidden_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise SnnccError(f"--hidden must be sizes like 600 or 400,200, got {text!r}") from None
    return sizes


def _defaults(name: str, words: tuple[str, str] | None = None) -> str:
    """``(default X; Y with --target-sparsity)`` from the config and the pruning recipe."""
    def shown(value: object) -> str:
        return words[bool(value)] if words else f"{value:g}"

    dense = getattr(BSTDGConfig(), name)
    return f"(default {shown(dense)}; {shown(PRUNING_RECIPE[name])} with --target-sparsity)"


def register(app: typer.Typer) -> None:
    """Add the ``train`` command group to ``app``."""
    train_app = typer.Typer(help="Train networks that snncc can deploy.", no_args_is_help=True)

    @train_app.command("bstdg")
    def bstdg(
        dataset: str = typer.Option(..., help="mnist, fashion-mnist or digits"),
        output: Path = typer.Option(..., "-o", "--output", help="network file (.bstdg.h5)"),
        data_dir: Path | None = typer.Option(None, help="folder with the IDX files"),
        hidden: str = typer.Option("600", help="hidden layer sizes, e.g. 600 or 400,200"),
        epochs: int = typer.Option(30, help="training epochs"),
        tmax: int = typer.Option(256, help="time steps of the latency code (t_max)"),
        seed: int = typer.Option(0, help="random seed (runs are deterministic)"),
        batch_size: int | None = typer.Option(
            None, help=f"minibatch size {_defaults('batch_size')}"),
        learning_rate: float | None = typer.Option(
            None, help=f"initial Adam learning rate {_defaults('learning_rate')}"),
        threshold_learning_rate: float | None = typer.Option(
            None, help="threshold learning rate, relative to the weights' schedule "
                       f"{_defaults('threshold_learning_rate')}"),
        margin: float | None = typer.Option(
            None, help=f"output margin gamma as a fraction of t_max {_defaults('margin')}"),
        init_positive: bool | None = typer.Option(
            None, "--positive-init/--symmetric-init",
            help="shadow weights start in U(0, s) (all +1, positive) or U(-s, s) (symmetric; "
                 "pruning-aware runs need mixed signs) "
                 f"{_defaults('init_positive', ('symmetric', 'positive'))}"),
        shift: int = typer.Option(
            0, help="augmentation: random translations of up to this many pixels"),
        target_sparsity: float = typer.Option(
            0.0, help="pruning-aware training: fraction of synapses removed, in [0, 1)"),
        limit: int | None = typer.Option(None, help="use only the first N samples of each split"),
        resume: bool = typer.Option(False, help="continue from <output>.ckpt.npz"),
    ) -> None:
        """Train a BSTDG network (binary weights, one spike per neuron) on a dataset."""
        from snncc.train.bstdg import train_dataset

        config = BSTDGConfig.recipe(
            target_sparsity, hidden=_hidden_sizes(hidden), t_max=tmax, epochs=epochs, seed=seed,
            batch_size=batch_size, learning_rate=learning_rate,
            threshold_learning_rate=threshold_learning_rate, margin=margin,
            init_positive=init_positive, shift=shift)
        result = train_dataset(
            config, dataset, output, data_dir=data_dir, resume=resume, limit=limit,
            on_epoch=lambda record: typer.echo(record.line(config.epochs), err=True),
        )
        accuracy = result.test_accuracy
        shown = "n/a" if accuracy is None else f"{accuracy:.2%}"
        typer.echo(f"wrote {output} (test accuracy {shown})")

    app.add_typer(train_app, name="train")
