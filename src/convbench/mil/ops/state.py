"""Model state (iOS18 states.py, and coreml_update_state, which the program file stores as a
write_state and a read_state). A stateful program's state inputs are buffers the interpreter
keeps from one run to the next, as Core ML's `MLState` (`Interpreter.reset_states` zeroes
them)."""

from __future__ import annotations

from convbench.mil.ops import op


@op("read_state")
def read_state(input):
    return input.clone()


@op("coreml_update_state", control=True)
def coreml_update_state(interp, step, env, state, value):
    """Write `value` into the state (for the ops after this one and the next run); return a
    copy of it."""
    name = dict(step.refs)["state"].name
    env[name] = interp.states[name] = value.to(interp.state_specs[name][1]).clone()
    return value.clone()
