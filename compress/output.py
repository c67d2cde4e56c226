"""One output layer for every command: ``table`` (rich, for people), ``json``,
``md`` and ``csv`` (for scripts and documents).

Commands hand over plain data: a :class:`Table` (title, columns, rows of plain
values, optional notes) or any JSON-serialisable object.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

FORMATS = ("table", "json", "md", "csv")


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]


def cell(value: Any) -> str:
    """How a plain value reads in a table cell."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return "-"
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}" if abs(value) >= 0.01 else f"{value:.2g}"
    return str(value)


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=_json_default, allow_nan=False)


def _json_default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, set | tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


#: Characters Markdown gives a meaning to inside a line, and how each is written literally. HTML's
#: three (``& < >``) become entities, so a name cannot open a tag (``<img onerror=...>``); ``[ ]``
#: and backticks are backslash-escaped, so a name cannot make a link (``[x](javascript:...)``) or
#: code span; ``|`` would end a table cell. CommonMark 0.31, sections 2.4 (backslash escapes)
#: and 6.6 (raw HTML).
_MD_ESCAPES = str.maketrans({"\\": "\\\\", "|": "\\|", "`": "\\`", "[": "\\[", "]": "\\]", "&": "&amp;",
                             "<": "&lt;", ">": "&gt;", "\n": " ", "\r": " ", "\t": " "})
#: A CSV cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection").
_CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def md_escape(text: Any) -> str:
    """``text`` as literal Markdown on one line: no tags, links, code spans, cell breaks or line breaks."""
    return str(text).translate(_MD_ESCAPES)


def csv_escape(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: a string that would start a formula gets a leading apostrophe.

    Numbers stay numbers, and strings that read as a number (``-0.5``) or a lone ``-`` are left as they are.
    """
    if not isinstance(value, str) or not value.startswith(_CSV_FORMULA_STARTS) or value == "-":
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


def table_md(table: Table) -> str:
    escape = lambda s: md_escape(cell(s))  # noqa: E731 - one-line cell escaper
    lines = [f"### {md_escape(table.title)}", "", "| " + " | ".join(md_escape(c) for c in table.columns) + " |",
             "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(escape(v) for v in row) + " |" for row in table.rows]
    lines += [""] + [f"- {md_escape(n)}" for n in table.notes]
    return "\n".join(lines).rstrip() + "\n"


def table_csv(table: Table) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([csv_escape(c) for c in table.columns])
    writer.writerows([["" if v is None else csv_escape(v) for v in row] for row in table.rows])
    return buf.getvalue()


def print_table(table: Table, console: Any | None = None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table as RichTable

    console = console or Console()
    # Names from files and users are text, never rich markup ("[link=...]").
    rich_table = RichTable(title=escape(table.title), title_justify="left", header_style="bold")
    for column in table.columns:
        rich_table.add_column(escape(column), overflow="fold")
    for row in table.rows:
        rich_table.add_row(*(escape(cell(v)) for v in row))
    console.print(rich_table)
    for note in table.notes:
        console.print(f"  {note}", highlight=False, markup=False)


def emit(tables: list[Table], data: Any, fmt: str, text: str | None = None) -> None:
    """Print ``tables`` (with an optional lead ``text``) or ``data``, by format."""
    if fmt == "json":
        print(to_json(data))
    elif fmt == "csv":
        print("\n".join(table_csv(t) for t in tables), end="")
    elif fmt == "md":
        parts = ["\n".join(md_escape(line) for line in text.splitlines())] if text else []
        print("\n".join(parts + [table_md(t) for t in tables]))
    else:
        from rich.console import Console

        console = Console()
        if text:
            console.print(text, highlight=False, markup=False)
        for t in tables:
            print_table(t, console)
