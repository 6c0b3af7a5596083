"""Formatting of raw stored numbers for people (tables on the terminal and in reports)."""

from __future__ import annotations

import math


def format_value(value: float | None, fmt: str) -> str:
    """`fmt` is a format string, "bytes" (B, KB, MB, GB) or "ms" (seconds shown in ms)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if fmt == "bytes":
        for unit in ("B", "KB", "MB", "GB"):
            if abs(value) < 1024 or unit == "GB":
                return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
            value /= 1024
    if fmt == "ms":
        return f"{value * 1e3:.2f}"
    return fmt.format(value)
