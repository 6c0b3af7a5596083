"""Assembling the report from the store: RQ1-RQ3 tables and plots, statistics over runs, the
study's findings beside convbench's, outcomes, environment. Every number is found by its
fields (`Metric`), never by parsing a name."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path

import numpy as np

from convbench.formatting import format_value as fv
from convbench.measures.agreement import mcnemar_from_counts
from convbench.measures.latency import noisy_reason
from convbench.records import Status, StoredCell
from convbench.report import plots
from convbench.report.doc import Figure, Section, Table, to_html, to_markdown
from convbench.report.findings import compare, study_numbers
from convbench.report.stats import mean_std, wilcoxon_paired, wilson
from convbench.results import attack_names, latency_batches, on_interpreter
from convbench.store import Store

GroupKey = tuple[str, str, str, str, str]
Cells = list[StoredCell]
NOISY = "*"


def _groups(cells: Cells) -> dict[GroupKey, Cells]:
    out: dict[GroupKey, Cells] = defaultdict(list)
    for c in cells:
        if c.status is Status.OK:
            k = c.key
            out[(k.framework, k.model, k.dataset, k.format, k.runtime)].append(c)
    return dict(sorted(out.items()))


def _label(k: GroupKey) -> str:
    return f"{k[0]} {k[1]} {k[2]} -> {k[3]}"


def _values(cells: Cells, measure: str, **fields) -> list[float | None]:
    return [c.metrics.get(measure, **fields) for c in cells]


def _ms(cells: Cells, measure: str, **fields) -> tuple[float, float]:
    return mean_std(_values(cells, measure, **fields))


def _pm(cells: Cells, fmt: str, measure: str, **fields) -> str:
    m, s = _ms(cells, measure, **fields)
    if np.isnan(m):
        return "-"
    return fv(m, fmt) + (f" ± {fv(s, fmt)}" if len(cells) > 1 else "")


def _acc_interval(cells: Cells, role: str) -> tuple[float, float, float]:
    """Mean accuracy and its 95% Wilson interval on all test samples of all runs."""
    n = sum(v or 0 for v in _values(cells, "inputs"))
    m = _ms(cells, "accuracy", role=role)[0]
    lo, hi = wilson(m, n)
    return m, lo, hi


def _mcnemar(cells: Cells, **where) -> float | None:
    """McNemar's exact p over the runs' pooled paired predictions (schema-1 stores, which
    kept no discordant counts: the smallest p of the runs)."""
    b = _values(cells, "correct_only", role="original", **where)
    c = _values(cells, "correct_only", role="converted", **where)
    if b and None not in b and None not in c:
        return mcnemar_from_counts(int(sum(b)), int(sum(c)))
    ps = [p for p in _values(cells, "mcnemar", **where) if p is not None]
    return min(ps) if ps else None


def _rq1(groups: dict[GroupKey, Cells]) -> Section:
    rows, acc_o, acc_c, labels = [], [], [], []
    for k, cells in groups.items():
        o, c = _acc_interval(cells, "original"), _acc_interval(cells, "converted")
        p = _mcnemar(cells)
        rows.append([_label(k), str(len(cells)), f"{o[0]:.4f} [{o[1]:.4f}, {o[2]:.4f}]",
                     f"{c[0]:.4f} [{c[1]:.4f}, {c[2]:.4f}]", _pm(cells, "{:.1f}", "label_flips"),
                     _pm(cells, "{:.1f}", "tie_flips"),
                     _pm(cells, "{:.2e}", "abs_err", stat="mean"),
                     _pm(cells, "{:.2e}", "abs_err", stat="max"),
                     _pm(cells, "{:.1%}", "bitwise_mismatch"), fv(p, "{:.3g}"),
                     "-" if p is None else "significant" if p < 0.05 else "not significant"])
        labels.append(_label(k))
        acc_o.append(o)
        acc_c.append(c)
    s = Section("RQ1: does the converted model keep its predictions?")
    s.blocks.append("Accuracy with its 95% Wilson interval over all test samples of all runs; "
                    "other columns are mean ± standard deviation over training runs. McNemar's "
                    "exact test compares the paired correctness of original and converted, "
                    "pooled over runs. A flip is a tie when the original scores its label "
                    "and the converted model's label within the converted format's rounding "
                    "of each other (gap <= (|a| + |b|) * u, u = 2^-11 in float16, 2^-24 in "
                    "float32): that precision cannot say which label is first.")
    s.blocks.append(Table(["cell", "runs", "accuracy original", "accuracy converted", "flips",
                           "of which ties", "abs err mean", "abs err max", "bitwise mismatch", "McNemar p",
                           "difference"], rows))
    if rows:
        s.blocks.append(Figure("accuracy", plots.accuracy(labels, acc_o, acc_c),
                               "Accuracy before and after conversion (95% intervals)"))
        s.blocks.append(Figure("errors", plots.errors(
            labels, *[[_ms(g, "abs_err", stat=st)[0] for g in groups.values()]
                      for st in ("mean", "p99", "max")]),
            "Distribution of absolute output errors (mean, p99, max)"))
    return s


def _batches(cells: Cells) -> list[int]:
    return sorted({b for c in cells for b in latency_batches(c)})


def _trusted(cells: Cells, role: str, batch: int) -> list[float | None]:
    """Each run's median at `batch`, None where it is noisy (tests leave such runs out)."""
    ms = [c.metrics.one("latency", stat="median", role=role, batch_size=batch) for c in cells]
    return [None if m is None or m.noisy else m.value for m in ms]


