"""CF metadata shared by the blocks: the units registry, temperature differences and table columns.

* Units are read with pint and the CF/UDUNITS definitions of cf-xarray, never from hand-written tables.
  In UDUNITS ``C`` is the coulomb (degrees Celsius are ``degC``, ``degree_Celsius``...), and so it is
  here, although cf-xarray's registry reads it as Celsius.
* A temperature is either a point on a scale (20 °C) or a difference between two temperatures (an
  anomaly of 0.5 °C, a trend of 0.2 °C per decade). CF 1.11 says which with the variable attribute
  ``units_metadata`` (``temperature: on_scale`` or ``temperature: difference``); only the first is
  converted with the scale offset (20 °C = 293.15 K, but 0.5 °C of difference = 0.5 K). Blocks set it on
  every temperature they produce.
* Tables carry CF attributes per column in ``DataFrame.attrs["columns"]``, a mapping of column name to
  ``{"units", "standard_name", "long_name", "units_metadata"}`` (each optional). The table port type
  saves them next to the CSV as W3C CSVW metadata (see :mod:`blocks.types`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

import pandas as pd
import pint

from blocks.types import CF_COLUMN_KEYS

CF_ATTRIBUTES = CF_COLUMN_KEYS
"""Variable attributes copied to table columns."""
ON_SCALE = "temperature: on_scale"
DIFFERENCE = "temperature: difference"
UNKNOWN = "temperature: unknown"

UNIT_SPELLINGS = {
    "degrees_C": "degree_Celsius", "degree_C": "degree_Celsius", "degrees_c": "degree_Celsius",
    "degree_c": "degree_Celsius", "degrees_K": "kelvin", "degree_K": "kelvin",
}
"""Spellings found in real products (e.g. 'degrees_C' in Copernicus Marine) that the CF registry lacks."""
TEMPERATURE_SYMBOLS = {"degree_Celsius": "°C", "degree_Fahrenheit": "°F", "kelvin": "K"}
COULOMB = re.compile(r"(?<![A-Za-z_])C(?![A-Za-z_])")
"""A stand-alone 'C' in a unit string: the coulomb in UDUNITS."""


@cache
def units_registry() -> pint.UnitRegistry:
    """The pint registry with the CF/UDUNITS unit definitions of cf-xarray, set up for pint-xarray."""
    import cf_xarray.units
    import pint_xarray

    pint_xarray.setup_registry(cf_xarray.units.units)
    return cf_xarray.units.units


def parse_units(text: str, what: str) -> pint.Quantity:
    """``text`` (CF/UDUNITS) as a quantity: scale factor times unit, e.g. 1e-3 for per mille.

    Raises ValueError starting with ``what`` when the unit is unknown or unusable.
    """
    registry = units_registry()
    text = str(text).strip()
    spelled = COULOMB.sub("coulomb", UNIT_SPELLINGS.get(text, text))
    try:
        quantity = registry.parse_expression(spelled)
    except pint.errors.UndefinedUnitError as error:
        unknown = ", ".join(repr(name) for name in error.unit_names) if error.unit_names else repr(text)
        raise ValueError(f"{what}: unknown unit {unknown} in {text!r}") from None
    except Exception as error:  # pint raises several kinds for unreadable text
        raise ValueError(f"{what}: cannot read the unit {text!r} ({type(error).__name__})") from None
    if not isinstance(quantity, registry.Quantity):
        quantity = registry.Quantity(quantity)
    if not pd.notna(quantity.magnitude) or quantity.magnitude in (0, float("inf"), float("-inf")):
        raise ValueError(f"{what}: {text!r} is not a usable unit")
    return quantity


def coulomb_hint(text: str) -> str:
    """A hint for messages when ``text`` uses 'C', which UDUNITS reads as the coulomb."""
    if COULOMB.search(str(text)):
        return " (in CF/UDUNITS 'C' is the coulomb; degrees Celsius are written degC or degree_Celsius)"
    return ""


def is_temperature(quantity: pint.Quantity) -> bool:
    return dict(quantity.dimensionality) == {"[temperature]": 1}


def linear_conversion(source: pint.Quantity, target: pint.Quantity) -> tuple[float, float]:
    """(factor, offset) such that a value in ``source`` is ``value * factor + offset`` in ``target``.

    Raises ValueError when the two units measure different things.
    """
    registry = units_registry()
    if source.dimensionality != target.dimensionality:
        raise ValueError(f"{source.units} ({source.dimensionality}) cannot be converted to {target.units} "
                         f"({target.dimensionality})")
    zero = registry.Quantity(0.0, source.units).to(target.units).magnitude
    one = registry.Quantity(1.0, source.units).to(target.units).magnitude
    scale = float(source.magnitude) / float(target.magnitude)
    return (one - zero) * scale, zero / float(target.magnitude)


def temperature_kind(attrs: Mapping[str, Any]) -> str | None:
    """The CF 1.11 ``units_metadata`` of a temperature (on_scale, difference, unknown), or None if unset."""
    value = str(attrs.get("units_metadata", "")).strip().lower()
    for kind in (ON_SCALE, DIFFERENCE, UNKNOWN):
        if value.replace(" ", "") == kind.replace(" ", ""):
            return kind
    return None


def speed_factor(attrs: Mapping[str, Any], name: str, what: str) -> float:
    """Factor converting a velocity with attributes ``attrs`` to m s-1.

    Raises ValueError naming ``what`` and the variable when there are no units or they are not a speed.
    """
    units = str(attrs.get("units", "")).strip()
    if not units:
        raise ValueError(f"{what}: {name!r} has no units attribute; give it one (e.g. 'm s-1' or 'cm s-1') "
                         "so its values are not guessed")
    source = parse_units(units, f"{what}: the units of {name!r}")
    target = parse_units("m s-1", "m s-1")
    if source.dimensionality != target.dimensionality:
        raise ValueError(f"{what}: {name!r} has units {units!r}, which is not a speed{coulomb_hint(units)}; "
                         "expected e.g. m s-1, cm s-1 or knot")
    factor, _ = linear_conversion(source, target)
    return factor


# ---- table columns -------------------------------------------------------------------------------

def column_metadata(attrs: Mapping[str, Any]) -> dict[str, str]:
    """The CF attributes (units, standard_name, long_name, units_metadata) of a variable, as strings."""
    return {key: str(attrs[key]) for key in CF_ATTRIBUTES if key in attrs and str(attrs[key]).strip()}


def table_columns(table: pd.DataFrame) -> dict[str, dict[str, str]]:
    """The column metadata of ``table`` (``attrs["columns"]``), for columns it still has."""
    known = table.attrs.get("columns") or {}
    return {str(name): dict(known[name]) for name in table.columns if name in known}


def column_attrs(table: pd.DataFrame, name: str) -> dict[str, str]:
    """The CF attributes recorded for one column of ``table`` (empty when none)."""
    return dict((table.attrs.get("columns") or {}).get(name, {}))


def with_columns(table: pd.DataFrame, columns: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """``table`` with CF attributes for some of its columns recorded (merged with any already there)."""
    known = {name: dict(value) for name, value in (table.attrs.get("columns") or {}).items()}
    for name, attrs in columns.items():
        cleaned = column_metadata(attrs)
        if cleaned and name in table.columns:
            known[str(name)] = {**known.get(str(name), {}), **cleaned}
    table.attrs["columns"] = known
    return table


def difference_attrs(attrs: Mapping[str, Any], what: str, units: str | None = None) -> dict[str, str]:
    """Attributes of a difference derived from a variable with ``attrs`` (an anomaly, an intensity...).

    The standard name of the variable does not apply to its differences and is dropped; a temperature
    gets ``units_metadata: temperature: difference``. ``what`` is the long name; ``units`` replaces the
    variable's units (e.g. per year).
    """
    source_units = str(attrs.get("units", "")).strip()
    result = {"long_name": what}
    if units or source_units:
        result["units"] = units or source_units
    if source_units and _is_temperature_text(source_units):
        result["units_metadata"] = DIFFERENCE
    return result


def on_scale_attrs(attrs: Mapping[str, Any], what: str | None = None) -> dict[str, str]:
    """Attributes of values of the same kind as a variable with ``attrs`` (a climatology, a threshold):
    its units and standard name, and ``temperature: on_scale`` for a temperature."""
    result = column_metadata(attrs)
    if what:
        result["long_name"] = what
    if _is_temperature_text(result.get("units", "")) and temperature_kind(attrs) is None:
        result["units_metadata"] = ON_SCALE
    return result


def _is_temperature_text(units: str) -> bool:
    try:
        return bool(units) and is_temperature(parse_units(units, "units"))
    except ValueError:
        return False


def pretty_units(units: str) -> str:
    """Temperature units as shown to people (degree_Celsius, degC → °C; degF → °F; kelvin → K); other
    units unchanged."""
    text = str(units or "").strip()
    if not text:
        return ""
    try:
        quantity = parse_units(text, "units")
    except ValueError:
        return text
    if quantity.magnitude == 1:
        return TEMPERATURE_SYMBOLS.get(str(quantity.units), text)
    return text
