"""docs/measurements.md's generated tables are what scripts/measurements.py makes of results/."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_measurements_page_matches_the_committed_records():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "measurements.py"), "--check"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_rewrite_replaces_only_the_block():
    sys.path.insert(0, str(ROOT / "scripts"))
    import measurements

    text = f"intro\n{measurements.BEGIN}\nold | table\n{measurements.END}\noutro\n"
    out = measurements.rewrite(text, "| new |")
    assert out == f"intro\n{measurements.BEGIN}\n| new |\n{measurements.END}\noutro\n"
    assert measurements.rewrite(out, "| new |") == out  # a second run changes nothing
