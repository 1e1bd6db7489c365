"""util/io/provenance.py: every enhanced file says it is a model's output, where its format has room for text."""

import hashlib
import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import rasterio
import tiny_models
from affine import Affine
from PIL import Image, ImageCms
from rasterio.crs import CRS

import enhance
import util
from util.io import provenance as provenance_module
from util.io.images import load_image_rgb, read_photo, write_png
from util.io.provenance import model_provenance
from util.io.rasters import read_raster, write_raster

UTM = CRS.from_epsg(32613)
UTM_CELLS = Affine(10.0, 0.0, 480000.0, 0.0, -10.0, 4430000.0)
FIELDS = {"model", "model_sha256", "task", "scale", "architecture", "suite_version", "created", "input"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny photo model (x4) and a bicubic raster model (x2, metres), saved as the suite saves them."""
    import keras

    from util.models.layers import raster_model, suite_input

    folder = tmp_path_factory.mktemp("models")
    inputs, upsampled = suite_input("sr2", "upsampled", 1, "bicubic", channels=1)
    dem = raster_model(keras.Model(inputs, upsampled), value_scale=100.0)
    return {
        "sr4": tiny_models.save(tiny_models.upsampled_model(), folder, "sr4.keras"),
        "dem": tiny_models.save(dem, folder, "dem_x2.keras"),
    }


def photo(height=24, width=32) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(128 + np.cumsum(rng.normal(0, 12, (height, width, 3)), axis=1), 0, 255).astype(np.uint8)


def heights(height=12, width=16) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    return (2000 + 40 * np.sin(cols / 6) + 25 * np.cos(rows / 5)).astype(np.float32)


def run(*argv):
    enhance.main([str(a) for a in argv] + ["--quiet"])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def assert_record(record: dict, model: Path, task: str, scale: int, architecture: str, source: str) -> None:
    """The fields of a written record: this model file, its card, this suite's version, made just now."""
    assert set(record) == FIELDS
    assert (record["model"], record["model_sha256"]) == (model.name, sha256(model))
    assert (record["task"], int(record["scale"]), record["architecture"]) == (task, scale, architecture)
    assert record["suite_version"].startswith(util.__version__) and record["input"] == source
    created = datetime.strptime(record["created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert timedelta(0) <= datetime.now(UTC) - created < timedelta(minutes=10)


# ---- 1. Photos: PNG text chunks ----------------------------------------------------------------------


def test_an_enhanced_photo_says_which_model_made_it_and_keeps_its_icc_profile(tmp_path, models):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(photo()).save(tmp_path / "photo.jpg", quality=95, icc_profile=icc)
    run(tmp_path / "photo.jpg", "--model", models["sr4"])
    out = tmp_path / "photo_x4.png"
    with Image.open(out) as img:
        text, kept_icc = dict(img.text), img.info.get("icc_profile")
    assert kept_icc == icc
    assert_record(json.loads(text["provenance"]), models["sr4"], "sr4", 4, "tiny", "photo.jpg")
    assert text["Software"].startswith(f"Image enhancement from little data {util.__version__}")
    assert text["Description"].startswith("A model's output, not a measurement: photo.jpg enhanced by sr4.keras")
    assert text["Creation Time"].endswith("Z")
    assert load_image_rgb(out).shape == (96, 128, 3) and read_photo(out).pixels.shape == (96, 128, 3)


def test_a_16_bit_photo_with_a_name_beyond_latin_1_carries_it_in_itxt(tmp_path, models):
    deep = (photo().astype(np.uint16) * 257)[..., 0]
    write_png(tmp_path / "地形.png", deep)
    run(tmp_path / "地形.png", "--model", models["sr4"])
    out = tmp_path / "地形_x4.png"
    with Image.open(out) as img:
        text = dict(img.text)
    assert_record(json.loads(text["provenance"]), models["sr4"], "sr4", 4, "tiny", "地形.png")
    assert "地形.png enhanced" in text["Description"]  # not Latin-1: an iTXt chunk, UTF-8
    assert b"iTXt" in out.read_bytes() and read_photo(out).pixels.dtype == np.uint16


def test_write_png_writes_text_only_when_given_a_provenance(tmp_path, models):
    record = model_provenance(models["sr4"], {"task": "sr4", "scale": 4, "architecture": "tiny"})
    for pixels in (photo(), photo().astype(np.uint16) * 257):
        write_png(tmp_path / "plain.png", pixels)
        write_png(tmp_path / "made.png", pixels, provenance=record.for_input("in.png"))
        with Image.open(tmp_path / "plain.png") as plain, Image.open(tmp_path / "made.png") as made:
            assert plain.text == {} and json.loads(made.text["provenance"])["input"] == "in.png"


# ---- 2. Rasters: GeoTIFF tags, NetCDF attributes, an .npz entry; nothing in .asc and .npy ------------


def raster_inputs(folder: Path) -> Path:
    """The same heights as a GeoTIFF, an ASCII grid, a .npy, an .npz and a NetCDF file in ``folder``."""
    folder.mkdir()
    profile = dict(driver="GTiff", height=12, width=16, count=1, dtype="float32", crs=UTM, transform=UTM_CELLS)
    with rasterio.open(folder / "dem.tif", "w", **profile) as dst:
        dst.write(heights(), 1)
    like = read_raster(folder / "dem.tif")
    write_raster(folder / "dem.asc", like.values, like)
    write_raster(folder / "dem.nc", like.values, like)
    np.save(folder / "dem.npy", like.values)
    np.savez(folder / "dem.npz", elevation=like.values, xmin=-105.5, xmax=-105.4, ymin=40.2, ymax=40.1)
    return folder


def test_every_raster_format_says_it_is_a_models_output_where_it_has_room(tmp_path, models):
    run(raster_inputs(tmp_path / "dems"), "--model", models["dem"])
    out = tmp_path / "dems_x2"
    assert sorted(p.name for p in out.iterdir()) == [
        f"dem_x2{s}" for s in (".asc", ".nc", ".npy", ".npz", ".prj", ".tif")
    ]
    expected = (models["dem"], "sr2", 2, "bicubic")
    with rasterio.open(out / "dem_x2.tif") as src:
        tags, fields = src.tags(), src.tags(ns="PROVENANCE")
    assert_record(fields, *expected, "dem.tif")
    assert tags["TIFFTAG_SOFTWARE"].startswith("Image enhancement from little data")
    assert tags["TIFFTAG_IMAGEDESCRIPTION"].startswith("A model's output, not a measurement: dem.tif enhanced")
    with np.load(out / "dem_x2.npz") as archive:
        assert_record(json.loads(archive["provenance"].item()), *expected, "dem.npz")
    with netCDF4.Dataset(out / "dem_x2.nc") as nc:
        assert_record(json.loads(nc.provenance), *expected, "dem.nc")
        assert nc.source.startswith(f"dem_x2.keras (sha256 {sha256(models['dem'])}; bicubic; task sr2, x2)")
        assert nc.comment.startswith("A model's output, not a measurement")
    for suffix in (".tif", ".asc", ".npy", ".npz", ".nc"):  # the suite's own reader passes over what was added
        raster = read_raster(out / f"dem_x2{suffix}")
        assert raster.values.shape == (24, 32) and np.isfinite(raster.values).all()


def test_a_netcdf_input_keeps_its_history_with_the_enhancement_appended(tmp_path, models):
    raster_inputs(tmp_path / "in")
    with netCDF4.Dataset(tmp_path / "in" / "dem.nc", "a") as nc:
        nc.history = "2019-05-02T10:00:00Z gdal_translate dem.tif dem.nc\n2019-05-03T09:00:00Z ncatted -a units"
    run(tmp_path / "in" / "dem.nc", "--model", models["dem"], "--out", tmp_path)
    with netCDF4.Dataset(tmp_path / "dem_x2.nc") as nc:
        lines = nc.history.split("\n")
    assert lines[:2] == ["2019-05-02T10:00:00Z gdal_translate dem.tif dem.nc", "2019-05-03T09:00:00Z ncatted -a units"]
    model = f"dem_x2.keras (sha256 {sha256(models['dem'])}; bicubic; task sr2, x2)"
    assert len(lines) == 3 and lines[2].endswith(f": dem.nc enhanced by {model}")
    assert datetime.strptime(lines[2].split()[0], "%Y-%m-%dT%H:%M:%SZ")  # CF: the line starts with its time


# ---- 3. The version ----------------------------------------------------------------------------------


def test_the_version_stands_alone_without_git_and_names_the_commit_in_a_git_checkout(tmp_path, monkeypatch):
    checkout = (provenance_module.REPO / ".git").exists() and shutil.which("git") is not None
    if checkout:
        commit = provenance_module.suite_version().removeprefix(f"{util.__version__}+g").removesuffix(".dirty")
        assert re.fullmatch(r"[0-9a-f]{12,}", commit), commit
    monkeypatch.setattr(provenance_module, "REPO", tmp_path)  # a copy of the suite without .git
    assert provenance_module.suite_version() == util.__version__
