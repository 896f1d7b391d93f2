"""The one Markdown table writer of the benchmarks and the experiment reports (lab/markdown.py)."""

from __future__ import annotations

import pytest

from lab.markdown import table


def test_a_table_has_its_header_a_rule_and_one_line_per_row():
    text = table(["style", "req/s"], [["sync", "41"], ["async", "64"]])

    assert text.splitlines() == ["| style | req/s |", "|---|---|", "| sync | 41 |", "| async | 64 |"]


def test_alignment_letters_set_each_columns_rule():
    text = table(["client", "req/s", "where"], [["wrk", "1,000", "core 0"]], align="lrc")

    assert text.splitlines()[1] == "|---|---:|:---:|"


def test_an_empty_cell_is_written_as_a_hand_written_table_has_it():
    assert table(["", "users"], [["held", "20"]]).splitlines()[0] == "| | users |"


def test_a_table_without_rows_is_its_header_and_rule():
    assert table(["a", "b"], [], align="lr") == "| a | b |\n|---|---:|"


@pytest.mark.parametrize(
    ("rows", "align", "message"),
    [([["only one"]], None, "1 cells for 2 columns"), ([], "l", "1 letters for 2 columns"), ([], "lx", "l, r, c")],
)
def test_a_row_or_alignment_of_the_wrong_width_is_refused_rather_than_shifting_columns(rows, align, message):
    with pytest.raises(ValueError, match=message):
        table(["a", "b"], rows, align=align)
