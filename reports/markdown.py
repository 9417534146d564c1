"""Markdown pieces every report uses: escaped cells and GitHub tables (tabulate)."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate


def md_escape(value: Any) -> str:
    """Text that cannot break a markdown table cell or turn into emphasis or code."""
    text = " ".join(str(value).split())  # newlines and tabs become single spaces
    for char in "\\|*_`[]<>":
        text = text.replace(char, "\\" + char)
    return text



def markdown_table(rows: list[list[Any]], headers: list[str]) -> str:
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
