"""The editor's editing operations and the server's validation agree, case by case.

``frontend/src/collab/editing-cases.json`` lists operations on small pipeline documents: the editor
(frontend/src/collab/cases.test.js, vitest) refuses each with the issue code named there, or gives
the document listed; here the server's validation (engine/validation.py) reports exactly that code
for the document the operation would give unchecked, and none of the refused codes for the others.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.validation import CODES, validate_document

CASES = json.loads(
    (Path(__file__).resolve().parents[1] / "frontend/src/collab/editing-cases.json").read_text()
)


def test_the_cases_name_codes_the_server_knows():
    assert set(CASES["refused_codes"]) <= set(CODES)
    assert {case["code"] for case in CASES["cases"]} - {None} <= set(CASES["refused_codes"])
    assert len({case["name"] for case in CASES["cases"]}) == len(CASES["cases"])


@pytest.mark.parametrize("case", CASES["cases"], ids=[case["name"] for case in CASES["cases"]])
def test_the_server_refuses_what_the_editor_refuses(case):
    before = {issue.code for issue in validate_document(case["before"], CASES["catalog"])}
    assert not before & set(CASES["refused_codes"]), "a case starts from a document the server accepts"
    after = {issue.code for issue in validate_document(case["after"], CASES["catalog"])}
    refused = after & set(CASES["refused_codes"])
    if case["code"] is None:
        assert refused == set()
    else:
        assert case["code"] in refused
