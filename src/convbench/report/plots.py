"""The report's figures (matplotlib, rendered off-screen to PNG bytes)."""

from __future__ import annotations

import io

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    _plt().close(fig)
    return buf.getvalue()


def accuracy(labels, orig, conv) -> bytes:
    """Accuracy of original and converted with 95% intervals: [(mean, lo, hi)] each."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.2))
    y = np.arange(len(labels))
    for off, series, name in ((-0.15, orig, "original"), (0.15, conv, "converted")):
        m = np.array([s[0] for s in series])
        err = np.array([[s[0] - s[1], s[2] - s[0]] for s in series]).T
        ax.errorbar(m, y + off, xerr=err, fmt="o", capsize=3, label=name)
    ax.set_yticks(y, labels)
    ax.set_xlabel("accuracy (95% interval)")
    ax.legend()
    return _png(fig)


def errors(labels, mean, p99, maximum) -> bytes:
    """Absolute output error per cell group (mean, p99, max) on a log scale."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.2))
    y = np.arange(len(labels))
    floor = 1e-12  # zero error shown at the floor of the log axis
    for vals, marker, name in ((mean, "o", "mean"), (p99, "s", "p99"), (maximum, "^", "max")):
        ax.scatter(np.maximum(np.asarray(vals, float), floor), y, marker=marker, label=name)
    ax.set_xscale("log")
    ax.set_yticks(y, labels)
    ax.set_xlabel("|original - converted| per output element")
    ax.legend()
    return _png(fig)


def paired_lines(series: dict[str, tuple[list, list, list]], xlabel: str, ylabel: str,
                 log: bool = False, scale: float = 1.0,
                 intervals: dict[str, tuple[list, list]] | None = None,
                 noisy: dict[str, tuple[list, list]] | None = None) -> bytes:
    """label -> (x, original y, converted y): original dashed, converted solid, one colour
    per label (latency against batch size, misclassification against eps). `intervals` gives
    (low, high) pairs per point as error bars; points marked in `noisy` get a red ring."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    rings = False
    for i, (label, (x, orig, conv)) in enumerate(series.items()):
        color = f"C{i % 10}"
        for j, (ys, style, role) in enumerate(((orig, "--o", "original"),
                                               (conv, "-s", "converted"))):
            y = np.asarray(ys, float) * scale
            ax.plot(x, y, style, color=color, label=f"{label} {role}")
            if intervals and label in intervals:
                lo, hi = (np.asarray(v, float) * scale for v in intervals[label][j])
                ax.errorbar(x, y, yerr=[np.maximum(y - lo, 0), np.maximum(hi - y, 0)],
                            fmt="none", ecolor=color, capsize=3, alpha=0.7)
            if noisy and label in noisy:
                mask = np.asarray(noisy[label][j], bool)
                if mask.any():
                    rings = True
                    ax.scatter(np.asarray(x)[mask], y[mask], s=140, facecolors="none",
                               edgecolors="red", linewidths=1.5, zorder=5)
    if rings:
        ax.scatter([], [], s=140, facecolors="none", edgecolors="red", label="noisy figure")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    return _png(fig)


def bars(labels, orig, conv, xlabel: str, scale: float = 1.0) -> bytes:
    """Paired horizontal bars: original vs converted (sizes, memory)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.2))
    y = np.arange(len(labels))
    ax.barh(y - 0.2, np.asarray(orig, float) / scale, height=0.4, label="original")
    ax.barh(y + 0.2, np.asarray(conv, float) / scale, height=0.4, label="converted")
    ax.set_yticks(y, labels)
    ax.set_xlabel(xlabel)
    ax.legend()
    return _png(fig)


def divergence(labels, rates) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.2))
    ax.barh(np.arange(len(labels)), rates)
    ax.set_yticks(np.arange(len(labels)), labels)
    ax.set_xlabel("conversion divergence rate (adversarial inputs with different labels)")
    return _png(fig)


def depth(profile: list[tuple[int, str, float, float]], first: str | None = None,
          title: str = "") -> bytes:
    """An explained cell's relative error op by op through the converted graph, against the
    error its precision explains; the first divergent op marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    floor = 1e-12  # exact ops shown at the floor of the log axis
    pos = [p for p, _, _, _ in profile]
    ax.plot(pos, [max(e, floor) for _, _, e, _ in profile], "o-", ms=3, label="relative error")
    ax.plot(pos, [t for _, _, _, t in profile], "--", color="grey", label="precision explains")
    for p, name, e, _ in profile:
        if name == first:
            ax.scatter([p], [max(e, floor)], s=80, facecolors="none", edgecolors="red",
                       label=f"first divergent: {name}"[:60])
    ax.set_yscale("log")
    ax.set_xlabel("op (execution order)")
    ax.set_ylabel("||conv - orig|| / ||orig||")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _png(fig)
