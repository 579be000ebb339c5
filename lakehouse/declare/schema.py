"""The JSON Schema of ``conf/datasets/*.yml`` and the declaration reference, generated.

Both come from the declaration models (``lakehouse.declare.models``) and the source plugins
known to ``lakehouse.io``, so neither is kept by hand::

    python -m lakehouse.declare.schema          # writes schemas/dataset.schema.json and
                                                #   docs/reference/datasets.md
    python -m lakehouse.declare.schema --check  # exit 1 if either is out of date

A dataset file names the schema on its first line, for editors with YAML language support
(VS Code's YAML extension, JetBrains, Neovim with yaml-language-server)::

    # yaml-language-server: $schema=../../schemas/dataset.schema.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lakehouse import io as plugins
from lakehouse.declare import models

SCHEMA_FILE = Path("schemas") / "dataset.schema.json"
REFERENCE_FILE = Path("docs") / "reference" / "datasets.md"
MODELS = (
    models.Dataset,
    models.Entity,
    models.Mart,
    models.Column,
    models.Rules,
    models.StrLength,
    models.Partition,
    models.Parent,
    models.Snapshot,
    models.Dates,
)


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of one dataset file."""
    schema = models.Dataset.model_json_schema(by_alias=True)
    schema["$defs"]["Source"] = _source_schema()
    schema["properties"]["sources"]["additionalProperties"] = {"$ref": "#/$defs/Source"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "A dataset declaration (conf/datasets/*.yml)",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def _source_schema() -> dict:
    """A source: a known ``format`` (or ``package.module:Class``) and that plugin's keys."""
    formats = sorted(plugins.SOURCES)
    keys = sorted({k for cls in plugins.SOURCES.values() for k in cls.keys})
    return {
        "type": "object",
        "description": "A source plugin: its format and that plugin's options.",
        "required": ["format"],
        "properties": {
            "format": {
                "description": "A source plugin, or package.module:Class for your own.",
                "anyOf": [{"enum": formats}, {"type": "string", "pattern": r"^[\w.]+:\w+$"}],
            },
            **{key: {"description": _plugins_taking(key)} for key in keys},
        },
        "allOf": [
            {
                "if": {"properties": {"format": {"const": name}}, "required": ["format"]},
                "then": {
                    "required": list(cls.required),
                    "propertyNames": {"enum": ["format", *cls.keys]},
                },
            }
            for name, cls in sorted(plugins.SOURCES.items())
        ],
    }


def _plugins_taking(key: str) -> str:
    names = sorted(n for n, cls in plugins.SOURCES.items() if key in cls.keys)
    return f"Taken by: {', '.join(names)}."


def reference() -> str:
    """The declaration reference page (Markdown), one table per part of a dataset file."""
    schema = json_schema()
    lines = [
        "# Dataset declaration reference",
        "",
        "Generated from the declaration models (`python -m lakehouse.declare.schema`); do not "
        "edit. The guide is [Declaring a dataset](../guide/declarations.md); the same models "
        "give editors the JSON Schema `schemas/dataset.schema.json`.",
    ]
    for model in MODELS:
        part = schema if model is models.Dataset else schema["$defs"][model.__name__]
        lines += ["", f"## {model.__name__}", "", " ".join((model.__doc__ or "").split()), ""]
        lines += ["| key | type | default | what it is |", "|---|---|---|---|"]
        required = set(part.get("required", ()))
        for key, prop in part["properties"].items():
            default = "required" if key in required else _default(prop)
            text = _escaped(prop.get("description", ""))
            lines.append(f"| `{key}` | {_type(prop)} | {default} | {text} |")
    lines += ["", "## Source", "", schema["$defs"]["Source"]["description"], ""]
    lines += ["| format | keys (required in bold) |", "|---|---|"]
    for name, cls in sorted(plugins.SOURCES.items()):
        keys = [f"**{k}**" if k in cls.required else k for k in cls.keys]
        lines.append(f"| `{name}` | {', '.join(keys) or '(none)'} |")
    return "\n".join(lines) + "\n"


def _escaped(text: str) -> str:
    """Text fit for a Markdown table cell (``changed_<entity>`` is no HTML tag)."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _default(prop: dict) -> str:
    if "default" not in prop or prop["default"] in (None, "", {}):
        return ""
    return f"`{json.dumps(prop['default'])}`"


def _type(prop: dict) -> str:
    """A property's type in words: ``string``, ``list of string``, [Column](#column), ..."""
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in prop:
        options = [_type(p) for p in prop["anyOf"] if p.get("type") != "null"]
        return " or ".join(dict.fromkeys(options))
    if "enum" in prop:
        return "one of " + ", ".join(f"`{v}`" for v in prop["enum"])
    kind = prop.get("type")
    if kind == "array":
        return f"list of {_type(prop.get('items', {}))}"
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        return f"name → {_type(prop['additionalProperties'])}"
    if isinstance(kind, list):
        return " or ".join(kind)
    if not isinstance(kind, str):
        return "any"
    return {"string": "string", "boolean": "true/false", "integer": "integer"}.get(kind, "any")


def _rendered() -> dict[Path, str]:
    return {
        SCHEMA_FILE: json.dumps(json_schema(), indent=2) + "\n",
        REFERENCE_FILE: reference(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in _rendered().items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    said = "out of date (python -m lakehouse.declare.schema)" if args.check else "written"
    for path in stale:
        print(f"{path}: {said}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
