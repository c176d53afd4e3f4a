"""The JSON documents' schemas: schemas/*.schema.json are what berth.ui.documents says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from berth.ui.documents import DOCUMENTS, PlanDocument, schema

ROOT = Path(__file__).resolve().parents[3]


def test_the_schema_files_are_generated_from_the_models():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "schemas.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for name in DOCUMENTS:
        on_disk = json.loads((ROOT / "schemas" / f"{name}.schema.json").read_text())
        assert on_disk == json.loads(json.dumps(schema(name), sort_keys=True))


def test_a_document_with_a_key_the_model_does_not_name_is_refused():
    doc = {"format_version": 1, "stack": "s", "lineage": None, "serial": 0, "destroy": False, "changes": [],
           "summary": {"add": 0, "change": 0, "destroy": 0}, "warnings": [], "kept": [], "apps": {}}
    PlanDocument.model_validate(doc)
    with pytest.raises(ValidationError):
        PlanDocument.model_validate(doc | {"surprise": 1})
    with pytest.raises(ValidationError):
        PlanDocument.model_validate(doc | {"format_version": 2})
