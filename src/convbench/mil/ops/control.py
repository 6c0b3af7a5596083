"""Control flow: while_loop and cond run nested blocks (iOS15 control_flow.py)."""

from __future__ import annotations

import torch

from convbench.mil.ops import op


@op("while_loop", control=True)
def while_loop(interp, step, env, loop_vars):
    """Run the body while the condition block holds; the outputs are the final loop vars."""
    cond, body = step.blocks
    values = list(loop_vars)
    while bool(torch.as_tensor(interp.run_scope(cond, env, values)[0]).reshape(-1)[0]):
        values = interp.run_scope(body, env, values)
    return tuple(values)


@op("cond", control=True)
def cond(interp, step, env, pred):
    """Run the true block when `pred` holds, else the false block."""
    true_block, false_block = step.blocks
    taken = true_block if bool(pred.reshape(-1)[0]) else false_block
    return tuple(interp.run_scope(taken, env, []))
