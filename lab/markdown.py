"""Markdown tables, the one way the benchmarks and the experiment reports write them."""

from __future__ import annotations

from collections.abc import Sequence

_RULES = {"l": "---", "r": "---:", "c": ":---:"}


def _line(cells: Sequence[str]) -> str:
    # An empty cell is written "| |", as a hand-written table would have it.
    return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> str:
    """A Markdown table: the header, its rule, one line per row (no trailing newline).

    `align` has one letter per column, `l`, `r` or `c` (left, right, centred); None leaves every column to the
    renderer's default. A row of the wrong width raises ValueError rather than shifting the columns.
    """
    if align is not None and len(align) != len(header):
        raise ValueError(f"align {align!r} has {len(align)} letters for {len(header)} columns")
    if align is not None and set(align) - set("lrc"):
        raise ValueError(f"align {align!r}: one of l, r, c per column")
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {list(row)} has {len(row)} cells for {len(header)} columns")
    rule = "|" + "|".join(_RULES[letter] for letter in (align or "l" * len(header))) + "|"
    return "\n".join([_line(header), rule, *(_line(row) for row in rows)])