def _noisy(cells: Cells, role: str, batch: int) -> bool:
    return any(m.noisy for c in cells
               for m in c.metrics.find(measure="latency", stat="median", role=role,
                                       batch_size=batch))


def _latency_text(cells: Cells, batch: int) -> str:
    parts = []
    for role in ("original", "converted"):
        text = _pm(cells, "ms", "latency", stat="median", role=role, batch_size=batch)
        parts.append(text + (NOISY if _noisy(cells, role, batch) else ""))
    return f"b{batch}: {parts[0]} -> {parts[1]}"


def _rq2(groups: dict[GroupKey, Cells], holds: dict[GroupKey, str]) -> Section:
    rows, stat_rows, noisy_rows = [], [], []
    series, intervals, marks = {}, {}, {}
    for k, cells in groups.items():
        bs = _batches(cells)
        interp = any(on_interpreter(c) for c in cells)
        rows.append([_label(k) + (" (interpreter)" if interp else ""),
                     _pm(cells, "bytes", "size", role="original"),
                     _pm(cells, "bytes", "size", role="converted"), holds.get(k, "-"),
                     _pm(cells, "{:.3f}", "load_time", role="original"),
                     _pm(cells, "{:.3f}", "load_time", role="converted"),
                     _pm(cells, "{:.2f}", "convert_time"),
                     "; ".join(_latency_text(cells, b) for b in bs),
                     _pm(cells, "bytes", "memory", stat="peak", role="original"),
                     _pm(cells, "bytes", "memory", stat="peak", role="converted")])
        if not bs:
            continue
        b = 128 if 128 in bs else bs[-1]
        pairs = [(o, v) for o, v in zip(_trusted(cells, "original", b),
                                         _trusted(cells, "converted", b))
                 if o is not None and v is not None]
        w = wilcoxon_paired([o for o, _ in pairs], [v for _, v in pairs])
        stat_rows.append([_label(k), str(b), str(len(pairs)), fv(w["p"], "{:.3g}"),
                          fv(w["effect"], "{:+.2f}"), w["verdict"]])
        label = _label(k)
        med = {r: [_ms(cells, "latency", stat="median", role=r, batch_size=x)[0] for x in bs]
               for r in ("original", "converted")}
        series[label] = (bs, med["original"], med["converted"])
        marks[label] = tuple([_noisy(cells, r, x) for x in bs] for r in ("original", "converted"))
        if len(cells) == 1:  # one run: its figures' own intervals
            c = cells[0]
            intervals[label] = tuple(
                ([c.metrics.get("latency", stat="ci_low", role=r, batch_size=x) or np.nan
                  for x in bs],
                 [c.metrics.get("latency", stat="ci_high", role=r, batch_size=x) or np.nan
                  for x in bs]) for r in ("original", "converted"))
        for c in cells:
            for r in ("original", "converted"):
                for x in bs:
                    got = c.metrics.find(measure="latency", role=r, batch_size=x)
                    if any(m.noisy for m in got):
                        noisy_rows.append([f"{label} run {c.key.run}", r, str(x),
                                           fv(c.metrics.get("latency", stat="median", role=r,
                                                            batch_size=x), "ms"),
                                           noisy_reason(got)])
    s = Section("RQ2: what does the conversion cost or save?")
    s.blocks.append("Sizes say what each file holds. Load time, memory and latency are taken "
                    "in a fresh process per model. Latency: median wall time per batch in ms, "
                    "original -> converted, the two timed in alternating blocks until the "
                    "median's 95% interval is within ±5% (or a time cap). Memory: peak "
                    "resident set of that process. Core ML cells marked (interpreter) ran on "
                    "convbench's interpreter: their latency and memory are its own, not Apple's "
                    f"runtime's. {NOISY}: a noisy figure (see the table below).")
    s.blocks.append(Table(["cell", "size original", "size converted", "what the files hold",
                           "load s original", "load s converted", "convert s",
                           "latency ms per batch", "peak RSS original", "peak RSS converted"],
                          rows))
    s.blocks.append(Table(["cell", "role", "batch", "median ms", "why it is noisy"], noisy_rows,
                          "Noisy latency figures: taken while other work competed for the "
                          "CPUs, or with a wide interval (`convbench run SPEC --retry-noisy` "
                          "times them again)"))
    s.blocks.append(Table(["cell", "batch", "runs", "Wilcoxon p", "effect (rank-biserial)",
                           "verdict"], stat_rows,
                          "Latency across training runs, original vs converted at batch 128 "
                          "(or the largest): Wilcoxon signed-rank test over the runs whose two "
                          "figures are not noisy"))
    labels = [_label(k) for k in groups]
    if series:
        png = plots.paired_lines(series, "batch size", "median ms per batch", log=True,
                                 scale=1e3, intervals=intervals, noisy=marks)
        s.blocks.append(Figure("latency", png, "Latency against batch size (original dashed, "
                                               "converted solid; bars: 95% interval of the "
                                               "median; red rings: noisy figures)"))
    if labels:
        s.blocks.append(Figure("size", plots.bars(
            labels, [_ms(g, "size", role="original")[0] for g in groups.values()],
            [_ms(g, "size", role="converted")[0] for g in groups.values()], "file size (KB)",
            1024), "Model file sizes"))
        if any(c.metrics.find(measure="memory") for g in groups.values() for c in g):
            s.blocks.append(Figure("memory", plots.bars(
                labels,
                [_ms(g, "memory", stat="peak", role="original")[0] for g in groups.values()],
                [_ms(g, "memory", stat="peak", role="converted")[0] for g in groups.values()],
                "peak resident memory (MB)", 2 ** 20), "Peak memory of each runtime"))
    return s


