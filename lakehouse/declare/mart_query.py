"""A mart's query, read for what gold needs to keep it incremental and exact.

A mart is one SELECT over silver entities. The engine reads it with sqlglot and finds:

- its **inputs**: the tables of its FROM and JOIN clauses;
- the **part expressions**: for each output column that names a part of the mart (the
  partition column, or the key columns), the expression over input rows that gives it;
- whether a change can be **traced** to the parts it reaches. A query is traced when every
  output row's part is a row-level expression of the input rows it came from: one SELECT
  over tables, the part columns plain expressions that are grouped on (or no grouping at
  all). Anything else (a window, a subquery, a set operation, LIMIT, an anti-join, a
  function of the clock) is recomputed whole, and the reason is said once at load time.

From a traced query it writes two more queries:

- the **lineage** query: the query's own FROM, JOIN and WHERE, with one occurrence of an
  input replaced by that input's changed rows (old and new images, marked) and every other
  input by its rows plus the changed rows' old images; it returns the parts that the
  marked rows reach. The union over every input occurrence is every part whose rows can
  differ between the old and the new silver: a join row that changed holds at least one
  changed input row, whose old or new image the lineage query follows.
- the **part** query: the query as written, restricted to given parts before it groups
  (``<part expression> IN (...)``), which is the same as restricting its output.

Pure functions of the SQL text: no data, no DuckDB.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from lakehouse.declare.declaration import DeclarationError

DIALECT = "duckdb"
CHANGED = "_lakehouse_changed"  # marks the rows of the input occurrence being traced
TOUCHED = "_lakehouse_touched"  # the parts a task recomputes, registered as a table
# Functions whose result depends on when the query runs: an incremental run could never
# equal a rebuild done on another day.
VOLATILE = {
    "current_date",
    "current_time",
    "current_timestamp",
    "get_current_time",
    "gen_random_uuid",
    "localtime",
    "localtimestamp",
    "now",
    "random",
    "today",
    "transaction_timestamp",
    "uuid",
}
VOLATILE_NODES = (exp.CurrentDate, exp.CurrentTime, exp.CurrentTimestamp, exp.Rand)
UNTRACEABLE_JOINS = {"ANTI": "an anti-join", "SEMI": "a semi-join", "ASOF": "an ASOF join"}


@dataclass(frozen=True)
class Traced:
    """A mart query read for incremental runs: its inputs, and for each part column its
    expression over input rows (None where the query is recomputed whole, with ``whole``
    saying why)."""

    sql: str
    inputs: tuple[str, ...]
    columns: tuple[str, ...]
    expressions: tuple[str, ...] | None
    whole: str | None
    tables: tuple[tuple[str, str], ...] = ()  # (input, alias) of each FROM/JOIN table, in order

    def lineage_sql(self, occurrence: int | None, changed: frozenset[str] = frozenset()) -> str:
        """The parts reached by the changed rows of the ``occurrence``-th input table of the
        FROM/JOIN clauses (registered as ``_changed_<input>``, marked by ``CHANGED``); other
        inputs that changed read ``_all_<input>`` (their rows and the old images). With
        ``occurrence`` None: every part the query produces from the tables as they are."""
        expressions, tree = self._expressions(), self._select()
        marked = None
        for index, table in enumerate(from_tables(tree)):
            name = table.name
            if index == occurrence:
                marked = _rename(table, f"_changed_{name}")
            elif name in changed:
                _rename(table, f"_all_{name}")
        lineage = exp.select(
            *(
                exp.alias_(parse_expression(text), column, copy=False)
                for text, column in zip(expressions, self.columns, strict=True)
            ),
            copy=False,
        ).distinct(copy=False)
        lineage.set("from_", tree.args["from_"])
        lineage.set("joins", tree.args.get("joins"))
        lineage.set("where", tree.args.get("where"))
        if marked is not None:
            lineage = lineage.where(
                exp.column(CHANGED, table=marked).is_(exp.null()).not_(), copy=False
            )
        return lineage.sql(DIALECT)

    @property
    def occurrences(self) -> tuple[str, ...]:
        """The input of each table occurrence of the FROM/JOIN clauses, in order."""
        return tuple(name for name, _ in self.tables)

    def part_sql(self, literal_values: tuple | None = None) -> str:
        """The query restricted to some parts before it groups: to the rows of ``TOUCHED``
        (a table of the part columns), and to ``literal_values`` when given (one column:
        a filter the scans can prune files with)."""
        tree = parse(self.sql, "")
        expressions = [parse_expression(text) for text in self._expressions()]
        touched = exp.select(*self.columns, copy=False).from_(TOUCHED, copy=False)
        condition: exp.Expr
        if len(expressions) == 1:
            condition = expressions[0].copy().isin(query=touched, copy=False)
        else:
            condition = exp.Tuple(expressions=expressions).isin(query=touched, copy=False)
        if literal_values:
            literal = expressions[0].isin(*literal_values, copy=False)
            condition = exp.and_(literal, condition, copy=False)
        return tree.where(condition, copy=False).sql(DIALECT)

    def _select(self) -> exp.Select:
        """The query's tree: one SELECT over tables, as every traced query is."""
        tree = parse(self.sql, "")
        if not isinstance(tree, exp.Select):
            raise TypeError(f"not one SELECT, so not traced: {self.sql}")
        return tree

    def _expressions(self) -> tuple[str, ...]:
        """The part expressions, which only a traced query has."""
        if self.expressions is None:
            raise TypeError(f"recomputed whole ({self.whole}), so not traced: {self.sql}")
        return self.expressions


