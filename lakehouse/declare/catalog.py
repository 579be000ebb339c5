"""Declarations: the datasets a project carries, read from ``conf/datasets/*.yml``.

A dataset file declares, once, everything the engine needs to know about one domain:
``sources`` (bronze, as in ``bronze.yml``), ``entities`` (silver tables: columns and types,
nullability, key, partition, row rules, parent, date bounds, schema evolution) and
``marts`` (gold: each mart's output contract, its partition, and where its one query lives:
a ``.sql`` file or a function in the module ``mart_module`` under ``pipelines/``; see
``lakehouse.declare.marts``). ``enabled: false`` switches a dataset off.

Every mistake in a declaration is a ``DeclarationError`` naming the file, the entity (or
mart) and the field, raised when the catalog is loaded: before any data moves.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from lakehouse.core import names
from lakehouse.core.settings import read_yaml
from lakehouse.core.shapes import did_you_mean
from lakehouse.declare import models
from lakehouse.declare.declaration import DeclarationError, Entity, check_columns_exist, table

if TYPE_CHECKING:
    from lakehouse.declare.marts import Mart

DATASETS_DIR = Path("conf") / "datasets"


@dataclass(frozen=True)
class Dataset:
    """One ``conf/datasets/<name>.yml``."""

    name: str
    path: Path
    enabled: bool
    sources: dict[str, dict]
    entities: dict[str, Entity]
    marts: dict[str, Entity]  # each mart's output contract
    mart_settings: dict[str, dict]  # each mart's partition, sql file, touched override
    mart_module: str | None


@dataclass(frozen=True)
class Catalog:
    """Every enabled dataset's sources, entities and marts, checked against each other."""

    datasets: tuple[Dataset, ...]
    sources: dict[str, dict]
    entities: dict[str, Entity]
    marts: dict[str, Mart]

    def entities_of_source(self, source: str) -> list[Entity]:
        return [e for e in self.entities.values() if e.source == source]

    def in_dependency_order(self) -> list[Entity]:
        """Entities with parents after their parents (declaration order otherwise)."""
        ordered: list[Entity] = []
        visiting: set[str] = set()

        def visit(entity: Entity) -> None:
            if entity in ordered:
                return
            if entity.name in visiting:
                raise DeclarationError(f"{entity.where}.parent: a cycle of parents")
            visiting.add(entity.name)
            if entity.parent:
                visit(self.entities[entity.parent.entity])
            ordered.append(entity)

        for entity in self.entities.values():
            visit(entity)
        return ordered


def load_dataset(path: Path) -> Dataset:
    """One dataset file, its shape checked (``models``), then each entity and mart contract."""
    try:
        spec = models.parsed(read_yaml(path), path)
    except yaml.YAMLError as error:
        raise DeclarationError(f"{path}: not valid YAML: {error}") from None
    entities = {
        name: table(name, entity, f"{path} entities.{name}")
        for name, entity in spec.entities.items()
    }
    marts = {name: table(name, mart, f"{path} marts.{name}") for name, mart in spec.marts.items()}
    mart_settings = {
        name: mart.model_dump(include={"partition", "sql", "touched"})
        for name, mart in spec.marts.items()
    }
    for name in spec.sources:
        if problem := names.table_problem(name):
            raise DeclarationError(f"{path} sources: {problem}")
    return Dataset(
        path.stem,
        path,
        spec.enabled,
        spec.sources,
        entities,
        marts,
        mart_settings,
        spec.mart_module,
    )


def _merged(datasets: list[Dataset], part: str) -> dict:
    merged: dict = {}
    origin: dict[str, Path] = {}
    for dataset in datasets:
        for name, value in getattr(dataset, part).items():
            if name in merged:
                raise DeclarationError(
                    f"{dataset.path} {part}.{name}: already declared in {origin[name]}"
                )
            merged[name], origin[name] = value, dataset.path
    return merged


def _marts(dataset: Dataset, entities: dict[str, Entity], project: Path) -> dict:
    """The dataset's marts, each query found, traced and bound (``lakehouse.declare.marts``)."""
    from lakehouse.declare import marts  # SQL parsing and DuckDB: only where marts are loaded

    return {
        name: marts.load(
            name,
            dataset.mart_settings[name],
            contract,
            dataset.mart_module,
            project,
            entities,
        )
        for name, contract in dataset.marts.items()
    }


def _importable(pipelines_dir: Path) -> None:
    """User modules (marts, checks) import the way FlowerPower imports pipelines: with the
    project's ``pipelines/`` on ``sys.path``, under their bare names."""
    folder = str(pipelines_dir.resolve())
    if pipelines_dir.is_dir() and folder not in sys.path:
        sys.path.append(folder)


def _stamps(paths) -> tuple:
    """What a file's content is known by between two loads: its path, size and mtime."""
    found: list[tuple] = []
    for path in paths:
        try:
            stat = Path(path).stat()
        except OSError:
            found.append((str(path), None))
        else:
            found.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(found)


_loaded: dict[tuple, tuple[Catalog, tuple, tuple]] = {}  # one process: daily and its layers


def load(datasets_dir: Path = DATASETS_DIR, marts: bool = True) -> Catalog:
    """The enabled datasets under ``datasets_dir``, checked against each other: unique names,
    parents and mart inputs that exist. Without ``marts`` (bronze, silver) the mart modules
    are not imported, nor is the gold machinery they bring (DuckDB, pandera). Loaded once per
    process while its files (the YAML, the marts' SQL files) stay as they were: ``daily``
    runs its layers in one process, and binding every mart's query costs 0.1-0.2 s."""
    folder = Path(datasets_dir)
    paths = sorted(folder.glob("*.yml")) + sorted(folder.glob("*.yaml"))
    key = (str(folder.resolve()), marts, _stamps(paths))
    if key in _loaded:
        catalog, sql_files, stamps = _loaded[key]
        if _stamps(sql_files) == stamps:
            return catalog
    catalog = _load(folder, paths, marts)
    sql_files = tuple(
        folder.parent.parent / d.mart_settings[m]["sql"]
        for d in catalog.datasets
        for m in d.marts
        if d.mart_settings[m].get("sql")
    )
    _loaded[key] = (catalog, sql_files, _stamps(sql_files))
    return catalog


def _load(datasets_dir: Path, paths: list[Path], marts: bool) -> Catalog:
    project = Path(datasets_dir).parent.parent
    _importable(project / "pipelines")
    datasets = [load_dataset(p) for p in paths]
    enabled = [d for d in datasets if d.enabled]
    entities = _merged(enabled, "entities")
    for entity in entities.values():
        if entity.parent is None:
            continue
        parent = entities.get(entity.parent.entity)
        if parent is None:
            raise DeclarationError(
                f"{entity.where}.parent.entity: no entity {entity.parent.entity!r}"
                f"{did_you_mean(entity.parent.entity, list(entities))}"
            )
        check_columns_exist([entity.parent.key], parent.columns, f"{entity.where}.parent.key")
    declared: dict = {}
    for dataset in enabled if marts else ():
        for name, mart in _marts(dataset, entities, project).items():
            if name in declared:
                raise DeclarationError(f"{dataset.path}: mart {name!r} is declared twice")
            declared[name] = mart
    catalog = Catalog(tuple(datasets), _merged(enabled, "sources"), entities, declared)
    catalog.in_dependency_order()  # a cycle of parents fails here
    return catalog
