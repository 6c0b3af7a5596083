"""Assembling the report from the store: RQ1-RQ3 tables and plots, statistics over runs, the
study's findings beside convbench's, conversion outcomes, environment."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from convbench.formatting import format_value as fv
from convbench.report import plots
from convbench.report.doc import Figure, Section, Table, to_html, to_markdown
from convbench.report.findings import compare
from convbench.report.stats import mean_std, wilcoxon_paired, wilson
from convbench.store import Store

GroupKey = tuple[str, str, str, str, str]


def _groups(cells) -> dict[GroupKey, list[dict[str, Any]]]:
    out: dict[GroupKey, list] = defaultdict(list)
    for c in cells:
        if c["status"] == "ok":
            out[(c["framework"], c["model"], c["dataset"], c["format"], c["runtime"])].append(c)
    return dict(sorted(out.items()))


def _label(k: GroupKey) -> str:
    return f"{k[0]} {k[1]} {k[2]} -> {k[3]}"


def _ms(cells, name) -> tuple[float, float]:
    return mean_std([c["metrics"].get(name) for c in cells])


def _pm(cells, name, fmt="{:.4f}") -> str:
    m, s = _ms(cells, name)
    if np.isnan(m):
        return "-"
    return fv(m, fmt) + (f" ± {fv(s, fmt)}" if len(cells) > 1 else "")


def _acc_interval(cells, role) -> tuple[float, float, float]:
    """Mean accuracy and its 95% Wilson interval on all test samples of all runs."""
    n = sum(c["metrics"].get("n", 0) for c in cells)
    m = _ms(cells, f"accuracy_{role}")[0]
    lo, hi = wilson(m, n)
    return m, lo, hi


def _rq1(groups) -> Section:
    rows, acc_o, acc_c, labels = [], [], [], []
    for k, cells in groups.items():
        o, c = _acc_interval(cells, "original"), _acc_interval(cells, "converted")
        p = [x["metrics"].get("mcnemar_p", 1.0) for x in cells]
        rows.append([_label(k), str(len(cells)), f"{o[0]:.4f} [{o[1]:.4f}, {o[2]:.4f}]",
                     f"{c[0]:.4f} [{c[1]:.4f}, {c[2]:.4f}]", _pm(cells, "label_flips", "{:.1f}"),
                     _pm(cells, "abs_err_mean", "{:.2e}"), _pm(cells, "abs_err_max", "{:.2e}"),
                     _pm(cells, "bitwise_mismatch_rate", "{:.1%}"), f"{min(p):.3g}",
                     "significant" if min(p) < 0.05 else "not significant"])
        labels.append(_label(k))
        acc_o.append(o)
        acc_c.append(c)
    s = Section("RQ1: does the converted model keep its predictions?")
    s.blocks.append("Accuracy with its 95% Wilson interval over all test samples of all runs; "
                    "other columns are mean ± standard deviation over training runs. McNemar's "
                    "exact test compares the paired correctness of original and converted "
                    "(smallest p over runs).")
    s.blocks.append(Table(["cell", "runs", "accuracy original", "accuracy converted", "flips",
                           "abs err mean", "abs err max", "bitwise mismatch", "McNemar p",
                           "difference"], rows))
    if rows:
        s.blocks.append(Figure("accuracy", plots.accuracy(labels, acc_o, acc_c),
                               "Accuracy before and after conversion (95% intervals)"))
        s.blocks.append(Figure("errors", plots.errors(
            labels, *[[_ms(g, m)[0] for g in groups.values()]
                      for m in ("abs_err_mean", "abs_err_p99", "abs_err_max")]),
            "Distribution of absolute output errors (mean, p99, max)"))
    return s


def _batch_sizes(cells) -> list[int]:
    return sorted({int(k.split("_bs")[1].split("_")[0]) for c in cells for k in c["metrics"]
                   if k.startswith("latency_median_s_bs")})


def _rq2(groups, holds) -> Section:
    rows, stat_rows, series = [], [], {}
    for k, cells in groups.items():
        bs = _batch_sizes(cells)
        lat = "; ".join(f"b{b}: {_pm(cells, f'latency_median_s_bs{b}_original', 'ms')} -> "
                        f"{_pm(cells, f'latency_median_s_bs{b}_converted', 'ms')}" for b in bs)
        rows.append([_label(k), _pm(cells, "size_bytes_original", "bytes"),
                     _pm(cells, "size_bytes_converted", "bytes"), holds.get(k, "-"),
                     _pm(cells, "load_s_original", "{:.3f}"),
                     _pm(cells, "load_s_converted", "{:.3f}"), _pm(cells, "convert_s", "{:.2f}"),
                     lat, _pm(cells, "peak_rss_bytes_original", "bytes"),
                     _pm(cells, "peak_rss_bytes_converted", "bytes")])
        if bs:
            b = bs[-1]
            o = [c["metrics"].get(f"latency_median_s_bs{b}_original") for c in cells]
            v = [c["metrics"].get(f"latency_median_s_bs{b}_converted") for c in cells]
            w = wilcoxon_paired(o, v)
            stat_rows.append([_label(k), str(b), str(len(cells)), fv(w["p"], "{:.3g}"),
                              fv(w["effect"], "{:+.2f}"), w["verdict"]])
            series[_label(k)] = (bs, [_ms(cells, f"latency_median_s_bs{x}_original")[0]
                                      for x in bs],
                                 [_ms(cells, f"latency_median_s_bs{x}_converted")[0] for x in bs])
    s = Section("RQ2: what does the conversion cost or save?")
    s.blocks.append("Sizes say what each file holds. Latency: median wall time per batch after "
                    "warm-up, original -> converted, in ms. Memory: peak resident set of a fresh "
                    "process running the runtime.")
    s.blocks.append(Table(["cell", "size original", "size converted", "what the files hold",
                           "load s original", "load s converted", "convert s",
                           "latency ms per batch", "peak RSS original", "peak RSS converted"],
                          rows))
    s.blocks.append(Table(["cell", "batch", "runs", "Wilcoxon p", "effect (rank-biserial)",
                           "verdict"], stat_rows,
                          "Latency across training runs, original vs converted at the largest "
                          "batch: Wilcoxon signed-rank test"))
    labels = [_label(k) for k in groups]
    if series:
        png = plots.paired_lines(series, "batch size", "median ms per batch", log=True,
                                 scale=1e3)
        s.blocks.append(Figure("latency", png, "Latency against batch size (original dashed, "
                                               "converted solid)"))
    if labels:
        s.blocks.append(Figure("size", plots.bars(
            labels, [_ms(g, "size_bytes_original")[0] for g in groups.values()],
            [_ms(g, "size_bytes_converted")[0] for g in groups.values()], "file size (KB)",
            1024), "Model file sizes"))
        if any("peak_rss_bytes_original" in c["metrics"] for g in groups.values() for c in g):
            s.blocks.append(Figure("memory", plots.bars(
                labels, [_ms(g, "peak_rss_bytes_original")[0] for g in groups.values()],
                [_ms(g, "peak_rss_bytes_converted")[0] for g in groups.values()],
                "peak resident memory (MB)", 2 ** 20), "Peak memory of each runtime"))
    return s


def _attacks_in(cells) -> list[str]:
    return sorted({k[: -len("_misclass_original")] for c in cells for k in c["metrics"]
                   if k.endswith("_misclass_original") and "_reverse" not in k and "_eps" not in k})


def _fgsm_curve(cells):
    """(eps, misclassified original, misclassified converted) over the sweep and the main eps."""
    main = cells[0]["info"].get("attacks", {}).get("fgsm", {}).get("params", {}).get("eps")
    names = {float(m.split("_eps")[1].split("_")[0]): f"fgsm_eps{m.split('_eps')[1].split('_')[0]}"
             for c in cells for m in c["metrics"] if m.startswith("fgsm_eps")}
    if not names:
        return None
    if main is not None and "fgsm_misclass_original" in cells[0]["metrics"]:
        names[float(main)] = "fgsm"
    eps = sorted(names)
    return (eps, [_ms(cells, f"{names[e]}_misclass_original")[0] for e in eps],
            [_ms(cells, f"{names[e]}_misclass_converted")[0] for e in eps])


def _rq3(groups) -> Section:
    rows, div_labels, div_rates, curves = [], [], [], {}
    for k, cells in groups.items():
        for a in _attacks_in(cells):
            rows.append([_label(k), a, _pm(cells, f"{a}_n", "{:.0f}"),
                         _pm(cells, f"{a}_misclass_original", "{:.1%}"),
                         _pm(cells, f"{a}_misclass_converted", "{:.1%}"),
                         _pm(cells, f"{a}_divergence", "{:.1f}"),
                         _pm(cells, f"{a}_divergence_rate", "{:.1%}"),
                         _pm(cells, f"{a}_abs_out_diff_mean", "{:.2e}"),
                         _pm(cells, f"{a}_reverse_misclass_converted", "{:.1%}"),
                         _pm(cells, f"{a}_reverse_misclass_original", "{:.1%}"),
                         _pm(cells, f"{a}_reverse_divergence", "{:.1f}")])
            div_labels.append(f"{_label(k)} {a}")
            div_rates.append(_ms(cells, f"{a}_divergence_rate")[0])
        curve = _fgsm_curve(cells)
        if curve:
            curves[_label(k)] = curve
    s = Section("RQ3: does the converted model keep its robustness?")
    s.blocks.append("Adversarial inputs crafted on the original and fed to both (forward), and "
                    "for attacks that need only predictions, crafted on the converted model's "
                    "runtime and replayed on the original (reverse). Divergence: adversarial "
                    "inputs on which the two models' labels differ.")
    s.blocks.append(Table(["cell", "attack", "inputs", "misclassified original",
                           "misclassified converted", "divergence", "divergence rate",
                           "mean abs output diff", "reverse: converted", "reverse: original",
                           "reverse divergence"], rows))
    if curves:
        png = plots.paired_lines(curves, "FGSM eps (L-inf, inputs in [0, 1])",
                                 "misclassification rate")
        s.blocks.append(Figure("robustness", png,
                               "Robustness curves: FGSM misclassification over eps"))
    if div_labels:
        s.blocks.append(Figure("divergence", plots.divergence(div_labels, div_rates),
                               "Conversion divergence per attack"))
    return s


def _outcomes(cells) -> Section:
    bad = [c for c in cells if c["status"] != "ok"]
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for c in bad:
        counts[(c["status"], c["category"])] += 1
    s = Section("Conversion outcomes")
    s.blocks.append(f"{len(cells) - len(bad)} of {len(cells)} cells finished; failures and "
                    f"skips are results too.")
    s.blocks.append(Table(["status", "category", "cells"],
                          [[st, cat, str(n)] for (st, cat), n in sorted(counts.items())]))
    s.blocks.append(Table(["cell", "status", "category", "message"],
                          [[f"{c['framework']} {c['model']} {c['dataset']} -> {c['format']} "
                            f"run {c['run']}", c["status"], c["category"],
                            c["message"][:400]] for c in bad]))
    return s


def _environment(store: Store, cells) -> Section:
    s = Section("Environment")
    for env_id in sorted({c["env_id"] for c in cells if c["env_id"]}):
        env = store.environment_of(env_id)
        s.blocks.append(Table(["what", "value"], [
            ["CPU", f"{env.get('cpu')} ({env.get('cpu_count')} cores)"],
            ["platform", env.get("platform", "-")], ["python", env.get("python", "-")],
            ["git commit", env.get("git_commit") or "-"],
            *[[name, version] for name, version in sorted(env.get("packages", {}).items())]],
            f"environment {env_id}"))
    return s


def build_report(store_path: str | Path, out_dir: str | Path) -> tuple[Path, Path]:
    """Write `report.md` (with its PNGs in `figures/`) and a self-contained `report.html`."""
    with Store(store_path) as store:
        cells = list(store.cells())
        groups = _groups(cells)
        holds = {k: f"{g[0]['artifacts'].get('original', {}).get('meta', {}).get('holds', '-')}"
                    f" / {g[0]['artifacts'].get('converted', {}).get('meta', {}).get('holds', '-')}"
                 for k, g in groups.items()}
        intro = Section("About this report", [
            f"Built from {Path(store_path).resolve()} on "
            f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC: {len(cells)} cells of the "
            f"studies {', '.join(sorted({c['study'] or '-' for c in cells})) or '-'}."])
        paper = Section("The study beside convbench", [
            "Openja et al., ICSME 2022 (../shared/STUDY.md), finding by finding.",
            Table(["finding", "the study", "convbench", "verdict", "why it differs"],
                  compare(cells))])
        sections = [intro, _rq1(groups), _rq2(groups, holds), _rq3(groups), paper,
                    _outcomes(cells), _environment(store, cells)]
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for s in sections:
        for b in s.blocks:
            if isinstance(b, Figure):
                (out / "figures" / f"{b.name}.png").write_bytes(b.png)
    title = "convbench report"
    md, html = out / "report.md", out / "report.html"
    md.write_text(to_markdown(title, sections, "figures"))
    html.write_text(to_html(title, sections))
    return md, html
