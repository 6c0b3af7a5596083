"""The fault-injection suite: known faults injected into real converted files, one per copy;
the injected op must be the first divergent op found in >= 95% of the cases and the fault kind
right in >= 80% (issue 10's bar), over ONNX and ML Program files of both source frameworks
(ResNet-18's ML Program faults only for Keras, for the suite's time)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from convbench.explain import _trace, explain_traces
from convbench.records import Artifact

from explaincheck import traces
from faults import mil_faults, onnx_faults


@pytest.fixture(scope="module")
def cases(zoo_pairs, tmp_path_factory):
    """(pair, fault, verdict, explanation) for every injected fault."""
    out = tmp_path_factory.mktemp("faults")
    done = []
    for pair in zoo_pairs:
        orig = traces(pair)
        layout = pair.original.meta.get("layout", "nchw")
        for target, make, fmt in (("onnx", onnx_faults, "onnx"),
                                  ("coreml-fp32", mil_faults, "coreml")):
            if (pair.model, pair.framework, fmt) == ("resnet18", "torch", "coreml"):
                continue  # ResNet's ML Program faults of one framework (the suite's time)
            where = out / f"{pair.model}-{pair.framework}-{target}"
            for fault in make(pair.converted[target].path, where, orig, layout):
                art = Artifact.from_path(fmt, fault.path, **pair.converted[target].meta)
                ex = explain_traces(orig, _trace(art, pair.x[:4], None, {}, None))
                done.append((pair, fault, ex))
    return done


def test_injected_faults_are_localised_and_classified(cases):
    n = len(cases)
    assert n >= 60, f"only {n} fault cases"
    found = [c for c in cases if c[2].verdict.op == c[1].op]
    kinds = [c for c in cases if c[2].verdict.fault == c[1].kind]
    misses = [f"{p.framework} {p.model} {f.case}: wanted {f.kind} at {f.op}, got "
              f"{ex.verdict.fault} at {ex.verdict.op} ({ex.verdict.detail[:120]})"
              for p, f, ex in cases if ex.verdict.op != f.op or ex.verdict.fault != f.kind]
    print(f"\nfault injection: {n} cases; responsible op found in {len(found)} "
          f"({len(found) / n:.1%}), fault kind right in {len(kinds)} ({len(kinds) / n:.1%})")
    assert len(found) / n >= 0.95, "\n".join(misses)
    assert len(kinds) / n >= 0.80, "\n".join(misses)


def test_the_suite_covers_every_fault_kind_format_and_framework(cases):
    kinds = Counter(f.kind for _, f, _ in cases)
    assert set(kinds) == {"weights", "hyperparameter", "graph", "input"}, kinds
    combos = {(p.framework, Path(f.path).suffix) for p, f, _ in cases}
    assert combos == {(fw, s) for fw in ("torch", "keras") for s in (".onnx", ".mlpackage")}
    cases_of = Counter(f.case.split(" ", 1)[1] for _, f, _ in cases)
    for case in ("padding", "stride", "batch norm epsilon", "activation swapped",
                 "transpose inserted", "transpose dropped", "input scaling", "input layout"):
        assert cases_of[case] >= 1, case


def test_a_graph_that_breaks_is_explained_up_to_where_it_stops(cases):
    """A stride changed in a residual block: the Add after it cannot run. The trace stops there,
    says so, and the conv is still found with its stride."""
    broken = [(f, ex) for p, f, ex in cases if f.case == "onnx stride" and ex.stopped]
    assert broken, "no stride case broke its graph"
    for f, ex in broken:
        assert "stops at" in ex.stopped
        assert ex.verdict.op == f.op and ex.verdict.fault == "hyperparameter"
        assert "strides" in ex.verdict.detail


def test_a_weight_fault_names_the_weight_and_the_layer(cases):
    p, f, ex = next(c for c in cases if c[1].case == "onnx weights first conv"
                    and c[0].model == "resnet18" and c[0].framework == "keras")
    assert ex.verdict.fault == "weights" and "altered" in ex.verdict.detail
    row = next(r for r in ex.ops if r.op == f.op)
    assert row.weights["kind"] == "altered" and row.weights["layer"] == ex.verdict.layer
    assert row.status == "diverged"
    before = [r for r in ex.ops[:ex.ops.index(row)] if r.error]
    assert before and all(r.status == "ok" for r in before)  # clean up to the fault


def test_an_epsilon_fault_says_which_epsilon(cases):
    for p, f, ex in cases:
        if f.case.endswith("batch norm epsilon"):
            assert ex.verdict.fault == "hyperparameter"
            assert "epsilon" in ex.verdict.detail, ex.verdict.detail
