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
    if fmt == "ms":  # three significant digits down to microseconds
        ms = value * 1e3
        return f"{ms:.0f}" if abs(ms) >= 100 else f"{ms:.1f}" if abs(ms) >= 10 else f"{ms:.3g}"
    return fmt.format(value)
