"""Control flow: copy, loop (with break and continue) and branch, on the shared namespace."""

from __future__ import annotations

from convbench.nn.layers import layer


class ControlSignal(Exception):
    """Raised by loopBreak/loopContinue and caught by the enclosing loop, not an error."""


class _Break(ControlSignal):
    pass


class _Continue(ControlSignal):
    pass


@layer("copy")
def copy(p, xs, interp, env):
    return xs[0].clone()


@layer("loopBreak")
def loop_break(p, xs, interp, env):
    raise _Break


@layer("loopContinue")
def loop_continue(p, xs, interp, env):
    raise _Continue


@layer("loop")
def loop(p, xs, interp, env):
    """A for loop (no condition network), a while loop, or both bounds at once."""
    has_cond = len(p.conditionNetwork.layers) > 0 or bool(p.conditionVar)
    limit = int(xs[0].reshape(-1)[0]) if xs else int(p.maxLoopIterations)
    bounded = limit > 0 or not has_cond
    i = 0
    while True:
        if bounded and i >= limit:
            break
        if has_cond:
            interp.run_network(p.conditionNetwork, env)
            if not bool(env[p.conditionVar].reshape(-1)[0]):
                break
        try:
            interp.run_network(p.bodyNetwork, env)
        except _Continue:
            pass
        except _Break:
            break
        i += 1
    return []


@layer("branch")
def branch(p, xs, interp, env):
    taken = p.ifBranch if bool(xs[0].reshape(-1)[0]) else p.elseBranch
    interp.run_network(taken, env)
    return []
