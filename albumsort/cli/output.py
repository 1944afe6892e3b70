"""Output: one ``emit`` for every listing, in a table, JSON, NDJSON or CSV; stdout holds data alone."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from rich.table import Table

from albumsort.cli.base import console


class Format(str, Enum):
    table = "table"
    json = "json"
    ndjson = "ndjson"
    csv = "csv"




@dataclass
class Column:
    name: str
    value: Callable  # (row, rank) -> str | int | float | None
    digits: int = 3  # floats: decimals in a table (csv gets one more)
    justify: Literal["left", "right"] = "right"


def _cell(v, digits: int) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def emit(rows: list[dict], fmt: Format, columns: list[Column], title: str | None = None,
         header: bool = False) -> None:
    """Print ``rows`` in ``fmt``: the JSON objects as they are, or ``columns`` of them.

    A table on a terminal is drawn by rich; piped, it is one tab-separated
    line per row, whole values, never cut or wrapped (after a line of
    column names with ``header``).
    """
    if fmt is Format.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    elif fmt is Format.ndjson:
        for r in rows:
            print(json.dumps(r, ensure_ascii=False))
    elif fmt is Format.csv:
        w = csv.writer(sys.stdout)
        w.writerow([c.name for c in columns])
        for i, r in enumerate(rows, 1):
            w.writerow(["" if (v := c.value(r, i)) is None else _cell(v, c.digits + 1) for c in columns])
    elif not console.is_terminal:
        if header:
            print("\t".join(c.name for c in columns))
        for i, r in enumerate(rows, 1):
            print("\t".join(_cell(c.value(r, i), c.digits) for c in columns))
    elif rows:
        from rich.text import Text

        t = Table(title=title)
        for c in columns:
            t.add_column(c.name, justify=c.justify, overflow="fold")
        for i, r in enumerate(rows, 1):
            t.add_row(*[Text(_cell(c.value(r, i), c.digits)) for c in columns])
        console.print(t)


def pairs(rows: list[tuple[str, str]]) -> None:
    """Label and value lines (status): a borderless table on a terminal, tab-separated when piped."""
    if not console.is_terminal:
        for k, v in rows:
            print(f"{k}\t{v}")
        return
    from rich.text import Text

    t = Table(show_header=False, box=None)
    for k, v in rows:
        t.add_row(k, Text(v))
    console.print(t, highlight=False)
