"""Parsers of command-line values shared by every command (one line of error for bad input)."""

from __future__ import annotations

import json
import math
from typing import Any

from snncc.errors import SnnccError


def parse_passes(text: str | None) -> list[str] | None:
    """``"convert,fold"`` -> ``["convert", "fold"]``; ``None`` (not given) stays ``None``."""
    if text is None:
        return None
    return [p.strip() for p in text.split(",") if p.strip()]


def parse_value(text: str) -> Any:
    """A value given on the command line: JSON when it parses (numbers, ``true``), else the
    string itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_options(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``["convert.percentile=99.9", ...]`` -> ``{"convert": {"percentile": 99.9}}``."""
    options: dict[str, dict[str, Any]] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        pass_name, dot, option = key.partition(".")
        if not sep or not dot or not pass_name or not option:
            raise SnnccError(f"bad --option {item!r}: expected PASS.KEY=VALUE")
        options.setdefault(pass_name, {})[option] = parse_value(raw)
    from snncc.passes import check_options

    check_options(options)  # pass names, option names and value kinds, before any work
    return options


def parse_preprocess(scale: float | None, mean: str | None,
                     std: str | None) -> dict[str, Any] | None:
    def floats(text: str | None, what: str) -> list[float] | None:
        if text is None:
            return None
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise SnnccError(f"--{what} must be comma-separated numbers, got {text!r}") from None
        if not all(math.isfinite(v) for v in values):
            raise SnnccError(f"--{what} must be finite numbers, got {text!r}")
        return values

    if scale is not None and not math.isfinite(scale):
        raise SnnccError(f"--scale must be a finite number, got {scale}")
    values = {"scale": scale, "mean": floats(mean, "mean"), "std": floats(std, "std")}
    values = {k: v for k, v in values.items() if v is not None}
    return values or None


def parse_key_values(items: list[str] | None, flag: str) -> dict[str, Any]:
    """``["fpga_part=zynq-7020", "strict=true"]`` -> ``{"fpga_part": "zynq-7020", "strict": True}``
    (values read as JSON when they are JSON, else as strings)."""
    values: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise SnnccError(f"bad {flag} {item!r}: expected KEY=VALUE")
        values[key.strip()] = parse_value(raw)
    return values


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["T=8,16", "convert.percentile=99.9,99.99"]`` -> ``{"T": [8, 16], ...}`` (``--grid``;
    the keys' rules are :mod:`snncc.sweep`'s)."""
    from snncc.sweep import add_axis

    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SnnccError(f"bad --grid {item!r}: expected KEY=V1,V2,... "
                             f"(e.g. T=8,16,32 or convert.percentile=99.9,99.99)")
        add_axis(grid, key, [parse_value(text.strip()) for text in raw.split(",")
                             if text.strip()])
    return grid
