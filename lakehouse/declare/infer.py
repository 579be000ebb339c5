"""A first draft of an entity declaration, inferred from a sample landing file.

Column names, types (integers, exact decimals with their scale, dates, timestamps with or
without a zone, booleans, text) and nullability come from the sample; the key, the rules
and the partition are left for a person to decide: the draft says where. The draft is YAML
for ``conf/datasets/<dataset>.yml`` and loads as soon as ``key`` is set.
"""

from __future__ import annotations

import json
import re

import polars as pl
import pyarrow as pa

from lakehouse.io.files import FILE_FORMATS, read_file

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ZONED = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$")
LOCAL = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
INTEGER = re.compile(r"^[+-]?\d+$")
DECIMAL = re.compile(r"^[+-]?\d*\.(\d+)$")
BOOLEAN = {"true", "false"}


def format_of(path: str) -> str:
    """The file format from the name's suffix (compression suffixes aside)."""
    name = re.sub(r"\.(gz|zst|bz2|xz)$", "", path.lower())
    for fmt, source in FILE_FORMATS.items():
        if name.endswith(source.suffixes):
            return fmt
    known = ", ".join(s for source in FILE_FORMATS.values() for s in source.suffixes)
    raise ValueError(f"{path}: cannot tell the format from the name (known: {known})")


def text_type(values: pl.Series) -> str:
    """The narrowest declared type every non-empty text value of a column fits."""
    texts = [v.strip() for v in values.drop_nulls().to_list() if v.strip()]
    if not texts:
        return "string"
    if all(INTEGER.match(t) for t in texts):
        return "int64" if all(abs(int(t)) < 2**63 for t in texts) else "decimal(38,0)"
    if all(INTEGER.match(t) or DECIMAL.match(t) for t in texts):
        scale = max(len(m[1]) for t in texts if (m := DECIMAL.match(t)))
        digits = max(len(t.lstrip("+-").split(".")[0]) for t in texts)
        return f"decimal({min(38, max(18, digits + scale))},{scale})"
    if all(t.lower() in BOOLEAN for t in texts):
        return "bool"
    if all(DATE.match(t) for t in texts):
        return "date"
    if all(ZONED.match(t) for t in texts):
        return "timestamp[us, UTC]"
    if all(LOCAL.match(t) or DATE.match(t) for t in texts):
        return "timestamp[us]"
    return "string"


def arrow_type(dtype: pa.DataType) -> str:
    """The declared type of a typed (Parquet) column."""
    if pa.types.is_integer(dtype):
        return "int64" if dtype.bit_width == 64 else f"int{max(dtype.bit_width, 8)}"
    if pa.types.is_floating(dtype):
        return "float64" if dtype.bit_width == 64 else "float32"
    if pa.types.is_decimal(dtype):
        return f"decimal({dtype.precision},{dtype.scale})"
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_date(dtype):
        return "date"
    if pa.types.is_timestamp(dtype):
        return f"timestamp[{dtype.unit}, {dtype.tz}]" if dtype.tz else f"timestamp[{dtype.unit}]"
    return "string"


def columns_of(sample: pl.DataFrame, typed: bool) -> dict[str, dict]:
    """Per column: its type and whether the sample has empty values."""
    found = {}
    for name in sample.columns:
        values = sample[name]
        kind = arrow_type(values.to_arrow().type) if typed else text_type(values)
        empty = values.null_count() > 0
        if not typed and values.dtype == pl.String:
            empty = empty or (values.str.strip_chars() == "").any()
        found[name] = {"type": kind, **({"nullable": True} if empty else {})}
    return found


def entity_name(path: str, entity: str | None = None) -> str:
    """``entity``, else the sample's folder (``landing/<source>/file``), else its stem."""
    parts = path.rstrip("/").split("/")
    guess = parts[-2] if len(parts) > 1 and parts[-2] not in ("", ".") else parts[-1]
    return entity or re.sub(r"[^a-z0-9_]", "_", guess.split(".")[0].lower())


def draft(path: str, entity: str | None = None, fmt: str | None = None) -> str:
    """The YAML draft of a dataset with one source and one entity, from the file at ``path``."""
    fmt = fmt or format_of(path)
    sample = read_file(path, fmt, "infer")
    name = entity_name(path, entity)
    columns = columns_of(sample, typed=fmt == "parquet")
    dates = [
        c for c, spec in columns.items() if spec["type"] == "date" or "timestamp" in spec["type"]
    ]
    width = max(len(c) for c in columns) + 1
    lines = [
        f"# Drafted from {path} ({sample.height:,} rows). Check every type, then set key.",
        "sources:",
        f"  {name}: {{format: {fmt}}}       # files under landing_root/{name}/",
        "entities:",
        f"  {name}:",
        "    grain: One row per ... .   # what one row is",
        "    key: []                    # set: the column(s) that identify a row",
    ]
    if dates:
        lines.append(f"    # partition: {{column: {dates[0]}_month, from: {dates[0]}, by: month}}")
    lines.append("    columns:")
    for column, spec in columns.items():
        column = column if re.fullmatch(r"[A-Za-z_]\w*", column) else json.dumps(column)
        extra = ", nullable: true" if spec.get("nullable") else ""
        lines.append(f'      {(column + ":").ljust(width)} {{type: "{spec["type"]}"{extra}}}')
    return "\n".join(lines) + "\n"
