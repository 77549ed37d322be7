"""snncc: a neuromorphic deployment compiler (ONNX / BSTDG -> graph IR -> passes -> backends)."""

from __future__ import annotations

__version__ = "0.1.0"
