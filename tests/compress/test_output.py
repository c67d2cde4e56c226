"""Names from files and users reach Markdown and CSV as text: no tags, links, headings or formulas."""

import csv
import io
import json
import re

from compress.output import Table, cell, csv_escape, md_escape, printable, table_csv, table_md

EVIL = "<img src=x onerror=alert(1)> [click](javascript:alert(1)) `code` a|b & c\n# heading"


def test_md_escape_leaves_nothing_markdown_or_html_would_act_on():
    out = md_escape(EVIL)
    assert "\n" not in out and "<" not in out and ">" not in out
    assert "\\[click\\](javascript:alert(1))" in out and "\\`code\\`" in out and "a\\|b" in out
    assert "&lt;img" in out and "&amp; c" in out


def test_table_md_escapes_title_columns_cells_and_notes():
    md = table_md(Table(title=EVIL, columns=["name", EVIL], rows=[[EVIL, 1.5]], notes=[EVIL]))
    assert "<img" not in md and not re.search(r"(?<!\\)\]\(", md)  # no unescaped "](" starts a link
    assert not any(line.startswith("# heading") for line in md.splitlines())
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert all(line.count(" | ") == 1 for line in rows)  # two cells: the | inside a name is escaped


def test_csv_cells_that_would_be_formulas_get_an_apostrophe():
    assert csv_escape('=HYPERLINK("http://x","y")') == '\'=HYPERLINK("http://x","y")'
    assert [csv_escape(v) for v in ("+1+2", "@SUM(A1)", "-x")] == ["'+1+2", "'@SUM(A1)", "'-x"]
    assert csv_escape("\tx") == "\\x09x"  # a control character is shown, so it starts no formula either
    assert [csv_escape(v) for v in ("-0.5", "-", "q4_k_m", -3.0, 7)] == ["-0.5", "-", "q4_k_m", -3.0, 7]
    text = table_csv(Table(title="t", columns=["model", "value"], rows=[["=cmd|' /C calc'!A0", -1.5]]))
    assert list(csv.reader(io.StringIO(text)))[1] == ["'=cmd|' /C calc'!A0", "-1.5"]


def test_review_markdown_escapes_a_hostile_folder_name(tmp_path):
    from compress.review import review
    from tests.compress.test_sources import LLAMA

    folder = tmp_path / "<img src=x onerror=alert(1)>\n# owned"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(LLAMA))
    md = review(str(folder), "cpu", [])
    # Commands sit in code blocks, which Markdown shows as text: the name is literal there, and its
    # newline an escape, so it cannot close the block. Everywhere else the name is escaped.
    prose = re.sub(r"(?ms)^(`{3,})\n.*?^\1$", "", md)
    assert "<img" not in prose and "&lt;img" in prose
    assert "\n# owned" not in md and "\\x0a# owned" in md


CONTROL = "smol\x1b]0;owned\x07\x1b[2J\nnext\u202egnp.exe"


def test_control_characters_are_shown_never_obeyed():
    assert printable(CONTROL) == "smol\\x1b]0;owned\\x07\\x1b[2J\\x0anext\\u202egnp.exe"
    assert printable("naïve — 日本 q4_k_m") == "naïve — 日本 q4_k_m"  # printable text is left alone
    for shown in (cell(CONTROL), md_escape(CONTROL), csv_escape(CONTROL)):
        assert shown.isprintable(), shown
    from compress.report import esc

    assert esc(CONTROL).isprintable() and "\\x1b" in esc(CONTROL)


def test_plan_markdown_and_terminal_show_a_hostile_model_name_on_one_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.compress.test_sources import LLAMA

    root = Path(__file__).resolve().parents[2]
    folder = tmp_path / "m\x1b[31m\n- injected"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(LLAMA))
    for fmt in ("md", "table", "csv"):
        run = subprocess.run([sys.executable, str(root / "cli.py"), "plan", "--model", str(folder), "--gpu", "t4",
                              "-f", fmt], capture_output=True, text=True, cwd=root, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(root), "COLUMNS": "200"})
        assert run.returncode == 0, run.stderr
        assert "\x1b" not in run.stdout and "\n- injected" not in run.stdout, run.stdout
