"""SQL expressions that SQLite and PostgreSQL spell differently, for sorting in the database: a number kept
in a JSON column, and the seconds between two timestamps."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class json_number(FunctionElement):  # noqa: N801 (an SQL function)
    """`column[key]` when it is a JSON number, else NULL (absent, a string, a list...): a sort key that never
    fails on a value of another type."""

    type = Float()
    inherit_cache = True
    name = "json_number"

    def __init__(self, column: Any, key: str):
        # the key is bound, never spliced into the SQL; callers also allow only [A-Za-z0-9_.-] in it
        super().__init__(column, literal(f'$."{key}"'), literal(key))


@compiles(json_number, "sqlite")
def _json_number_sqlite(element: json_number, compiler, **kw) -> str:
    column, path, _key = (compiler.process(c, **kw) for c in element.clauses)
    return (f"CASE WHEN json_type({column}, {path}) IN ('integer', 'real') "
            f"THEN json_extract({column}, {path}) END")


@compiles(json_number, "postgresql")
def _json_number_postgresql(element: json_number, compiler, **kw) -> str:
    column, _path, key = (compiler.process(c, **kw) for c in element.clauses)
    # the sorted columns are JSONB on PostgreSQL (app.db.tables.SORTABLE_JSON)
    return (f"CASE WHEN jsonb_typeof({column} -> CAST({key} AS TEXT)) = 'number' "
            f"THEN CAST({column} ->> CAST({key} AS TEXT) AS DOUBLE PRECISION) END")


class seconds_between(FunctionElement):  # noqa: N801
    """`end - start` in seconds (NULL when either is NULL)."""

    type = Float()
    inherit_cache = True
    name = "seconds_between"

    def __init__(self, start: Any, end: Any):
        super().__init__(start, end)


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element: seconds_between, compiler, **kw) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    # UTCDateTime is stored as UTC text; julianday reads it (days, as a float)
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


@compiles(seconds_between, "postgresql")
def _seconds_postgresql(element: seconds_between, compiler, **kw) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXTRACT(EPOCH FROM ({end} - {start}))"
