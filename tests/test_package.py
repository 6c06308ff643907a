"""Package boundaries: `sitn_tf` is plain Keras and never pulls in TFX."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SITN_TF = Path(__file__).resolve().parents[1] / "sitn_tf"


def test_no_sitn_tf_module_imports_tfx():
    offenders = [
        str(path.relative_to(SITN_TF.parent))
        for path in SITN_TF.rglob("*.py")
        if re.search(r"^\s*(import tfx\b|from tfx\b)", path.read_text(), re.MULTILINE)
    ]
    assert offenders == []


def test_importing_every_public_module_and_the_cli_loads_no_tfx():
    code = (
        "import sys, sitn_tf, sitn_tf.ops, sitn_tf.layers, sitn_tf.models, sitn_tf.data, "
        "sitn_tf.features, sitn_tf.cli, sitn_tools.cli\n"
        "from sitn_tf import SITNConfig, SITNPretrainer, SITNRanker, DIN\n"
        "sitn_tf.cli.build_parser(); sitn_tools.cli.build_parser()\n"
        "print(sorted(m for m in sys.modules if m == 'tfx' or m.startswith('tfx.')))\n"
    )
    out = (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    assert out == "[]"
