"""The STAC of a render, built with pystac and validated against the STAC and extension schemas: its extent,
projection (`proj:code`), checksum, band statistics and the inputs' acquisition times."""

from datetime import UTC, datetime

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from pystac.errors import STACValidationError
from shapely.geometry import box

from ray_render.grid import plan_grid
from ray_render.stac import stac_collection, stac_item
from ray_render.stats import band_statistics
from tests.support.stac import validate_stac

GRID = plan_grid("EPSG:32633", (500000, 5000000, 510000, 5010000), 10)
AREA = box(501000, 5001000, 509000, 5009000)
CREATED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
STATS = [{"minimum": 1.0, "maximum": 900.0, "mean": 300.5, "stddev": 20.0, "valid_percent": 64.0},
         {"minimum": 3.0, "maximum": 800.0, "mean": 200.0, "stddev": 10.0, "valid_percent": 64.0}]


def item(acquired, grid=GRID, statistics=None, thumbnail_href=None):
    return stac_item(item_id="export-7", grid=grid, footprint=AREA, asset_href="./export-7.tif", size=1234,
                     sha256="ab" * 32, bands=["red", "nir"], dtype="uint16", nodata=0, acquired=acquired, created=CREATED,
                     statistics=statistics, thumbnail_href=thumbnail_href)


def test_the_item_describes_the_cog_and_its_grid_and_is_valid_stac():
    stac = item([datetime(2024, 6, 1, 10, 30, tzinfo=UTC)], statistics=STATS, thumbnail_href="./export-7.png")
    checked = validate_stac(stac)
    assert stac["assets"]["thumbnail"] == {"href": "./export-7.png", "type": "image/png", "title": "quicklook",
                                           "roles": ["thumbnail"]}
    assert {"projection", "file", "raster"} <= {uri.split("/")[3] for uri in checked if "stac-extensions" in uri}
    assert (stac["type"], stac["stac_version"], stac["id"]) == ("Feature", "1.1.0", "export-7")
    props = stac["properties"]
    assert props["datetime"] == "2024-06-01T10:30:00Z" and props["created"] == "2026-11-25T12:00:00Z"
    assert props["proj:code"] == "EPSG:32633" and props["proj:shape"] == [1000, 1000]
    assert props["proj:transform"] == [10.0, 0.0, 500000.0, 0.0, -10.0, 5010000.0]
    assert props["proj:bbox"] == [500000.0, 5000000.0, 510000.0, 5010000.0]
    west, south, east, north = stac["bbox"]
    assert 14.9 < west < east < 15.2 and 45.1 < south < north < 45.3  # the footprint, in lon/lat
    asset = stac["assets"]["data"]
    assert asset["type"] == "image/tiff; application=geotiff; profile=cloud-optimized"
    assert asset["file:checksum"] == "1220" + "ab" * 32 and asset["file:size"] == 1234
    bands = asset["raster:bands"]
    assert [b["name"] for b in bands] == ["red", "nir"] and bands[0]["nodata"] == 0 and bands[0]["data_type"] == "uint16"
    assert [b["statistics"] for b in bands] == STATS


def test_a_grid_no_authority_names_is_described_by_its_wkt():
    local = "+proj=tmerc +lat_0=0 +lon_0=15.3 +k=0.9996 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m +no_defs"
    stac = item([], grid=plan_grid(local, (500000, 5000000, 510000, 5010000), 10))
    validate_stac(stac)
    assert stac["properties"]["proj:code"] is None and "TRANSVERSE" in stac["properties"]["proj:wkt2"].upper()


def test_the_validator_refuses_what_the_schemas_refuse():
    stac = item([])
    stac["properties"]["proj:code"] = 32633  # a number where the schema wants "EPSG:32633"
    with pytest.raises(STACValidationError):
        validate_stac(stac)


def test_inputs_from_several_dates_give_a_time_range():
    props = item([datetime(2024, 6, 3, tzinfo=UTC), datetime(2024, 5, 30, tzinfo=UTC)])["properties"]
    assert props["datetime"] is None
    assert (props["start_datetime"], props["end_datetime"]) == ("2024-05-30T00:00:00Z", "2024-06-03T00:00:00Z")


def test_without_acquisition_times_the_item_is_dated_by_its_creation():
    assert item([])["properties"]["datetime"] == "2026-11-25T12:00:00Z"


def test_a_sharded_export_has_a_valid_collection_spanning_its_items():
    items = [item([datetime(2024, 5, 30, tzinfo=UTC)]), item([datetime(2024, 6, 3, tzinfo=UTC)])]
    collection = stac_collection(collection_id="export-7", description="two shards", items=items,
                                 item_hrefs=["./a.stac.json", "./b.stac.json"], vrt_href="./export-7.vrt")
    validate_stac(collection)
    assert collection["extent"]["temporal"]["interval"] == [["2024-05-30T00:00:00Z", "2024-06-03T00:00:00Z"]]
    assert [link["href"] for link in collection["links"] if link["rel"] == "item"] == ["./a.stac.json", "./b.stac.json"]
    assert collection["assets"]["mosaic"]["href"] == "./export-7.vrt"


def _cog(tmp_path, data, nodata, size):
    source = tmp_path / "source.tif"
    with rasterio.open(source, "w", driver="GTiff", width=size, height=size, count=data.shape[0], dtype=data.dtype.name,
                       crs="EPSG:32633", transform=rasterio.transform.from_origin(500000, 5010000, 10, 10),
                       nodata=nodata) as dst:
        dst.write(data)
    cog = tmp_path / "cog.tif"
    rasterio.shutil.copy(source, cog, driver="COG", compress="DEFLATE", overviews="AUTO", resampling="nearest")
    return cog


def test_statistics_of_a_small_cog_are_exact_over_its_valid_pixels(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.integers(1, 1000, (2, 600, 600)).astype(np.uint16)
    data[:, :150] = 0  # a quarter of nodata
    data[1, 300:] = 0  # and the second band's lower half too
    stats = band_statistics(str(_cog(tmp_path, data, 0, 600)))
    for band, found in zip(data, stats, strict=True):
        valid = band[band != 0].astype(np.float64)
        assert found["minimum"] == valid.min() and found["maximum"] == valid.max()
        assert found["mean"] == pytest.approx(valid.mean()) and found["stddev"] == pytest.approx(valid.std())
        assert found["valid_percent"] == pytest.approx(100 * valid.size / band.size, abs=1e-4)


def test_statistics_of_a_large_cog_come_from_its_overview_and_all_nodata_has_none(tmp_path):
    rows, cols = np.mgrid[0:4096, 0:4096]
    data = np.stack([(rows + cols) // 32, np.zeros_like(rows)]).astype(np.uint16)  # a smooth ramp; nothing valid
    ramp = data[0][data[0] != 0].astype(np.float64)
    # Spikes on a lattice that the 4x overview (nearest: source pixels 4i+2) never samples.
    data[0, 1::4, 1::4] = 5000
    stats = band_statistics(str(_cog(tmp_path, data, 0, 4096)))
    assert stats[0]["minimum"] <= 1 and 250 <= stats[0]["maximum"] < 5000  # read from the 1024 px overview
    assert stats[0]["mean"] == pytest.approx(ramp.mean(), rel=0.01) and stats[0]["valid_percent"] > 99.9
    assert stats[1] == {"valid_percent": 0.0}
