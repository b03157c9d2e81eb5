"""Real imagery: the four Landsat 7 quadrants as one project, exported to EPSG:3857 through Prefect and
Ray, match the single RGB.byte.tif warped onto the same grid by rasterio, with the approximate transformer
(the default) and with the exact one."""

from dataclasses import asdict

import numpy as np
import pytest
import rasterio
from rasterio.vrt import WarpedVRT

from flows.export_flow import export_flow
from flows.services.status import claim_export
from flows.services.submission import create_export
from models.catalogue import add_scene, create_project
from models.schemas import ExportRequest
from models.settings import get_settings
from models.status import ExportStatus
from models.tables import Export
from ray_render.grid import OutputGrid
from ray_render.inspect import inspect_scene
from ray_render.reader import BLOCKWISE_WARP, WARP_BLOCK
from tests.conftest import require_imagery

pytestmark = pytest.mark.usefixtures("ray_cluster", "prefect_server")


@pytest.mark.parametrize("threshold", [0.125, 0.0])
def test_landsat_quadrants_mosaic_equals_the_whole_scene_warped_by_rasterio(session, owner, monkeypatch, threshold):
    monkeypatch.setenv("GEOSHIP_WARP_ERROR_THRESHOLD", str(threshold))
    get_settings.cache_clear()
    *quadrants, whole = require_imagery(*(f"landsat7_rgb_utm18n/rgb{i}.tif" for i in range(1, 5)),
                                        "landsat7_rgb_utm18n/RGB.byte.tif")
    project = create_project(session, owner=owner, name="bahamas")
    for path in quadrants:
        info = inspect_scene(path=str(path), band_names=["red", "green", "blue"])
        assert info.epsg is None  # the quadrants' WKT has no EPSG code: a real edge case
        add_scene(session, owner=owner, project=project, name=path.stem, info=asdict(info))
    export = create_export(session, owner=owner, request=ExportRequest(project="bahamas", srid=3857))
    session.commit()
    assert claim_export(export.id)
    export_flow(export.id)

    session.expire_all()
    export = session.get(Export, export.id)
    assert export.status == ExportStatus.success, export.error
    grid = OutputGrid.from_dict(export.grid)
    warp = dict(crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height, src_nodata=0, nodata=0,
                tolerance=threshold or 1e-9, blockxsize=WARP_BLOCK, blockysize=WARP_BLOCK)
    with rasterio.Env(**BLOCKWISE_WARP), rasterio.open(whole) as src, WarpedVRT(src, **warp) as vrt:
        expected = vrt.read()
    with rasterio.open(export.artifact) as out:
        assert (out.width, out.height) == (grid.width, grid.height)
        actual = out.read()
    assert (expected > 0).mean() > 0.5
    assert np.array_equal(actual, expected), f"{(actual != expected).any(axis=0).sum()} pixels differ"
