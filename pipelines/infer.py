"""Infer: a first draft of a dataset declaration from one sample landing file.

Upstream: the file at ``path`` (any fsspec URI; CSV, JSON lines or Parquet, compressed or
not). Output: YAML for ``conf/datasets/<entity>.yml``, printed (and saved with ``write``),
with the columns' types and nullability from the sample and the key left for a person.
"""

from __future__ import annotations

from pathlib import Path

from lakehouse.declare import catalog, infer
from lakehouse.runtime import integration

integration.install()  # hooks, executors, logs: lakehouse/runtime/integration.py


def entity_draft(
    path: str, entity: str | None = None, format: str | None = None, write: bool = False
) -> str:
    """The draft declaration, printed; with ``write``, saved unless that file exists."""
    text = infer.draft(path, entity, format)
    print(text, end="")
    if write:
        target = catalog.DATASETS_DIR / f"{infer.entity_name(path, entity)}.yml"
        if target.exists():
            raise FileExistsError(f"{target} exists: not overwritten (drop write, or move it)")
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(text)
        print(f"# saved as {target}: set its key, then run bronze and silver")
    return text