def _sweep_curve(cells: Cells, attack: str):
    """(parameter, [values], [misclassified original], [misclassified converted]) over the
    attack's sweep and its own setting, or None when it has no sweep."""
    swept = [m for c in cells for m in c.metrics.find(measure="misclassification",
                                                       attack=attack, direction="forward")
             if m.sweep]
    if not swept:
        return None
    param = swept[0].sweep
    own = next((float(o.params[param]) for c in cells for o in c.outcomes
                if o.kind == "attack" and o.name == attack and param in o.params), None)
    xs = sorted({m.sweep_value for m in swept} | ({own} if own is not None else set()))

    def at(x):  # the attack's own setting is stored without a sweep point
        return {"sweep": "", "sweep_value": None} if x == own else \
            {"sweep": param, "sweep_value": x}

    ys = {role: [_ms(cells, "misclassification", role=role, attack=attack,
                     direction="forward", **at(x))[0] for x in xs]
          for role in ("original", "converted")}
    return param, xs, ys["original"], ys["converted"]


def _rq3(groups: dict[GroupKey, Cells]) -> Section:
    rows, div_labels, div_rates = [], [], []
    curves: dict[tuple[str, str], dict] = defaultdict(dict)
    for k, cells in groups.items():
        for a in dict.fromkeys(n for c in cells for n in attack_names(c)):
            fw = {"attack": a, "direction": "forward"}
            rv = {"attack": a, "direction": "reverse"}
            if not any(c.metrics.find(measure="inputs", **fw) for c in cells):
                continue
            rows.append([_label(k), a, _pm(cells, "{:.0f}", "inputs", **fw),
                         _pm(cells, "{:.0f}", "unperturbed", **fw),
                         _pm(cells, "{:.1%}", "misclassification", role="original", **fw),
                         _pm(cells, "{:.1%}", "misclassification", role="converted", **fw),
                         _pm(cells, "{:.1f}", "divergence", **fw),
                         fv(_mcnemar(cells, **fw), "{:.3g}"),
                         _pm(cells, "{:.2e}", "output_diff", stat="mean", **fw),
                         _pm(cells, "{:.1%}", "misclassification", role="converted", **rv),
                         _pm(cells, "{:.1%}", "misclassification", role="original", **rv),
                         _pm(cells, "{:.1f}", "divergence", **rv)])
            n = sum(v or 0 for v in _values(cells, "inputs", **fw))
            div = sum(v or 0 for v in _values(cells, "divergence", **fw))
            div_labels.append(f"{_label(k)} {a}")
            div_rates.append(div / n if n else np.nan)
            curve = _sweep_curve(cells, a)
            if curve:
                param, xs, o, c = curve
                curves[(a, param)][_label(k)] = (xs, o, c)
    s = Section("RQ3: does the converted model keep its robustness?")
    s.blocks.append("Adversarial inputs crafted on the original and fed to both (forward), and "
                    "for attacks that need only predictions, crafted on the converted model's "
                    "runtime and replayed on the original (reverse). Divergence: adversarial "
                    "inputs on which the two models' labels differ. McNemar's exact test "
                    "compares the two models' correctness on the adversarial inputs. "
                    "Unperturbed: inputs the attack returned as they were (a decision attack "
                    "that found no adversarial starting point); they count as its failures.")
    s.blocks.append(Table(["cell", "attack", "inputs", "unperturbed", "misclassified original",
                           "misclassified converted", "divergence", "McNemar p",
                           "mean abs output diff", "reverse: converted", "reverse: original",
                           "reverse divergence"], rows))
    for (attack, param), series in sorted(curves.items()):
        png = plots.paired_lines(series, f"{attack} {param}", "misclassification rate")
        s.blocks.append(Figure(f"robustness-{attack}", png,
                               f"Robustness curve: {attack} misclassification over {param}"))
    if div_labels:
        s.blocks.append(Figure("divergence", plots.divergence(div_labels, div_rates),
                               "Conversion divergence per attack"))
    return s


