"""Helpers of the explain tests: the traces of a zoo pair (`conftest.zoo_pairs`)."""

from __future__ import annotations


def traces(pair, target: str | None = None, samples: int = 4):
    """The original's trace (and the converted one's) on the pair's first `samples` rows."""
    from convbench.explain import _trace

    xs = pair.x[:samples]
    to = _trace(pair.original, xs, None, {}, None)
    return to if target is None else (to, _trace(pair.converted[target], xs, None, {}, None))
