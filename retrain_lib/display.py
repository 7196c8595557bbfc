"""Small display helpers for the stage notebooks (tables of dicts)."""

from __future__ import annotations

from html import escape
from typing import Any


def dict_table_html(table: dict[str, dict[str, Any]], title: str = "") -> str:
    """An HTML table: one row per outer key, one column per inner key."""
    columns = list(dict.fromkeys(k for row in table.values() for k in row))
    head = "".join(f"<th>{escape(str(c))}</th>" for c in columns)
    rows = "".join(
        f"<tr><th>{escape(str(name))}</th>" + "".join(f"<td>{_fmt(row.get(c, ''))}</td>" for c in columns) + "</tr>"
        for name, row in table.items())
    caption = f"<caption>{escape(title)}</caption>" if title else ""
    return f"<table>{caption}<thead><tr><th></th>{head}</tr></thead><tbody>{rows}</tbody></table>"


def show_table(table: dict[str, dict[str, Any]], title: str = "") -> None:
    """Displays `dict_table_html` in a notebook."""
    from IPython.display import HTML, display

    display(HTML(dict_table_html(table, title)))


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else escape(str(value))
