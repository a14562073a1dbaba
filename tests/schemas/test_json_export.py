"""The committed JSON Schemas in ``schemas/json`` are exactly what the models generate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from schemas import (
    JSON_SCHEMA_DIR,
    LEDGER_DOCUMENTS,
    RECORD_TYPES,
    check_json_schemas,
    generate_json_schemas,
    write_json_schemas,
)
from schemas._export import main

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schemas_equal_freshly_generated_ones() -> None:
    expected = generate_json_schemas()
    committed = {p.name: p.read_text(encoding="utf-8") for p in JSON_SCHEMA_DIR.glob("*.json")}
    assert sorted(committed) == sorted(expected), "run: python -m schemas.export"
    for name, text in expected.items():
        assert committed[name] == text, f"{name} is stale; run: python -m schemas.export"


def test_one_schema_per_kind_and_document_plus_the_union() -> None:
    names = {name.removesuffix(".schema.json") for name in generate_json_schemas()}
    assert names == {*RECORD_TYPES, *LEDGER_DOCUMENTS, "interchange.record"}


def test_rendering_is_stable_and_sorted() -> None:
    first = generate_json_schemas()
    assert first == generate_json_schemas()
    for text in first.values():
        assert text.endswith("}\n")
        assert (
            text
            == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )


def test_union_schema_dispatches_on_type() -> None:
    union = json.loads(generate_json_schemas()["interchange.record.schema.json"])
    assert union["discriminator"]["propertyName"] == "type"
    assert set(union["discriminator"]["mapping"]) == set(RECORD_TYPES)
    assert len(union["oneOf"]) == len(RECORD_TYPES)


def test_omittable_fields_are_optional_and_not_nullable() -> None:
    schema = json.loads(generate_json_schemas()["finance.payment.schema.json"])
    assert "allocations" not in schema["required"]
    assert schema["properties"]["allocations"]["type"] == "array"
    assert schema["properties"]["allocations"]["minItems"] == 1
    assert "default" not in schema["properties"]["corrects"]
    assert "null" not in json.dumps(schema["properties"])


def test_check_and_write_report_stale_missing_and_extra_files(tmp_path: Path) -> None:
    assert check_json_schemas(tmp_path) == sorted(generate_json_schemas())
    assert write_json_schemas(tmp_path) == sorted(generate_json_schemas())
    assert check_json_schemas(tmp_path) == []
    assert write_json_schemas(tmp_path) == []

    stale = tmp_path / "ledger.entry.schema.json"
    stale.write_text("{}\n", encoding="utf-8")
    (tmp_path / "business.retired_kind.schema.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "finance.payment.schema.json").unlink()
    differing = ["business.retired_kind.schema.json", "finance.payment.schema.json", stale.name]
    assert check_json_schemas(tmp_path) == differing

    assert write_json_schemas(tmp_path) == differing
    assert check_json_schemas(tmp_path) == []
    assert not (tmp_path / "business.retired_kind.schema.json").exists()


def test_main_check_exits_1_and_lists_differing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--dir", str(tmp_path)]) == 0
    (tmp_path / "ledger.entry.schema.json").write_text("{}\n", encoding="utf-8")
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'ledger.entry.schema.json'}: differs from the models" in err
    assert main(["--dir", str(tmp_path)]) == 0
    assert main(["--check", "--dir", str(tmp_path)]) == 0


def test_module_entry_point_checks_the_committed_files() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "schemas.export", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
