"""JSON Schema export of every model: ``schemas/json/<name>.schema.json``.

This module owns the mapping from models to exported schema names
(``business.benefit_payment``, ``ledger.entry``, ``interchange.record`` for the union)
and the byte format of the files (sorted keys, indent 2, UTF-8, trailing newline), so
that a regenerated file is byte-identical when no model changed. ``python -m
schemas.export`` writes them; ``--check`` reports files that differ from the models.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from schemas._interchange import _ADAPTER, RECORD_TYPES
from schemas._ledger import (
    CheckpointView,
    ConsistencyProofView,
    EntryView,
    InclusionProofView,
    IngestReport,
    StatusView,
    VerifierKeyView,
    VerifyReport,
)

__all__ = [
    "JSON_SCHEMA_DIR",
    "LEDGER_DOCUMENTS",
    "check_json_schemas",
    "generate_json_schemas",
    "main",
    "write_json_schemas",
]

JSON_SCHEMA_DIR: Final = Path(__file__).resolve().parent / "json"
"""Where the exported schemas live (shipped as package data)."""

LEDGER_DOCUMENTS: Final[Mapping[str, type[BaseModel]]] = {
    "ledger.entry": EntryView,
    "ledger.checkpoint": CheckpointView,
    "ledger.verifier_key": VerifierKeyView,
    "ledger.status": StatusView,
    "ledger.inclusion_proof": InclusionProofView,
    "ledger.consistency_proof": ConsistencyProofView,
    "ledger.verify_report": VerifyReport,
    "ledger.ingest_report": IngestReport,
}
"""Exported name of each ledger document model."""

_SUFFIX: Final = ".schema.json"
_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"


class _Generator(GenerateJsonSchema):
    """Pydantic's generator, except that an omittable field shows no ``"default": null``.

    Interchange fields typed ``Omittable[...]`` may be absent but never ``null``; a
    ``null`` default would contradict their schema.
    """

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        if schema.get("default", ...) is None and schema["schema"]["type"] != "nullable":
            return self.generate_inner(schema["schema"])
        return super().default_schema(schema)

    def generate(self, schema: CoreSchema, mode: JsonSchemaMode = "validation") -> JsonSchemaValue:
        json_schema = super().generate(schema, mode=mode)
        return {"$schema": _DIALECT, **json_schema}


def _render(json_schema: JsonSchemaValue) -> str:
    return json.dumps(json_schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate_json_schemas() -> dict[str, str]:
    """Every exported schema, rendered: ``{file name: text}``."""
    files: dict[str, str] = {}
    for name, model in [*RECORD_TYPES.items(), *LEDGER_DOCUMENTS.items()]:
        files[name + _SUFFIX] = _render(model.model_json_schema(schema_generator=_Generator))
    union = _ADAPTER.json_schema(schema_generator=_Generator)
    union["title"] = "InterchangeRecord"
    union["description"] = "Any interchange record (format v1), chosen by its type."
    files["interchange.record" + _SUFFIX] = _render(union)
    return dict(sorted(files.items()))


def check_json_schemas(directory: Path = JSON_SCHEMA_DIR) -> list[str]:
    """Names of schema files in ``directory`` that are missing, stale or extra.

    Returns:
        Sorted file names; empty when the directory matches the models exactly.
    """
    expected = generate_json_schemas()
    present = {p.name for p in directory.glob("*" + _SUFFIX)} if directory.is_dir() else set()
    differing = {
        name
        for name, text in expected.items()
        if name not in present or (directory / name).read_text(encoding="utf-8") != text
    }
    return sorted(differing | (present - expected.keys()))


def write_json_schemas(directory: Path = JSON_SCHEMA_DIR) -> list[str]:
    """Write every schema into ``directory`` and delete schema files no model produces.

    Files already up to date are left untouched.

    Returns:
        Sorted names of the files written or deleted.
    """
    directory.mkdir(parents=True, exist_ok=True)
    expected = generate_json_schemas()
    changed = check_json_schemas(directory)
    for name in changed:
        path = directory / name
        if name in expected:
            path.write_text(expected[name], encoding="utf-8", newline="\n")
        else:
            path.unlink()
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m schemas.export [--check] [--dir DIR]``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m schemas.export",
        description="Write one JSON Schema per model into schemas/json/.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and list the files that differ from the models",
    )
    parser.add_argument(
        "--dir", type=Path, default=JSON_SCHEMA_DIR, help="output directory (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    directory: Path = args.dir
    if args.check:
        differing = check_json_schemas(directory)
        for name in differing:
            print(f"{directory / name}: differs from the models", file=sys.stderr)
        if differing:
            print("run: python -m schemas.export", file=sys.stderr)
            return 1
        return 0
    for name in write_json_schemas(directory):
        print(directory / name)
    return 0
