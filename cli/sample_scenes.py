"""What the demo's sample scenes are: where each is taken, its grid and haze, and the demo's AOI. No pixels here
(`cli.samples` makes them), so that commands which only describe the demo start without numpy or rasterio."""

from __future__ import annotations

from dataclasses import dataclass

BANDS = ("red", "green", "blue", "nir")


@dataclass(frozen=True)
class SampleScene:
    """Where and how one sample scene is taken."""

    name: str
    epsg: int
    center_lon: float
    center_lat: float
    size_px: int = 800
    resolution: float = 30.0
    haze: tuple[int, int, int, int] = (0, 0, 0, 0)
    swath_tilt_deg: float = 9.0
    acquired: str = "2024-07-01T10:15:00Z"


DEMO_SCENES = (
    SampleScene("alpine-foreland-west", 32632, 11.90, 46.00, haze=(60, 80, 130, 20), acquired="2024-07-02T10:12:00Z"),
    SampleScene("alpine-foreland-east", 32633, 12.10, 46.04, haze=(20, 30, 60, 10), swath_tilt_deg=11.0,
                acquired="2024-07-09T10:05:00Z"),
)

# An irregular polygon (lon, lat) across both scenes and their overlap.
DEMO_AOI = {
    "type": "Polygon",
    "coordinates": [[
        [11.82, 45.95], [11.98, 45.92], [12.16, 45.96], [12.22, 46.05],
        [12.12, 46.12], [11.95, 46.10], [11.86, 46.05], [11.82, 45.95],
    ]],
}
