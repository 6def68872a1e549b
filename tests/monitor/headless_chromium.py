"""Pages looked at in a real browser: headless Chromium (Debian's `chromium` package) takes a
screenshot, or reports the page's layout, and the tests read the pixels.

Chromium is found on PATH or, where the tests run as root on Debian (as in CI), installed with
apt-get; elsewhere the test is skipped with the reason. Nothing is fetched when a page is shown:
the flags keep Chromium off the network, which this machine's closed network would refuse.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium() -> str:
    """The Chromium executable: on PATH, or installed now (root on Debian); else skip."""
    found = shutil.which("chromium")
    if found:
        return found
    if not Path("/etc/debian_version").exists():
        pytest.skip("headless Chromium: not on PATH and this is not Debian (apt-get chromium)")
    if os.geteuid() != 0:
        pytest.skip("headless Chromium: not on PATH, and installing it needs root")
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    proc = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, env=env, timeout=600)
        proc = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(f"apt-get could not install chromium:\n{proc.stderr[-2000:]}")
    return found


def _run(args: list[str]) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 2000) -> np.ndarray:
    """Chromium's screenshot of `page` at width x height CSS pixels, as (height, width, 3) uint8
    RGB."""
    proc = _run([f"--screenshot={png}", f"--window-size={width},{height}", page.as_uri()])
    assert png.is_file(), f"no screenshot: {proc.stderr[-2000:]}"
    image = imread(png)
    return np.round(image[..., :3] * 255).astype(np.uint8)


def layout(page: Path, probe: str, width: int = 1280) -> str:
    """Run the JavaScript expression `probe` in a copy of `page` once it has loaded (images
    included) and is laid out at `width` pixels, and return its value (Chromium's DOM dump,
    taken after the load event, carries it). The page itself has no script; the copy sits next
    to it so that its relative links still resolve."""
    script = (
        "<script>window.addEventListener('load', () => document.body.setAttribute("
        f"'data-probe', String({probe})));</script></body>"
    )
    copy = page.with_name(f".probe-{page.name}")
    copy.write_text(page.read_text().replace("</body>", script))
    try:
        proc = _run(["--dump-dom", f"--window-size={width},2000", copy.as_uri()])
    finally:
        copy.unlink()
    marker = 'data-probe="'
    at = proc.stdout.find(marker)
    assert at >= 0, f"no probe value in Chromium's DOM dump: {proc.stderr[-2000:]}"
    return proc.stdout[at + len(marker) : proc.stdout.index('"', at + len(marker))]


def pixels(image: np.ndarray, colour: str, tolerance: int = 6) -> int:
    """How many pixels are within `tolerance` (per channel) of the hex colour `colour`."""
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    return int((np.abs(image.astype(np.int16) - rgb).max(axis=-1) <= tolerance).sum())
