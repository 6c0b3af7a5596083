"""Errors of the Core ML interpreters (importable without torch or coremltools)."""


class MilError(RuntimeError):
    """The program cannot be interpreted; the message names the op and where it is."""


class UnsupportedOpError(MilError):
    """The program uses ops (or layers) this interpreter does not implement."""


class ProgramLoadError(MilError):
    """The file is not a loadable Core ML model; the message says what to do."""
