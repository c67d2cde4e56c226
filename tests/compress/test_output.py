"""Names from files and users reach Markdown and CSV as text: no tags, links, headings or formulas."""

import csv
import io
import json
import re

from compress.output import Table, csv_escape, md_escape, table_csv, table_md

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
    assert [csv_escape(v) for v in ("+1+2", "@SUM(A1)", "\tx", "-x")] == ["'+1+2", "'@SUM(A1)", "'\tx", "'-x"]
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
    assert "<img" not in md and "\n# owned" not in md and "&lt;img" in md
