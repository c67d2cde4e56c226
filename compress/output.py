"""One output layer for every command: ``table`` (rich, for people), ``json``,
``md`` and ``csv`` (for scripts and documents).

Commands hand over plain data: a :class:`Table` (title, columns, rows of plain
values, optional notes) or any JSON-serialisable object.

Shapes, so that every format can be read by the tool that expects it:

- ``table``: each table in its compact view (the columns named in ``Table.compact``),
  which reads at 80 columns without splitting a word or a number; ``--wide`` shows every
  column. The width is the terminal's; ``COLUMNS`` overrides it; output that is piped or
  redirected gets a wide console (:data:`PIPE_WIDTH`), so logs are not squeezed to 80.
- ``csv``: exactly one table (the command's main one, or the one ``--table NAME`` picks),
  so any CSV reader parses it as one rectangular table.
- ``md``: Markdown from the first line: the lead text as a list, then each table.
- ``json``: the command's whole result as one JSON document.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import unicodedata
from dataclasses import dataclass, field, replace
from typing import Any

FORMATS = ("table", "json", "md", "csv")
PIPE_WIDTH = 200  # columns of a console that is not a terminal: wide enough that a log keeps one row a line


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)
    name: str = ""  # how ``--table NAME`` picks this table
    compact: list[str] | None = None  # the columns of the default terminal view; None: all of them

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]

    def narrowed(self) -> Table:
        """The compact view: only the ``compact`` columns, in their order."""
        if not self.compact:
            return self
        keep = [self.columns.index(c) for c in self.compact if c in self.columns]
        return replace(self, columns=[self.columns[i] for i in keep],
                       rows=[[row[i] for i in keep] for row in self.rows], compact=None)


def _visible(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: Any) -> str:
    """``text`` with every control and format character written as a visible escape (ESC as
    ``\\x1b``, a newline as ``\\x0a``, a right-to-left override as ``\\u202e``).

    Names come from files and the command line: a GGUF's ``general.name``, a config's model
    type, a device TOML's name. Raw, an ESC byte drives the terminal (colours, cursor moves,
    a changed window title), a newline splits a table row or starts a Markdown bullet, and
    bidirectional overrides make text read other than it is (Unicode categories Cc and Cf).
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else
                   _visible(c) if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text)


def printable_lines(text: str) -> str:
    """Each line of a text that has several made printable: its own line breaks stay."""
    return "\n".join(printable(line) for line in str(text).split("\n"))


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
    return printable(value)


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
    """``text`` as literal Markdown on one line: no tags, links, code spans, cell breaks or line breaks,
    and no control characters."""
    return printable(str(text).translate(_MD_ESCAPES))


def csv_escape(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: a string that would start a formula gets a leading apostrophe.

    Numbers stay numbers, and strings that read as a number (``-0.5``) or a lone ``-`` are left as they are.
    Control characters are written as visible escapes (:func:`printable`).
    """
    if isinstance(value, str):
        value = printable(value)
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


def console(stderr: bool = False) -> Any:
    """A rich console: the terminal's width, ``COLUMNS`` if set, else :data:`PIPE_WIDTH` for pipes."""
    from rich.console import Console

    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        out = Console(stderr=stderr, highlight=False, width=PIPE_WIDTH)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def column_widths(natural: list[int], minimum: list[int], available: int) -> list[int]:
    """Column widths that fit ``available``: the widest columns give way first, none below its minimum."""
    widths = list(natural)
    while sum(widths) > available:
        slack = [(w, i) for i, w in enumerate(widths) if w > minimum[i]]
        if not slack:
            break  # even the minimums do not fit: rich crops, and the 80-column test says so
        widths[max(slack)[1]] -= 1
    return widths


def print_table(table: Table, out: Any | None = None) -> None:
    """A table for people. A column is never narrower than its longest word or number, so
    text wraps between words and numbers stay whole; the widest text gives way first."""
    from rich import box
    from rich.padding import Padding
    from rich.table import Table as RichTable
    from rich.text import Text

    out = out or console()
    texts = [[cell(v) for v in row] for row in table.rows]
    natural, minimum, numeric = [], [], []
    for i, column in enumerate(table.columns):
        values = [row[i] for row in table.rows if row[i] is not None and row[i] != ""]
        numeric.append(bool(values) and all(_is_number(v) for v in values))
        words = [w for t in [column, *(row[i] for row in texts)] for w in t.split()] or [""]
        natural.append(max(len(t) for t in [column, *(row[i] for row in texts)]))
        minimum.append(max(len(w) for w in words))
    gaps = 2 * (len(table.columns) - 1)  # one space of padding and one of separator between columns
    widths = column_widths(natural, minimum, out.width - gaps)
    # Names from files and users are text, never rich markup ("[link=...]"): Text is not parsed.
    rich_table = RichTable(title=Text(table.title), title_justify="left", header_style="bold", box=box.SIMPLE_HEAD,
                           show_edge=False, pad_edge=False, collapse_padding=True)
    for column, width, number in zip(table.columns, widths, numeric):
        rich_table.add_column(Text(column), justify="right" if number else "left", width=width, overflow="fold")
    for row in texts:
        rich_table.add_row(*(Text(c) for c in row))
    out.print(rich_table, markup=False)
    for note in table.notes:
        out.print(Padding(Text(note), (0, 0, 0, 2), expand=False))


def pick_table(tables: list[Table], name: str | None, main: int = 0) -> Table:
    """The table ``--table NAME`` asks for, else the command's main one."""
    if name is None:
        return tables[main]
    for t in tables:
        if t.name == name:
            return t
    from compress.registry import suggest

    raise suggest(name, [t.name for t in tables if t.name], "table")


def text_md(text: str) -> str:
    """Lead text as a Markdown list: ``Label  rest`` becomes ``- **Label** rest``."""
    lines = []
    for line in filter(str.strip, text.splitlines()):
        label, _, rest = line.strip().partition(" ")
        lines.append(f"- **{md_escape(label)}** {md_escape(rest.strip())}" if rest else f"- {md_escape(label)}")
    return "\n".join(lines) + "\n"


def emit(tables: list[Table], data: Any, fmt: str, text: str | None = None, *, table: str | None = None,
         wide: bool = False, main: int = 0) -> None:
    """Print ``tables`` (with an optional lead ``text``) or ``data``, by format.

    ``table`` names the one table to print (csv prints one table always: ``tables[main]``
    unless named); ``wide`` prints every column of a terminal table instead of its compact view.
    """
    chosen = [pick_table(tables, table, main)] if table is not None or fmt == "csv" else tables
    if fmt == "json":
        print(to_json(data))
    elif fmt == "csv":
        print(table_csv(chosen[0]), end="")
    elif fmt == "md":
        parts = [text_md(text)] if text and table is None else []
        print("\n".join(parts + [table_md(t) for t in chosen]), end="")
    else:
        out = console()
        if text and table is None:
            out.print(printable_lines(text), markup=False)
        for t in chosen:
            shown = t if wide else t.narrowed()
            hidden = [c for c in t.columns if c not in shown.columns]
            if hidden:
                shown = replace(shown, notes=[*shown.notes, f"More columns with --wide: {', '.join(hidden)}."])
            print_table(shown, out)
