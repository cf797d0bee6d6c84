"""Make docs/html-report.png, the README's picture of an --html report, from a shipped model.

    python scripts/make_report_screenshot.py   (needs chromium; runs the CLI, then headless Chromium)

The report is `convrewrite rewrite models/tcn_chomp_ts13.onnx OUT --fold all --to-2d --check --layers --html PAGE`;
the picture is its first 1280x3400 pixels, taken with JavaScript off (what every reader sees).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEIGHT = 3400  # the summary, the records and the region's drawing
sys.path.insert(0, str(ROOT / "tests"))

import browser  # noqa: E402  (tests/browser.py: Chromium over the DevTools pipe)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        shutil.copyfile(ROOT / "models" / "tcn_chomp_ts13.onnx", Path(tmp) / "tcn_chomp_ts13.onnx")  # short names
        subprocess.run([sys.executable, "-m", "convrewrite", "rewrite", "tcn_chomp_ts13.onnx", "tcn_2d.onnx",
                        "--fold", "all", "--to-2d", "--check", "--layers", "--html", "report.html", "-q"], check=True, cwd=tmp)
        load = browser.load_page(page, javascript=False, width=1280, height=HEIGHT)
        assert not load.console, load.console
        out = ROOT / "docs" / "html-report.png"
        out.write_bytes(load.screenshot)
        print(f"wrote {out} ({len(load.screenshot)} bytes, {browser.png_size(load.screenshot)})")


if __name__ == "__main__":
    main()
