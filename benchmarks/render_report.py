"""Render a run's HTML report in headless Chromium and save a full-page screenshot to look at.

Run from the repository root::

    python benchmarks/render_report.py --run exports/current --png /tmp/report.png
    python benchmarks/render_report.py --html some/report.html --png /tmp/report.png

With ``--run`` the report is (re)built from that run folder into ``--html`` (default: a
temporary file) first. Needs a Chromium binary (``chromium``, ``chromium-browser`` or
``google-chrome``; on Debian ``apt-get install chromium``); it runs with a throw-away
profile, no network services, no sandbox (containers) and no GPU. This is a script for a
person to look at the page, not a CI test: CI machines need not have Chromium.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--run", type=Path, help="Run folder (outputs or exports/<as_of>) to build the report from."
    )
    source.add_argument("--html", type=Path, help="An existing report to render.")
    parser.add_argument(
        "--out-html", type=Path, default=None, help="Where to write the report built from --run."
    )
    parser.add_argument("--png", type=Path, required=True, help="Screenshot to write.")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=4000)
    return parser.parse_args(argv)


def screenshot(page: Path, png: Path, width: int, height: int) -> Path:
    """Render ``page`` with headless Chromium into ``png`` (``width`` × ``height`` pixels)."""
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        raise SystemExit("no Chromium found: install it (Debian: apt-get install -y chromium)")
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={png.absolute()}",
            f"--window-size={width},{height}",
            page.absolute().as_uri(),
        ]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    return png


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = _arguments(argv)
    page = args.html
    if args.run is not None:
        from reporting.report import write_report

        page = args.out_html or Path(tempfile.mkdtemp(prefix="siyu-report-")) / "report.html"
        write_report(args.run, page)
    png = screenshot(page, args.png, args.width, args.height)
    print(f"report: {page}\nscreenshot: {png}", file=sys.stderr)


if __name__ == "__main__":
    main()