def parse(sql: str, where: str) -> exp.Query:
    """One query, or a ``DeclarationError`` naming ``where``."""
    try:
        trees = [t for t in sqlglot.parse(sql, read=DIALECT) if t is not None]
    except sqlglot.errors.ParseError as error:
        raise DeclarationError(f"{where}: not valid SQL: {str(error).splitlines()[0]}") from None
    if len(trees) != 1 or not isinstance(trees[0], exp.Query):
        raise DeclarationError(f"{where}: a mart is one SELECT; found {len(trees)} statements")
    return trees[0]


def parse_expression(text: str) -> exp.Expr:
    return sqlglot.parse_one(text, read=DIALECT)


def inputs_of(tree: exp.Query) -> tuple[str, ...]:
    """The tables a query reads, in order of appearance (common table expressions aside)."""
    ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
    names = []
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue  # a table function: reported by ``trace``
        if table.name not in ctes and table.name not in names:
            names.append(table.name)
    return tuple(names)


def trace(sql: str, columns: tuple[str, ...], where: str) -> Traced:
    """Read a mart's query: its inputs and, when a change can be traced, the expression of
    each of ``columns`` (the partition column, or the keys) over input rows. A query that
    names no such output column is a ``DeclarationError``; one that cannot be traced is
    recomputed whole (``Traced.whole`` says why)."""
    tree = parse(sql, where)
    inputs = inputs_of(tree)
    outputs = _outputs(tree)
    star = isinstance(tree, exp.Select) and any(isinstance(e, exp.Star) for e in tree.expressions)
    missing = [c for c in columns if c not in outputs and not star]
    if missing:
        raise DeclarationError(
            f"{where}: its SELECT gives no column {', '.join(missing)} "
            f"(the mart's {'partition' if len(columns) == 1 else 'key'}); it gives "
            f"{', '.join(outputs) or 'none'}"
        )
    why = _untraceable(tree)
    expressions = None
    if why is None:
        assert isinstance(tree, exp.Select)  # _untraceable: anything else is not traced
        found = [outputs.get(c, exp.column(c, quoted=True)) for c in columns]
        why = _not_grouped_on(tree, columns, found)
        if why is None:
            expressions = tuple(e.sql(DIALECT) for e in found)
    tables: tuple[tuple[str, str], ...] = ()
    if isinstance(tree, exp.Select) and tree.args.get("from_") is not None:
        tables = tuple((t.name, t.alias or t.name) for t in from_tables(tree))
    sql = tree.sql(DIALECT, comments=False)
    return Traced(sql, inputs, tuple(columns), expressions, why, tables)


