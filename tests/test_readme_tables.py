"""The README's "Measured here" table is what scripts/readme_tables.py makes of results/bench.jsonl."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_table_matches_the_committed_records():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_tables.py"), "--check"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_rewrite_replaces_only_the_block():
    sys.path.insert(0, str(ROOT / "scripts"))
    import readme_tables

    text = f"intro\n{readme_tables.BEGIN}\nold | table\n{readme_tables.END}\noutro\n"
    out = readme_tables.rewrite(text, "| new |")
    assert out == f"intro\n{readme_tables.BEGIN}\n| new |\n{readme_tables.END}\noutro\n"
    assert readme_tables.rewrite(out, "| new |") == out  # a second run changes nothing
