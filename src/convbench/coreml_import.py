"""coremltools, imported once, without the optional packages it probes for at import."""

from __future__ import annotations

import sys

#: Installed with convbench's extras (litert-torch pulls torchao, transformers and JAX;
#: executorch pulls torchao), imported by coremltools 9 at import only to set flags for models
#: convbench never hands it (torchao-quantised, ExecuTorch, Hugging Face), and JAX by the
#: TensorFlow Lite module coremltools imports (for JAX conversion, unused here).
PROBED = ("executorch", "torchao", "transformers", "jax")


def coremltools():
    """The `coremltools` module. Its first import here hides `PROBED` packages not yet imported
    (coremltools then records them as absent); they stay importable afterwards."""
    if "coremltools" in sys.modules:
        return sys.modules["coremltools"]
    hidden = [name for name in PROBED if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # an import of it fails at once, as if not installed
    try:
        import coremltools as ct
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    return ct
