"""Looking at an HTML page in a real browser: Debian's headless Chromium, when installed.

``./run.sh setup`` installs ``chromium-headless-shell`` (best effort); tests that use
:func:`render` skip without it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

_NAMES = ("chromium-headless-shell", "chromium")


def browser() -> str | None:
    """The path of a headless Chromium, or None."""
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def render(page: Path, screenshot: Path, *, width: int = 1200, height: int = 2400) -> str:
    """Load ``page`` in headless Chromium; write a PNG screenshot; return the rendered DOM.

    The DOM is what the browser built from the file after parsing (``--dump-dom``), so text
    that the page shows literally (e.g. Markdown's ``**``) is in it as the reader sees it.
    """
    exe = browser()
    if exe is None:
        pytest.skip("no headless Chromium (apt-get install chromium-headless-shell)")
    common = [exe, "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    url = page.resolve().as_uri()
    shot = subprocess.run(
        [*common, f"--screenshot={screenshot}", f"--window-size={width},{height}", url],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.returncode == 0 and screenshot.is_file(), shot.stderr.decode()[-2000:]
    dom = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, timeout=120, check=False
    )
    assert dom.returncode == 0, dom.stderr.decode()[-2000:]
    return dom.stdout.decode()


def png_pixels(path: Path) -> np.ndarray:
    """The screenshot's pixels, (rows, columns, channels) uint8."""
    import matplotlib.image

    return (matplotlib.image.imread(path) * 255).astype(np.uint8)
