"""Read a scene's metadata from its file(s): CRS, footprint, data area, grid, dtype, nodata and band names."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import rasterio
from rasterio.enums import ColorInterp
from rasterio.errors import RasterioError, RasterioIOError

from models.errors import InvalidRequest
from ray_render.data_area import data_area
from ray_render.geometry import bounds_polygon, to_geojson
from ray_render.remote import ON_REMOTE_OPEN, gdal_options, gdal_path, is_remote

_COLOR_NAMES = {ColorInterp.red: "red", ColorInterp.green: "green", ColorInterp.blue: "blue", ColorInterp.alpha: "alpha"}


@dataclass
class SceneInfo:
    """Everything the catalogue records about a scene."""

    crs_wkt: str
    epsg: int | None
    bounds: list[float]
    footprint: dict
    width: int
    height: int
    res_x: float
    res_y: float
    dtype: str
    nodata: float | None
    bands: list[dict]
    acquired_at: datetime | None = None
    # Where the scene holds valid pixels, in its own CRS (ray_render.data_area); None if nowhere.
    data_area: dict | None = None


@contextmanager
def _open(uri: str):
    """Open a scene for inspection; remote ones with the COG network settings (credentials from the environment)."""
    settings = {**gdal_options(), **ON_REMOTE_OPEN} if is_remote(uri) else {}
    with rasterio.Env(**settings):
        try:
            src = rasterio.open(gdal_path(uri))
        except RasterioIOError as exc:
            raise InvalidRequest("path", f"cannot read {uri} as a raster: {exc}") from None
        with src:
            yield src


def file_band_names(src) -> list[str | None]:
    """Band names from the file: descriptions first, then colour interpretation; None when unknown."""
    names = []
    for i in range(src.count):
        description = (src.descriptions[i] or "").strip().lower()
        names.append(description or _COLOR_NAMES.get(src.colorinterp[i]))
    return names


def inspect_scene(band_files: list[tuple[str, str]] | None = None, path: str | None = None,
                  band_names: list[str] | None = None, nodata: float | None = None) -> SceneInfo:
    """Inspect either one multi-band file (`path`, optional `band_names`) or single-band files
    (`band_files` as (name, uri) pairs) of one acquisition, which must share one grid."""
    if path is not None:
        path = str(Path(path).resolve()) if "://" not in path else path
        with _open(path) as src:
            names = band_names or file_band_names(src)
            if len(names) != src.count:
                raise InvalidRequest("bands", f"{len(names)} band names given for {src.count} bands in {path}")
            if any(n is None for n in names):
                raise InvalidRequest("bands", f"{path} does not name its bands; pass --bands, e.g. red,green,blue,nir")
            bands = [{"name": n, "uri": path, "index": i + 1, **_scaling(src, i + 1)} for i, n in enumerate(names)]
            return _info(src, bands, nodata)
    if not band_files:
        raise InvalidRequest("bands", "give a file, or one --band NAME=FILE per band")
    bands, reference = [], None
    for name, uri in band_files:
        uri = str(Path(uri).resolve()) if "://" not in uri else uri
        with _open(uri) as src:
            grid = (src.crs, src.transform, src.width, src.height)
            scaling = _scaling(src, 1)
            if reference is None:
                reference, info_src = grid, uri
            elif grid != reference:
                raise InvalidRequest("band", f"{uri} is not on the same grid as {info_src}")
        bands.append({"name": name, "uri": uri, "index": 1, **scaling})
    with _open(info_src) as src:
        return _info(src, bands, nodata)


def _scaling(src, index: int) -> dict[str, float]:
    """The band's scale and offset from the file's metadata, when it has any other than 1 and 0."""
    scale, offset = src.scales[index - 1], src.offsets[index - 1]
    return {"scale": scale, "offset": offset} if (scale, offset) != (1.0, 0.0) else {}


def with_scaling(info: SceneInfo, scale: float | None, offset: float | None) -> SceneInfo:
    """`info` with `scale`/`offset` set on the bands whose file gave none (from `scenes add --scale/--offset`)."""
    if scale is None and offset is None:
        return info
    bands = [b if "scale" in b else {**b, "scale": 1.0 if scale is None else scale, "offset": offset or 0.0}
             for b in info.bands]
    return SceneInfo(**{**info.__dict__, "bands": bands})


def _info(src, bands: list[dict], nodata: float | None) -> SceneInfo:
    if src.crs is None:
        raise InvalidRequest("path", f"{src.name} has no CRS")
    names = [b["name"] for b in bands]
    if len(set(names)) != len(names):
        raise InvalidRequest("bands", f"band names must be unique, got {', '.join(names)}")
    bounds = list(src.bounds)
    footprint = to_geojson(bounds_polygon(bounds, src.crs.to_wkt(), "EPSG:4326"))
    nodata = nodata if nodata is not None else src.nodata
    return SceneInfo(
        crs_wkt=src.crs.to_wkt(), epsg=src.crs.to_epsg(), bounds=bounds, footprint=footprint,
        width=src.width, height=src.height, res_x=abs(src.res[0]), res_y=abs(src.res[1]),
        dtype=src.dtypes[0], nodata=nodata, bands=bands, acquired_at=acquisition_time(src.tags()),
        data_area=scene_data_area([b["uri"] for b in bands], nodata),
    )


def scene_data_area(uris: list[str], nodata: float | None) -> dict | None:
    """The data area of a scene whose bands are in the files `uris` (`ray_render.data_area`), remote files opened
    as for inspection. Reads every pixel once: a file whose pixels cannot all be read is refused."""
    try:
        return data_area(list(dict.fromkeys(uris)), nodata, open_file=_open)
    except RasterioError as exc:
        raise InvalidRequest("path", f"cannot read every pixel of {', '.join(dict.fromkeys(uris))} to trace where it "
                                     f"holds data: {exc}") from None


def acquisition_time(tags: dict[str, str]) -> datetime | None:
    """When the scene was acquired, from the file's TIFFTAG_DATETIME ("YYYY:MM:DD HH:MM:SS", read as UTC)."""
    value = tags.get("TIFFTAG_DATETIME")
    try:
        return datetime.strptime(value, "%Y:%m:%d %H:%M:%S").replace(tzinfo=UTC) if value else None
    except ValueError:
        return None
