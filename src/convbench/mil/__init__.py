"""An interpreter for Core ML ML Programs (MIL), for Linux where Apple's runtime does not exist.

`read_program(path)` reads an `.mlpackage`'s ops and weights straight from its protobuf
(`load_program(path)`, coremltools' own milproto loader, for what it leaves out and for editing);
`Interpreter(program)` compiles it once (constants materialised, every op resolved to its
implementation in `mil.ops`, unknown ops reported before any input runs) and `run(inputs)`
executes it. Execution is typed: each op's result is stored in the dtype the program declares
(fp16 programs round to fp16 between ops); arithmetic inside an op is fp32 by default, or fp16
with `arith="fp16"`. Attributes are imported lazily: `convbench.mil.errors` needs no torch.
"""

from convbench.mil.errors import MilError, UnsupportedOpError

_LAZY = {"Interpreter": "convbench.mil.interpreter", "load_program": "convbench.mil.program",
         "op_census": "convbench.mil.program", "read_program": "convbench.mil.reader"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)


__all__ = ["Interpreter", "MilError", "UnsupportedOpError", "load_program", "op_census",
           "read_program"]
