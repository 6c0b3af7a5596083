"""`convbench coreml ops MODEL`: a model's ops (or layers) and whether each is supported."""

from __future__ import annotations

from collections import Counter


def census(path: str, trust: bool = False) -> tuple[str, Counter, set[str]]:
    """(model type, op or layer counts, the supported names) of a Core ML model."""
    from convbench.mil.program import load_program, load_spec, op_census

    spec = load_spec(path, trust)
    if spec.WhichOneof("Type") == "mlProgram":
        from convbench.mil.ops import OPS

        return "ML Program", op_census(load_program(path, trust)), set(OPS.names()) | {"const"}
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
