"""The STAC item of a render: its extent, projection, checksum and the inputs' acquisition times."""

from datetime import UTC, datetime

from shapely.geometry import box

from ray_render.grid import plan_grid
from ray_render.stac import stac_item

GRID = plan_grid("EPSG:32633", (500000, 5000000, 510000, 5010000), 10)
AREA = box(501000, 5001000, 509000, 5009000)
CREATED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def item(acquired):
    return stac_item(item_id="export-7", grid=GRID, footprint=AREA, asset_href="./export-7.tif", size=1234,
                     sha256="ab" * 32, bands=["red", "nir"], dtype="uint16", nodata=0, acquired=acquired, created=CREATED)


def test_the_item_describes_the_cog_and_its_grid():
    stac = item([datetime(2024, 6, 1, 10, 30, tzinfo=UTC)])
    assert (stac["type"], stac["stac_version"], stac["id"]) == ("Feature", "1.0.0", "export-7")
    props = stac["properties"]
    assert props["datetime"] == "2024-06-01T10:30:00Z" and props["created"] == "2026-11-25T12:00:00Z"
    assert props["proj:epsg"] == 32633 and props["proj:shape"] == [1000, 1000]
    assert props["proj:transform"] == [10.0, 0.0, 500000.0, 0.0, -10.0, 5010000.0]
    assert props["proj:bbox"] == [500000.0, 5000000.0, 510000.0, 5010000.0]
    west, south, east, north = stac["bbox"]
    assert 14.9 < west < east < 15.2 and 45.1 < south < north < 45.3  # the footprint, in lon/lat
    asset = stac["assets"]["data"]
    assert asset["file:checksum"] == "1220" + "ab" * 32 and asset["file:size"] == 1234
    assert [b["name"] for b in asset["raster:bands"]] == ["red", "nir"] and asset["raster:bands"][0]["nodata"] == 0


def test_inputs_from_several_dates_give_a_time_range():
    props = item([datetime(2024, 6, 3, tzinfo=UTC), datetime(2024, 5, 30, tzinfo=UTC)])["properties"]
    assert props["datetime"] is None
    assert (props["start_datetime"], props["end_datetime"]) == ("2024-05-30T00:00:00Z", "2024-06-03T00:00:00Z")


def test_without_acquisition_times_the_item_is_dated_by_its_creation():
    assert item([])["properties"]["datetime"] == "2026-11-25T12:00:00Z"
