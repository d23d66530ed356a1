"""Screenshot a local HTML page with headless Chromium (for the pictures in docs/).

    python scripts/screenshot.py class-report.html docs/class-report.png [--width 1100] [--height 1000]
                                 [--colors 128]

Chromium runs with a fresh profile and every network name unresolvable: the page shows
exactly what it holds. Needs Debian's ``chromium`` (``setup.sh`` installs it where it can).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def screenshot(page: Path, png: Path, *, width: int = 1100, height: int = 1000) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="screenshot-profile-") as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--hide-scrollbars", "--host-resolver-rules=MAP * ~NOTFOUND",
                        f"--user-data-dir={profile}", f"--window-size={width},{height}",
                        f"--screenshot={png.resolve()}", page.resolve().as_uri()],
                       check=True, capture_output=True, timeout=180)


def quantize(png: Path, colors: int) -> None:
    """Rewrite ``png`` with a palette of ``colors`` (a page is mostly flat colour: far smaller)."""
    from PIL import Image
    with Image.open(png) as image:
        small = image.convert("RGB").quantize(colors=colors, dither=Image.Dither.NONE)
    small.save(png, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--colors", type=int, default=0, help="palette size for a smaller PNG (needs Pillow)")
    args = parser.parse_args(argv)
    args.png.parent.mkdir(parents=True, exist_ok=True)
    screenshot(args.page, args.png, width=args.width, height=args.height)
    if args.colors:
        quantize(args.png, args.colors)
    print(f"wrote {args.png} ({args.png.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
