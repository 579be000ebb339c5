"""The data in the DAG: bronze sources -> silver entities -> gold marts, drawn by Hamilton.

The pipelines' own DAGs (``flowerpower pipeline save-dag``) show the machinery that moves
data; this one shows the data: one node per table of the enabled datasets, each depending
on what it is built from (a mart on the entities its query reads). It is a Hamilton graph
of stand-in functions, so it is drawn the way every DAG of the project is.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import polars as pl

from lakehouse.declare.catalog import Catalog


class BronzeTable:
    """A bronze table: landed files, raw, append-only."""


class SilverEntity:
    """A silver entity: typed, validated, one row per key."""


class GoldMart:
    """A gold mart: one query over silver entities."""


STYLE = {"BronzeTable": "#d8c3a5", "SilverEntity": "#c0c8d0", "GoldMart": "#f2cc60"}


def _stand_in(name: str, kind: type, inputs: dict[str, type], doc: str) -> Callable:
    """A function named ``name`` returning ``kind`` from parameters ``inputs``: a node."""

    def node(**tables):
        raise NotImplementedError("a picture of the data, not a pipeline to run")

    node.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=t)
            for n, t in inputs.items()
        ],
        return_annotation=kind,
    )
    node.__annotations__ = {**inputs, "return": kind}
    node.__name__ = node.__qualname__ = name
    node.__doc__ = doc
    return node


def nodes(catalog: Catalog) -> list[Callable]:
    """A node per bronze source read, per silver entity and per mart."""
    found = []
    sources = {entity.source for entity in catalog.entities.values()}
    for source in sorted(sources):
        found.append(_stand_in(f"bronze_{source}", BronzeTable, {}, f"bronze/{source}"))
    for entity in catalog.entities.values():
        found.append(
            _stand_in(
                entity.name,
                SilverEntity,
                {f"bronze_{entity.source}": BronzeTable},
                entity.grain or f"silver/{entity.name}",
            )
        )
    for mart in catalog.marts.values():
        found.append(
            _stand_in(
                mart.name,
                GoldMart,
                {name: SilverEntity for name in mart.inputs},
                mart.contract.grain or f"gold/{mart.name}",
            )
        )
    return found


def _style(*, node, node_class):
    kind = getattr(node.type, "__name__", "")
    if kind in STYLE:
        return {"fillcolor": STYLE[kind]}, node_class, kind
    return {}, node_class, None


def graph(catalog: Catalog):
    """The graphviz ``Digraph`` of the catalog's data (sources, entities, marts)."""
    from hamilton import ad_hoc_utils, driver

    module = ad_hoc_utils.create_temporary_module(*nodes(catalog), module_name="data")
    built = driver.Builder().with_modules(module).build()
    return built.display_all_functions(
        None, show_schema=False, show_legend=False, custom_style_function=_style
    )


def kept(catalog: Catalog) -> pl.DataFrame:
    """One row per mart: what it reads, how a change reaches it, and from where."""
    rows = [
        {
            "mart": mart.name,
            "reads": ", ".join(mart.inputs),
            "kept by": f"partition {mart.partition}"
            if mart.partition
            else "key " + ", ".join(mart.keys),
            "a change recomputes": "the whole mart: " + mart.whole
            if mart.whole
            else "the parts it reaches" + (" (hand-written touched)" if mart.touched_sql else ""),
            "query": mart.where,
        }
        for mart in catalog.marts.values()
    ]
    schema = ["mart", "reads", "kept by", "a change recomputes", "query"]
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)
