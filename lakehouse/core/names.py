"""Which names a declaration may give, and how landing files' column names become bronze's.

- **Tables** (sources, entities, marts) are folder names in the lake and table names in the
  marts' SQL: letters, digits and ``_``, not starting with a digit (``TABLE_NAME``).
- **Columns** may be any text a Delta table can hold without column mapping, which every
  Delta reader supports: none of the characters in ``DELTA_FORBIDDEN`` (space, ``,``, ``;``,
  ``{``, ``}``, ``(``, ``)``, ``=``, tab, newline), not empty, not starting with ``_`` (the
  engine's own columns). Reserved words, double quotes, dots or dashes are fine: every name
  that reaches SQL is quoted (``sqltext.quoted``).
- **Landing columns** are mapped by ``portable``: each forbidden character becomes ``_``
  (a CSV header ``order date`` arrives in bronze as ``order_date``). Two headers of one file
  that map to one name make the file a bad file.
"""

from __future__ import annotations

import re

TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DELTA_FORBIDDEN = frozenset(" ,;{}()\n\t=")
_FORBIDDEN_CHARACTER = re.compile("[" + re.escape("".join(sorted(DELTA_FORBIDDEN))) + "]")


def portable(name: str) -> str:
    """``name`` with each character Delta forbids (without column mapping) replaced by ``_``."""
    return _FORBIDDEN_CHARACTER.sub("_", name)


def table_problem(name) -> str | None:
    """Why ``name`` cannot name a source, entity or mart (None: it can)."""
    if isinstance(name, str) and TABLE_NAME.fullmatch(name):
        return None
    return f"{name!r} is not a table name (letters, digits and _, not starting with a digit)"


def column_problem(name) -> str | None:
    """Why ``name`` cannot name a declared column (None: it can)."""
    if not isinstance(name, str) or not name:
        return f"{name!r} is not a column name"
    if name.startswith("_"):
        return f"{name!r} starts with _, which the engine keeps for its own columns"
    bad = sorted({repr(c) for c in name if c in DELTA_FORBIDDEN})
    if bad:
        return (
            f"{name!r} holds {', '.join(bad)}, which a Delta table cannot hold without column "
            f"mapping: name it {portable(name)!r} (a landing column {name!r} arrives so)"
        )
    return None
