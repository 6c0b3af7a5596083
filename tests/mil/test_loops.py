"""Loops recognised as a recurrence (`convbench.mil.loops`): coremltools' GRU loop runs as one
fused GRU call when it stores fp32, agrees with the loop as written and with PyTorch, and any
other loop (another body, fp16 storage, rows the loop adds into) runs as written."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from convbench.mil import Interpreter
from convbench.mil.compiled import CompiledProgram
from convbench.mil.loops import fuse_gru_loop
from convbench.mil.ops.control import while_loop


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.gru = torch.nn.GRU(6, 8, num_layers=2)

    def forward(self, x):  # <seq, batch, 6>
        return self.gru(x)[0]


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """{precision: the MIL program} of a two-layer GRU converted by coremltools."""
    import coremltools as ct

    from convbench.mil.reader import read_program

    net = _Net().eval()
    x = torch.randn(5, 3, 6)
    traced = torch.jit.trace(net, x)
    out = {}
    for name, precision in (("fp32", ct.precision.FLOAT32), ("fp16", ct.precision.FLOAT16)):
        path = tmp_path_factory.mktemp("gru") / f"{name}.mlpackage"
        ct.convert(traced, inputs=[ct.TensorType(name="x", shape=x.shape)],
                   convert_to="mlprogram", compute_precision=precision,
                   minimum_deployment_target=ct.target.iOS15).save(str(path))
        out[name] = read_program(path)
    return net, x, out


def test_the_gru_loop_runs_fused_and_agrees_with_the_loop_and_pytorch(programs):
    net, x, progs = programs
    fused, written = Interpreter(progs["fp32"]), Interpreter(progs["fp32"], fuse_loops=False)
    assert [s.op_type for s in fused.block.steps].count("gru_loop") == 2  # one per layer
    assert "gru_loop" not in [s.op_type for s in written.block.steps]
    feed = {"x": x.numpy()}
    got, want = fused.run(feed)[0], written.run(feed)[0]
    with torch.no_grad():
        ref = net(x).numpy()
    assert np.abs(got - want).max() < 1e-6 and np.abs(got - ref).max() < 1e-5
    assert np.array_equal(CompiledProgram(progs["fp32"]).run(feed)[0], got)


def test_fp16_storage_runs_the_loop_as_written(programs):
    _, x, progs = programs
    steps = [s.op_type for s in Interpreter(progs["fp16"]).block.steps]
    assert "gru_loop" not in steps and steps.count("while_loop") == 2


def test_another_body_is_not_fused(programs):
    _, _, progs = programs
    interp = Interpreter(progs["fp32"], fuse_loops=False)
    loop = next(s for s in interp.block.steps if s.op_type == "while_loop")
    assert fuse_gru_loop(loop, interp) is not None
    body = loop.blocks[1]
    for i, s in enumerate(body.steps):  # the candidate gate's tanh becomes a sigmoid
        if s.op_type == "tanh":
            body.steps[i] = dataclasses.replace(s, op_type="sigmoid")
    assert fuse_gru_loop(loop, interp) is None


def test_rows_the_loop_adds_into_are_honoured(programs):
    """coremltools' loop adds each state into a row of zeros; rows that are not zero make the
    state read back differ from the GRU's: the loop then runs as written."""
    from collections import ChainMap

    from convbench.mil.interpreter import Ref

    _, x, progs = programs
    interp = Interpreter(progs["fp32"], fuse_loops=False)
    loop = next(s for s in interp.block.steps if s.op_type == "while_loop")
    fused = fuse_gru_loop(loop, interp)
    sequence_name = fused.args["sequence"].name
    steps = fused.args["steps"]
    rng = np.random.default_rng(0)
    hidden = torch.from_numpy(rng.standard_normal((6, 3, 8)).astype(np.float32))
    seq = torch.from_numpy(rng.standard_normal((5, 3, 6)).astype(np.float32))
    env = ChainMap({sequence_name: seq, **({steps.name: torch.tensor([5], dtype=torch.int32)}
                                          if isinstance(steps, Ref) else {})})
    n = torch.tensor([5], dtype=torch.int32)
    start = torch.zeros(1, dtype=torch.int32)
    want = while_loop(interp, loop, env, loop_vars=[start, hidden.clone()])
    got = fused.call(loop_vars=[start, hidden.clone()], sequence=seq,
                     **({"steps": n} if isinstance(steps, Ref) else {}))
    assert torch.equal(got[1], want[1]) and int(got[0]) == int(want[0]) == 5
    zeroed = hidden.clone()
    zeroed[1:] = 0
    got = fused.call(loop_vars=[start, zeroed.clone()], sequence=seq,
                     **({"steps": n} if isinstance(steps, Ref) else {}))
    want = while_loop(interp, loop, env, loop_vars=[start, zeroed.clone()])
    assert not torch.equal(got[1], hidden) and torch.allclose(got[1], want[1], atol=1e-6)