def _outcomes(cells: Cells) -> Section:
    bad = [c for c in cells if c.status is not Status.OK]
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for c in bad:
        counts[(c.status.value, c.category.value)] += 1
    s = Section("Outcomes")
    s.blocks.append(f"{len(cells) - len(bad)} of {len(cells)} cells finished; failures and "
                    f"skips are results too.")
    s.blocks.append(Table(["status", "category", "cells"],
                          [[st, cat, str(n)] for (st, cat), n in sorted(counts.items())]))
    s.blocks.append(Table(["cell", "status", "category", "message"],
                          [[f"{c.name}", c.status.value, c.category.value, c.message[:400]]
                           for c in bad]))
    parts = [[c.name, o.kind, o.name, o.status.value, o.message[:400]]
             for c in cells for o in c.outcomes if o.status is not Status.OK]
    s.blocks.append(Table(["cell", "kind", "name", "status", "message"], parts,
                          "Measures and attacks that did not run or failed inside cells that "
                          "kept their other numbers"))
    return s


def _formats(cells: Cells) -> Section:
    """Formats by models: each conversion's outcome, and its accuracy change where it ran."""
    from convbench.formats import targets

    order = {name: i for i, name in enumerate(targets())}
    fmts = sorted({c.key.format for c in cells}, key=lambda f: (order.get(f, len(order)), f))
    rows: dict[tuple[str, str, str], dict[str, Cells]] = defaultdict(lambda: defaultdict(list))
    for c in cells:
        rows[(c.key.framework, c.key.model, c.key.dataset)][c.key.format].append(c)

    def entry(group: Cells) -> str:
        if not group:
            return ""
        bad = [c for c in group if c.status is not Status.OK]
        if bad:
            return f"{bad[0].status.value}: {bad[0].category.value}" + \
                (f" ({len(bad)} of {len(group)})" if len(group) > 1 else "")
        change = [(c.metrics.get("accuracy", role="converted") or np.nan)
                  - (c.metrics.get("accuracy", role="original") or np.nan) for c in group]
        return f"{np.mean(change):+.2%}"

    s = Section("Formats by model")
    s.blocks.append("Each conversion's outcome; where it ran, the converted model's accuracy "
                    "minus the original's (mean over runs).")
    s.blocks.append(Table(["framework", "model", "dataset", *fmts],
                          [[*k, *(entry(v.get(f, [])) for f in fmts)]
                           for k, v in sorted(rows.items())]))
    return s


