"""The pipeline engine: pipeline documents, their validation and their dependency graph.

Pure Python with no Django import, so the worker, the web app and the command line share it::

    issues = validate_document(document, catalog)
    if not issues:
        graph = PipelineGraph.from_document(parse_document(document))
        order = graph.topological_order()
"""

from engine.document import DocumentError, Edge, Node, PipelineDocument, Position, parse_document
from engine.graph import CycleError, PipelineGraph, find_cycles
from engine.validation import (
    CODES,
    Catalog,
    EditorCheck,
    Limits,
    ValidationIssue,
    ports_compatible,
    validate_document,
    validate_document_for_editor,
    validate_document_with_choices,
)

__all__ = [
    "CODES",
    "Catalog",
    "CycleError",
    "DocumentError",
    "Edge",
    "Limits",
    "Node",
    "PipelineDocument",
    "PipelineGraph",
    "Position",
    "ValidationIssue",
    "find_cycles",
    "parse_document",
    "ports_compatible",
    "EditorCheck",
    "validate_document",
    "validate_document_for_editor",
    "validate_document_with_choices",
]
