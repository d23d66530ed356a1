"""A real browser renders the class report and the nbgrader feedback: are the figures
there, drawn, and is the page more than a blank sheet?

Headless Chromium (Debian's ``chromium``, installed by ``setup.sh`` where it can be) with
every network name unresolvable, so a page that needed anything from outside would show
it. Without chromium the tests are skipped, except under CI, where they must run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.slow

if CHROMIUM is None and os.environ.get("CI"):
    pytest.fail("CI must run the browser tests: setup.sh should have installed chromium", pytrace=False)
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                   "(setup.sh installs Debian's chromium where it can)")
BLUE = (0x1F, 0x6F, 0xB4)       # autograder.reports.figures.YOURS: the student's bars and lines


def chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--hide-scrollbars", "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}",
           *args, page.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def render(page: Path, tmp_path: Path, *, height: int) -> tuple[str, "object"]:
    """The DOM after loading, and the screenshot as an (h, w, 3) float array."""
    import matplotlib.image
    dom = chromium(page, tmp_path, "--dump-dom").stdout
    png = tmp_path / f"{page.stem}.png"
    shot = chromium(page, tmp_path, f"--screenshot={png}", f"--window-size=1100,{height}")
    assert png.exists(), shot.stderr[-2000:]
    return dom, matplotlib.image.imread(png)[..., :3]


def figure_pixels(image, color=BLUE, tolerance=0.06):
    import numpy as np
    return int((np.abs(image - np.array(color) / 255).max(axis=-1) < tolerance).sum())


def assert_not_blank(image) -> None:
    import numpy as np
    assert float(image.std()) > 0.05, "the page rendered blank"
    assert float((image.mean(axis=-1) < 0.9).mean()) > 0.01, "almost nothing but background"
    assert np.isfinite(image).all()


@needs_browser
def test_browser_renders_the_class_report(feedback_course, tmp_path):
    """Does the report from a real gradebook show its two figures and its table?"""
    out = tmp_path / "class-report.html"
    proc = subprocess.run([sys.executable, "-m", "autograder", "report", "--gradebook",
                           str(feedback_course["gradebook"]), "--assignment", "lesson8", "--html", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    dom, image = render(out, tmp_path, height=1400)
    assert len(re.findall(r'<img\b[^>]*\bsrc="data:image/svg\+xml;base64,', dom)) == 2
    assert "<script" not in dom.lower() and "calling it raised ValueError" in dom      # ada's relu
    assert re.search(r'class="num pass-count">1/2<', dom)
    assert_not_blank(image)
    assert figure_pixels(image) > 2000, "the figures' bars were not drawn"


@needs_browser
def test_browser_renders_the_feedback_with_figures(feedback_course, tmp_path):
    """Does ada's feedback page, as a browser draws it, hold the figures of her init and
    normalisation checks, offline?"""
    page = feedback_course["feedback"]["ada"]
    dom, image = render(page, tmp_path, height=16000)
    assert len(re.findall(r'<img\b[^>]*\bsrc="data:image/svg\+xml;base64,', dom)) >= 5
    assert '<script>alert("pwned")</script>' not in dom
    assert_not_blank(image)
    assert figure_pixels(image) > 5000, "the figures were not drawn"