def _explained(cells: Cells) -> Section | None:
    """Explained cells: the verdict, the ops up to the first divergent one and its error
    through depth."""
    from convbench.explain import Explanation

    done = [c for c in cells if "explanation" in c.info]
    if not done:
        return None
    s = Section("Where conversions depart", [
        "Each explained cell: the first converted op whose output leaves what its precision "
        "explains, the fault kind found (input, weights, hyperparameter, graph, precision) and "
        "the op responsible, then the ops around it (relative error against the original's "
        "matching layer, on the traced samples)."])
    s.blocks.append(Table(["cell", "fault", "op", "original layer", "why"], [
        [c.name, c.info["explanation"]["verdict"]["fault"] or "none",
         f"{v['op_type']} {v['op']}" if v.get("op") else "-",
         f"{v['layer_type']} {v['layer']}" if v.get("layer") else "-", v["detail"][:300]]
        for c in done for v in [c.info["explanation"]["verdict"]]]))
    for n, c in enumerate(done):
        ex = Explanation.from_dict(c.info["explanation"])
        rows = [r for r in ex.ops if r.status != "no-value"]
        first = next((i for i, r in enumerate(rows) if r.op == ex.verdict.first_divergent),
                     None)
        shown = rows[max(0, first - 3):first + 3] if first is not None else rows[:6]
        s.blocks.append(Table(["op", "type", "original layer", "matched by", "status",
                               "rel err", "explained"],
                              [[r.op, r.op_type, r.layer or "-", ",".join(r.how) or "-",
                                r.status, "shape" if (r.error or {}).get("shape_differs") else
                                f"{(r.error or {}).get('rel', float('nan')):.2g}",
                                f"{r.tolerance:.2g}" if r.tolerance is not None else "-"]
                               for r in shown], c.name))
        profile = ex.depth_profile()
        if profile:
            s.blocks.append(Figure(f"explain_{n}", plots.depth(
                profile, ex.verdict.first_divergent, c.name),
                f"{c.name}: relative error op by op against what precision explains"))
    return s


def _findings(cells: Cells) -> Section:
    found = compare(cells)
    used = sorted({i for f in found for i in f.sources})
    numbers = study_numbers()
    return Section("The study beside convbench", [
        "Openja et al., ICSME 2022 (../shared/STUDY.md), finding by finding: each verdict is "
        "decided by the test named beside it at the 5% level ('not enough data' when the "
        "store cannot decide it).",
        Table(["finding", "the study", "convbench", "test", "verdict", "why it differs"],
              [[f.title, f.study, f.figure, f.test, f.verdict, f.why] for f in found]),
        Table(["number", "value", "source"],
              [[i, f"{numbers[i]['value']:g}", numbers[i]["source"]] for i in used],
              "The study's numbers used above and where each comes from")])


def _environment(store: Store, cells: Cells) -> Section:
    s = Section("Environment")
    for env_id in sorted({c.env_id for c in cells if c.env_id}):
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
        holds = {k: " / ".join(str(g[0].artifacts[r].meta.get("holds", "-"))
                               if r in g[0].artifacts else "-"
                               for r in ("original", "converted"))
                 for k, g in groups.items()}
        intro = Section("About this report", [
            f"Built from {Path(store_path).resolve()} on "
            f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC: {len(cells)} cells of the "
            f"studies {', '.join(sorted({c.study or '-' for c in cells})) or '-'}."])
        sections = [intro, _formats(cells), _rq1(groups), _rq2(groups, holds), _rq3(groups),
                    _explained(cells), _findings(cells), _outcomes(cells),
                    _environment(store, cells)]
        sections = [s for s in sections if s is not None]
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
