"""Screenshots of `compress report` in headless Chromium, at a desktop and a phone width.

    python scripts/report_screenshots.py                       # PNGs in /tmp/compress-report-screens
    python scripts/report_screenshots.py --out-dir shots/ --results results/bench.jsonl

Writes report.html and report-<width>.png for each width, outside the tracked tree unless
told otherwise. Headless Chromium lays a page out at least 500 px wide whatever the window, so
a narrower width is shot as the report in a frame of that width (the PNG is 500 px wide, the
report its left part). Needs Debian's chromium (scripts/system-deps.sh installs it).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WIDTHS = ((1400, 4400), (390, 9000))  # (width, height) in CSS pixels: a desktop window and a phone


NARROWEST_WINDOW = 500  # CSS pixels: headless Chromium's smallest layout width


def framed(page: Path, width: int, height: int) -> Path:
    """A page showing ``page`` in a frame ``width`` pixels wide, for widths a window cannot have."""
    host = page.with_name(f"{page.stem}-{width}.html")
    host.write_text(f'<!DOCTYPE html><html><body style="margin:0"><iframe src="{page.name}" '
                    f'style="border:0;width:{width}px;height:{height}px;display:block"></iframe></body></html>')
    return host


def screenshot(browser: str, page: Path, png: Path, width: int, height: int) -> None:
    if width < NARROWEST_WINDOW:
        page, width = framed(page, width, height), NARROWEST_WINDOW
    with tempfile.TemporaryDirectory(prefix="compress-chromium-") as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
                        "--hide-scrollbars", f"--screenshot={png}", f"--window-size={width},{height}",
                        page.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120, env={"HOME": profile, "PATH": "/usr/bin:/bin"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, nargs="+",
                        default=sorted((ROOT / "results").glob("*.jsonl")), help="bench records to report")
    parser.add_argument("--out-dir", type=Path, default=Path(tempfile.gettempdir()) / "compress-report-screens")
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("chromium is not installed: run scripts/system-deps.sh", file=sys.stderr)
        return 1
    from compress import results
    from compress.measure.predictions import with_current_predictions
    from compress.report import write_report

    args.out_dir.mkdir(parents=True, exist_ok=True)
    records = with_current_predictions(results.load(args.results, provenance=True))  # as `compress report` shows them
    page = write_report(records, args.out_dir / "report.html")
    for width, height in WIDTHS:
        png = args.out_dir / f"report-{width}.png"
        screenshot(browser, page, png, width, height)
        print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
