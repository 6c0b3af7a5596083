"""coremltools is imported without the optional packages it only probes for (torchao,
executorch, transformers, JAX), which stay importable afterwards."""

import importlib.util
import subprocess
import sys

import pytest

from convbench.coreml_import import PROBED


def test_coremltools_imports_without_the_packages_it_probes_for():
    installed = [m for m in PROBED if importlib.util.find_spec(m) is not None]
    if not installed:
        pytest.skip("none of the probed packages is installed here")
    code = (
        "import sys\n"
        "from convbench.coreml_import import coremltools\n"
        "ct = coremltools()\n"
        f"print(sorted(m for m in {installed!r} if m in sys.modules))\n"
        "from coremltools import _deps\n"
        "print(_deps._HAS_TORCHAO, _deps._HAS_EXECUTORCH)\n"
        f"import importlib; [importlib.import_module(m) for m in {installed!r}]\n"
        "print('importable')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()[-3:]
    assert lines == ["[]", "False False", "importable"], out.stdout[-1000:]
