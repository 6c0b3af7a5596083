"""`convbench coreml ops MODEL`: a model's ops (or layers) and whether each is supported;
`convbench coreml ops --all`: every op and layer Core ML defines, and which are."""

from __future__ import annotations

from collections import Counter


def census(path: str, trust: bool = False) -> tuple[str, Counter, set[str]]:
    """(model type, op or layer counts, the supported names) of a Core ML model."""
    from convbench.mil.program import load_spec, op_census
    from convbench.mil.reader import read_program

    spec = load_spec(path, trust)
    if spec.WhichOneof("Type") == "mlProgram":
        from convbench.mil.ops import OPS

        program = read_program(path, spec, trust)
        return "ML Program", op_census(program), set(OPS.names()) | {"const"}
    from convbench.nn.interpreter import NESTED
    from convbench.nn.layers import LAYERS

    counts: Counter = Counter()

    def walk(net):
        for layer in net.layers:
            kind = layer.WhichOneof("layer")
            counts[kind] += 1
            for field in NESTED.get(kind, ()):
                walk(getattr(getattr(layer, kind), field))

    kind = spec.WhichOneof("Type")
    walk(getattr(spec, kind))
    return f"NeuralNetwork ({kind})", counts, set(LAYERS.names())


def ops(args) -> int:
    if args.all:
        return _all()
    if not args.model:
        raise SystemExit("convbench coreml ops: give a model (.mlpackage or .mlmodel), or "
                         "--all for every op and layer Core ML defines")
    kind, counts, supported = census(args.model, args.trust_model)
    print(f"{args.model}: {kind}, {sum(counts.values())} ops of {len(counts)} types")
    width = max(map(len, counts), default=4)
    for name, n in sorted(counts.items()):
        print(f"  {name.ljust(width)}  {n:5d}  {'supported' if name in supported else 'MISSING'}")
    missing = sorted(set(counts) - supported)
    if missing:
        print(f"not supported by convbench's interpreter: {', '.join(missing)}")
        return 1
    return 0


def _all() -> int:
    """Every MIL op (iOS15-iOS18) and NeuralNetwork layer kind: implemented or not, and whether
    coremltools' converters emit it; exit 1 when one they emit is missing."""
    from convbench.mil.coverage import mil_ops, nn_layers, summary

    missing_emitted = []
    for title, entries in (("ML Program (MIL ops, iOS15-iOS18)", mil_ops()),
                           ("NeuralNetwork (layer kinds)", nn_layers())):
        print(f"{title}: {summary(entries)}")
        width = max(len(e.name) for e in entries)
        for e in entries:
            state = "implemented" if e.implemented else "MISSING"
            where = "emitted" if e.emitted else "-"
            sets = f"  {','.join(e.opsets)}" if e.opsets else ""
            note = f"  ({e.note})" if e.note and not e.implemented else ""
            print(f"  {e.name.ljust(width)}  {state:11s}  {where:7s}{sets}{note}")
        missing_emitted += [e.name for e in entries if e.emitted and not e.implemented
                            and not e.note]
    if missing_emitted:
        print(f"emitted by the converters but not implemented: {', '.join(missing_emitted)}")
        return 1
    return 0
