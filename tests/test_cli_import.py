"""Nothing happens at import: the command line's entry module pulls in no numerical or file
library (``cryoprior --help`` stays fast; each command imports what it needs when it runs)."""

import subprocess
import sys


def test_importing_the_cli_loads_no_heavy_library():
    code = (
        "import sys, cryoprior.cli.app, cryoprior.cli.extrec; "
        "print(' '.join(sorted(m for m in ('numpy', 'scipy', 'pandas', 'torch', 'mrcfile', "
        "'starfile', 'gemmi', 'matplotlib') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
