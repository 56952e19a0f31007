"""Catalog search as stakeholders type it: every word of the query must match, and a word matches
its synonyms too ("heat wave", "MHW" and "marine heatwave" find the same block; "SST" finds sea
surface temperature). Pure functions."""

from __future__ import annotations

import re

SYNONYMS: tuple[frozenset[str], ...] = (
    frozenset({"heatwave", "heatwaves", "mhw", "hobday"}),
    frozenset({"sst", "sea surface temperature", "temperature"}),
    frozenset({"sss", "salinity"}),
    frozenset({"current", "currents", "uo", "vo", "velocity"}),
    frozenset({"oil", "spill", "oil spill", "drift", "opendrift", "particle"}),
    frozenset({"forecast", "prediction", "predict"}),
    frozenset({"trend", "mann-kendall", "sen"}),
    frozenset({"map", "maps", "chart", "plot", "figure"}),
    frozenset({"csv", "table", "spreadsheet"}),
    frozenset({"netcdf", "nc", "cf"}),
    frozenset({"buoy", "buoys", "in situ", "in-situ", "observations", "station"}),
    frozenset({"subset", "crop", "clip", "bounding box", "bbox"}),
    frozenset({"climatology", "anomaly", "anomalies", "baseline"}),
)
"""Groups of words that mean the same thing to our users; all lower case."""

_PHRASES = sorted({word for group in SYNONYMS for word in group if " " in word}, key=len, reverse=True)


def _normalise(text: str) -> str:
    text = text.lower().replace("heat wave", "heatwave").replace("heat-wave", "heatwave")
    return re.sub(r"\s+", " ", text)


def query_terms(query: str) -> list[frozenset[str]]:
    """The query as terms, each the set of words any of which satisfies it (multi-word synonyms such
    as "sea surface temperature" are kept together)."""
    text = _normalise(query).strip()
    terms: list[frozenset[str]] = []
    for phrase in _PHRASES:
        if phrase in text:
            terms.append(_expand(phrase))
            text = text.replace(phrase, " ")
    terms.extend(_expand(word) for word in text.split())
    return terms


def _expand(word: str) -> frozenset[str]:
    found = {word}
    for group in SYNONYMS:
        if word in group:
            found |= group
    return frozenset(found)


def matches(query: str, text: str) -> bool:
    """Whether ``text`` (a block's id, title and description) answers ``query``."""
    haystack = _normalise(text)
    return all(any(word in haystack for word in term) for term in query_terms(query))