def _outputs(tree: exp.Query) -> dict[str, exp.Expression]:
    """Output column name -> its expression (unaliased)."""
    if not isinstance(tree, exp.Select):
        return {name: exp.column(name, quoted=True) for name in tree.named_selects}
    found = {}
    for item in tree.expressions:
        if isinstance(item, exp.Star):
            continue
        found[item.alias_or_name] = item.this if isinstance(item, exp.Alias) else item
    return found


def from_tables(tree: exp.Select) -> list[exp.Table]:
    sources = [tree.args["from_"].this] + [join.this for join in tree.args.get("joins") or []]
    return [s for s in sources if isinstance(s, exp.Table)]


def _rename(table: exp.Table, name: str) -> str:
    """Point a table reference at ``name``, keeping the alias the query uses for it."""
    alias = table.alias or table.name
    table.set("this", exp.to_identifier(name))
    table.set("db", None)
    table.set("catalog", None)
    table.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
    return alias


def _untraceable(tree: exp.Query) -> str | None:
    """Why a change in this query cannot be traced to the parts it reaches (None: it can)."""
    if not isinstance(tree, exp.Select):
        return "a set operation (UNION, INTERSECT or EXCEPT)"
    if tree.args.get("with_"):
        return "a WITH clause"
    if tree.args.get("from_") is None:
        return "no FROM clause"
    for node in tree.find_all(exp.Select):
        if node is not tree:
            return "a subquery"
    if tree.find(exp.Window):
        return "a window function"
    for clause, text in (("limit", "LIMIT"), ("offset", "OFFSET"), ("qualify", "QUALIFY")):
        if tree.args.get(clause):
            return text
    distinct = tree.args.get("distinct")
    if distinct is not None and distinct.args.get("on"):
        return "DISTINCT ON"
    sources = [tree.args["from_"].this] + [j.this for j in tree.args.get("joins") or []]
    for source in sources:
        if not isinstance(source, exp.Table) or not isinstance(source.this, exp.Identifier):
            return f"{source.sql(DIALECT)} in FROM (only tables are traced)"
    for join in tree.args.get("joins") or []:
        for part in ("kind", "side", "method"):
            kind = str(join.args.get(part) or "").upper()
            if kind in UNTRACEABLE_JOINS:
                return UNTRACEABLE_JOINS[kind]
        if join.args.get("method") and str(join.args["method"]).upper() == "POSITIONAL":
            return "a positional join"
    if tree.find(exp.Unnest, exp.Lateral):
        return "UNNEST or LATERAL"
    for function in tree.find_all(exp.Func):
        name = function.name if isinstance(function, exp.Anonymous) else function.sql_name()
        if isinstance(function, VOLATILE_NODES) or name.lower() in VOLATILE:
            return f"{function.sql(DIALECT)}, whose value changes from run to run"
    group = tree.args.get("group")
    if group is not None and group.find(exp.Rollup, exp.Cube, exp.GroupingSets):
        return "ROLLUP, CUBE or GROUPING SETS"
    return None


def _not_grouped_on(tree: exp.Select, columns, expressions) -> str | None:
    """Why the part columns do not name whole groups of the query (None: they do)."""
    for column, expression in zip(columns, expressions, strict=True):
        if expression.find(exp.AggFunc):
            return f"{column} is computed by an aggregate"
    group = tree.args.get("group")
    aggregated = any(item.find(exp.AggFunc) for item in tree.expressions)
    if group is None:
        return f"{', '.join(columns)}: an aggregate over the whole query" if aggregated else None
    if group.args.get("all"):
        return None
    grouped = set()
    selects = [item.this if isinstance(item, exp.Alias) else item for item in tree.expressions]
    aliases = {item.alias: i for i, item in enumerate(tree.expressions) if item.alias}
    for item in group.expressions:
        if isinstance(item, exp.Literal) and item.is_int and 0 < int(item.name) <= len(selects):
            item = selects[int(item.name) - 1]
        elif isinstance(item, exp.Column) and not item.table and item.name in aliases:
            item = selects[aliases[item.name]]
        grouped.add(item.sql(DIALECT))
    for column, expression in zip(columns, expressions, strict=True):
        if expression.sql(DIALECT) not in grouped:
            return f"{column} is not one of its GROUP BY expressions"
    return None
