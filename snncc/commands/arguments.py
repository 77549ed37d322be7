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


def parse_options(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``["convert.percentile=99.9", ...]`` -> ``{"convert": {"percentile": 99.9}}``."""
    options: dict[str, dict[str, Any]] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        pass_name, dot, option = key.partition(".")
        if not sep or not dot or not pass_name or not option:
            raise SnnccError(f"bad --option {item!r}: expected PASS.KEY=VALUE")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        options.setdefault(pass_name, {})[option] = value
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
        try:
            values[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[key.strip()] = raw
    return values
