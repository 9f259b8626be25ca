"""Report tables from pandas data frames: human column names, headline metric first, sorting.

A :class:`Table` is what the ``table`` macro of ``templates/macros.html.j2`` renders: every
value is already formatted (numbers to 4 significant digits, booleans as yes/no, missing or
"not computed: <reason>" values as "n/a" with the reason as a tooltip). Wide tables scroll
inside their box (CSS class ``scroll``), so the page column never grows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Cell:
    text: str
    title: str = ""
    numeric: bool = False


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[Cell]]
    caption: str = ""
    headline: str = ""  # label of the headline column (highlighted)
    notes: list[str] = field(default_factory=list)


def format_value(value: Any) -> Cell:
    """One formatted cell; strings starting with "not computed" become n/a with a tooltip."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Cell("n/a", "no value")
    if isinstance(value, (bool,)) or type(value).__name__ == "bool_":
        return Cell("yes" if value else "no")
    if isinstance(value, str) and value.startswith("not computed"):
        return Cell("n/a", value)
    if isinstance(value, (int,)) or type(value).__name__.startswith("int"):
        return Cell(f"{int(value):,}".replace(",", " "), numeric=True)
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        v = float(value)
        if math.isinf(v):
            return Cell("inf" if v > 0 else "-inf", numeric=True)
        return Cell(f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}", numeric=True)
    return Cell(str(value))


def frame_table(
    frame: pd.DataFrame,
    columns: Mapping[str, str],
    headline: str | None = None,
    sort_by: str | None = None,
    ascending: bool = False,
    caption: str = "",
    limit: int | None = None,
) -> Table:
    """A :class:`Table` of ``frame``'s ``columns`` (key -> human label), in that order.

    Args:
        frame: one row per item; columns missing from it are skipped.
        columns: the keys to show and their labels, first shown first.
        headline: the key of the headline metric; it is moved right after the first column.
        sort_by: a key to sort by (missing values last); ``ascending`` as in pandas.
        limit: keep the first rows only (after sorting).
    """
    keys = [k for k in columns if k in frame.columns]
    if headline in keys:
        keys.remove(headline)
        keys.insert(1 if keys else 0, headline)
    if sort_by is not None and sort_by in frame.columns:
        frame = frame.sort_values(sort_by, ascending=ascending, na_position="last", kind="stable")
    if limit is not None:
        frame = frame.head(limit)
    rows = [[format_value(v) for v in record] for record in frame[keys].itertuples(index=False)]
    return Table(
        columns=[columns[k] for k in keys],
        rows=rows,
        caption=caption,
        headline=columns.get(headline, "") if headline else "",
    )


def records_table(
    records: Sequence[Mapping[str, Any]], columns: Mapping[str, str], **kw: Any
) -> Table:
    """:func:`frame_table` of a list of dicts (one per row)."""
    return frame_table(pd.DataFrame.from_records(list(records)), columns, **kw)
