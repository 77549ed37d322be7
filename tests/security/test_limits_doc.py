"""docs/untrusted-input.md states the limits snncc/safety.py enforces: table and code agree."""

from __future__ import annotations

import re
from pathlib import Path

from snncc import safety

DOC = Path(__file__).resolve().parents[2] / "docs" / "untrusted-input.md"
UNITS = {"": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def test_every_limit_is_documented_with_its_value():
    rows = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"\| `(MAX_\w+)` \| ([\d,]+) ?(KiB|MiB|GiB)? ", line)
        if match:
            rows[match[1]] = int(match[2].replace(",", "")) * UNITS[match[3] or ""]
    limits = {name: value for name, value in vars(safety).items() if name.startswith("MAX_")}
    assert rows == limits
