"""Data source blocks that need no external data."""

from __future__ import annotations

from typing import Any

import xarray as xr

from blocks.context import StepContext
from blocks.library import demo_data
from blocks.library.geo import parse_day
from blocks.library.schemas import number
from blocks.spec import Port, block

MAX_VALUES_PER_VARIABLE = 5_000_000
"""Larger grids would not fit a worker's memory: four variables plus float64 intermediates."""


PARAMETERS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "start": {"type": "string", "format": "date", "title": "First day",
                  "description": "First day of the series (YYYY-MM-DD).", "default": "2021-01-01"},
        "days": {"type": "integer", "title": "Number of days", "minimum": 1, "maximum": 3660,
                 "description": "How many daily time steps to generate.", "default": 1096},
        "lat_min": number("Southern edge", "Southern edge of the area, degrees north.", 40.0, -90, 90),
        "lat_max": number("Northern edge", "Northern edge of the area, degrees north.", 46.0, -90, 90),
        "lon_min": number("Western edge", "Western edge of the area, degrees east.", -6.0, -180, 180),
        "lon_max": number("Eastern edge", "Eastern edge of the area, degrees east.", 4.0, -180, 180),
        "resolution": number("Grid spacing", "Distance between grid points, degrees.", 0.25, 0.05, 2),
    },
}


def _check_grid(params: dict[str, Any]) -> None:
    for axis in ("lat", "lon"):
        lower, upper = params[f"{axis}_min"], params[f"{axis}_max"]
        if not lower < upper:
            raise ValueError(f"{axis}_min ({lower}) must be less than {axis}_max ({upper})")
    resolution = params["resolution"]
    points = ((params["lat_max"] - params["lat_min"]) // resolution + 1) * (
        (params["lon_max"] - params["lon_min"]) // resolution + 1
    )
    if points * params["days"] > MAX_VALUES_PER_VARIABLE:
        raise ValueError(
            f"days={params['days']} on a {resolution} degree grid over this area is "
            f"{int(points * params['days']):,} values per variable, more than {MAX_VALUES_PER_VARIABLE:,}: "
            "ask for fewer days, a smaller area or a coarser resolution"
        )


@block(
    id="ocean.demo_dataset",
    version="1.0.0",
    title="Demo ocean dataset",
    category="data",
    outputs=(Port("dataset", "dataset", "Ocean dataset",
                  "Daily sea surface temperature, salinity and currents on a regular grid."),),
    parameters=PARAMETERS,
)
def demo_dataset(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, xr.Dataset]:
    """Generate a realistic **synthetic** ocean dataset, to try pipelines without real data.

    **What comes out:** one gridded dataset with daily values of

    - `sst`: sea surface temperature (°C),
    - `so`: sea surface salinity (1e-3, i.e. practical salinity),
    - `uo`, `vo`: eastward and northward surface currents (m/s).

    **What goes in:** nothing but the settings: the first day, the number of days, the area (a box
    in degrees) and the grid spacing. The default is three years, 2021-2023, over the Bay of Biscay
    and the north-west Mediterranean (40-46 °N, 6 °W-4 °E) every 0.25°.

    **How it is made:** temperature follows a seasonal cycle (about 13 °C in March to 22 °C in
    August, cooler to the north); eddies tens of kilometres wide drift slowly westwards, carrying warm
    or cold, salty or fresh water, and the currents circle around them as real (geostrophic) currents
    do. A little random noise is added. Land (a simplified coastline of Spain and France) is left
    empty. The same settings always give exactly the same data.

    **Planted event:** a marine heatwave, about +3 °C, from 18 July to 7 August 2022 over
    44-45.5 °N, 5-2.5 °W (southern Bay of Biscay): useful to check that an analysis finds it.
    """
    params = {**params, "start": f"{parse_day('start', params['start']):%Y-%m-%d}"}
    _check_grid(params)
    ctx.progress(0.0, "generating the demo dataset")
    dataset = demo_data.make_demo_dataset(**params)
    ctx.progress(1.0, f"generated {dataset.sizes['time']} days on a {dataset.sizes['lat']}x"
                      f"{dataset.sizes['lon']} grid")
    return {"dataset": dataset}
