"""`import holmesvau` stays light; `holmesvau.HolmesVAU` resolves lazily to the pipeline class."""

import subprocess
import sys


def test_import_is_light_and_lazy():
    code = (
        "import sys, holmesvau\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'\n"
        "from holmesvau import HolmesVAU, AnalysisResult\n"
        "from holmesvau.pipeline import HolmesVAU as P\n"
        "assert HolmesVAU is P and 'torch' in sys.modules\n"
        "try:\n    holmesvau.nope\nexcept AttributeError:\n    pass\nelse:\n    raise SystemExit('no AttributeError')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
