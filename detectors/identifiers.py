"""Columns that identify rows rather than describe them, recognised in the reference so they are not tested.

A row id, a request id or a row number is different on every row, so any two samples of it "differ": tested as a
feature it makes every window drift (p = 0) while saying nothing about the model's inputs. A column of the
training data is taken for an identifier when, over at least :data:`MIN_ROWS` non-missing values, it is

- text with a different value on every row (an id, a key, a free-text field: nothing a distribution test reads);
- whole numbers, a different one on every row, strictly increasing or decreasing (a row number, a sequence);
- whole numbers or text named like an id (``id``, ``user_id``, ``customerId``, ``uuid``, ``row_number``,
  ``Unnamed: 0``, ...) with at least half of its values distinct.

Floating-point columns are taken only when every value is a whole number (ids read from a CSV with a gap): a
continuous feature has a different value on (nearly) every row too. A
column with few distinct values, ``store_id`` over 40 stores say, is a feature whatever its name. Each column left
out is named in the report with the reason; a monitor config's ``features:`` (or ``--exclude`` for others) is
the user's override.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MIN_ROWS = 20
ID_NAME = re.compile(
    r"(?i:^(id|uuid|guid|key|index|row_?id|row_?num(ber)?|record_?id|unnamed: ?\d+)$)"  # the whole name
    r"|(?i:[_\-. ](id|uuid|guid|key)$)"  # user_id, request-id, order.key
    r"|[a-z0-9](Id|ID|Uuid|UUID)$",  # customerId, orderID (camel case: the case is the separator; not "paid")
)


def identifier_reason(name: str, column: pa.ChunkedArray | pa.Array) -> str | None:
    """Why ``column`` identifies rows (a phrase for the report), or ``None`` when it may be a feature."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.cast(kind.value_type), kind.value_type
    text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
    if not (text or pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        return None
    values = column.drop_null()
    if len(values) < MIN_ROWS:
        return None
    if pa.types.is_floating(kind):  # whole numbers read as floats (a CSV column with a gap, say) count as such
        numbers = np.asarray(values.to_numpy())
        if not np.array_equal(numbers, np.floor(numbers)):
            return None
    distinct = pc.count_distinct(values).as_py()
    reason = None
    if distinct == len(values) and text:
        reason = "an identifier: a different value on every row"
    elif distinct == len(values):
        steps = np.diff(np.asarray(values.to_numpy()))
        if (steps > 0).all() or (steps < 0).all():
            order = "increasing" if steps[0] > 0 else "decreasing"
            reason = f"an identifier: a different whole number on every row, {order} (a row number or a sequence)"
    if reason is None and ID_NAME.search(name) and distinct * 2 >= len(values):
        reason = f"an identifier: named like an id, {distinct:,} distinct values in {len(values):,} rows"
    return reason
