"""One photo/raster decision per file (util/kinds.py), used by download.py, enhance.py and evaluate.py.

Hostile inputs around kinds and folders: DEMs among photos, DEMs that look like pictures,
pictures that look like DEMs, a model of the other kind, hidden files, unreadable files.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin

import download
import evaluate
import util

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "assets" / "models"
UTM = "EPSG:32613"


def terrain(height: int, width: int) -> np.ndarray:
    """Heights in metres of a few hundred metres of relief around 1500 m."""
    y, x = np.mgrid[:height, :width]
    return 1500 + 200 * np.sin(x / 7.0) * np.cos(y / 9.0) + 2 * x


def write_tif(path, values: np.ndarray, dtype: str, georeferenced: bool = True, **profile) -> Path:
    """A GeoTIFF (CRS and 30 m cells) or a plain TIFF of ``values`` (H, W) or (bands, H, W)."""
    values = np.asarray(values)
    bands = values if values.ndim == 3 else values[None]
    profile = dict(driver="GTiff", height=bands.shape[1], width=bands.shape[2], count=len(bands), dtype=dtype) | profile
    if georeferenced:
        profile.update(crs=UTM, transform=from_origin(480000, 4430000, 30, 30))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands.astype(dtype))
    return Path(path)


def write_asc(path, values: np.ndarray) -> Path:
    header = f"ncols {values.shape[1]}\nnrows {values.shape[0]}\nxllcorner 0\nyllcorner 0\ncellsize 10\n"
    Path(path).write_text(header + "\n".join(" ".join(f"{v:.2f}" for v in row) for row in values) + "\n")
    return Path(path)


def photo(height: int = 24, width: int = 24, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(128 + np.cumsum(rng.normal(0, 12, (height, width, 3)), axis=1), 0, 255).astype(np.uint8)


def cli(capfd, main, *argv) -> tuple[int, list[str]]:
    """An entry point in this process: (exit code, lines on stderr)."""
    capfd.readouterr()
    code = util.run_cli(main, [str(a) for a in argv])
    return code, capfd.readouterr().err.strip().splitlines()


def one_line_error(code: int, lines: list[str], *named: str) -> None:
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), lines
    for text in named:
        assert text in lines[0], lines


@pytest.fixture
def mixed(tmp_path) -> Path:
    """Three 160x160 photos and two DEMs (an int16 GeoTIFF, an ESRI ASCII grid) in one folder."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(photo(160, 160, seed=i)).save(folder / f"p{i}.png")
    write_tif(folder / "dem.tif", terrain(96, 96), "int16")
    write_asc(folder / "grid.asc", terrain(96, 96))
    return folder


# ---- Row 1: download.py --folder and evaluate.py --data of photos and DEMs together ---------------------------


def test_download_refuses_a_mixed_folder_and_kind_picks_one(mixed, tmp_path, capfd):
    out = tmp_path / "out"
    args = ("--folder", mixed, "--out", out, "--train", 8, "--test", 2)
    code, lines = cli(capfd, download.main, *args)
    one_line_error(code, lines, "3 photo(s) (p0.png, p1.png and 1 more)", "2 raster(s) (dem.tif, grid.asc)", "--kind")
    assert not out.exists()

    code, lines = cli(capfd, download.main, *args, "--kind", "photo")
    assert code == 0 and any("2 raster(s) (dem.tif, grid.asc) are left out" in line for line in lines), lines
    manifest = json.loads((out / "folder-mixed" / "manifest.json").read_text())
    used = manifest["splits"]["train"]["images"] + manifest["splits"]["test"]["images"]
    assert sorted(used) == ["p0.png", "p1.png", "p2.png"]  # the DEMs never cut as photos

    code, lines = cli(capfd, download.main, *args, "--kind", "raster", "--patch", 32)
    assert code == 0 and any("3 photo(s) (p0.png, p1.png and 1 more) are left out" in line for line in lines)
    manifest = json.loads((out / "folder-mixed" / "manifest.json").read_text())
    assert manifest["kind"] == "raster" and {r["name"] for r in manifest["rasters"]} == {"dem.tif", "grid.asc"}


def test_evaluate_refuses_a_mixed_folder_instead_of_an_infinite_psnr(mixed, tmp_path, capfd):
    out = tmp_path / "eval"
    code, lines = cli(capfd, evaluate.main, "--model", "bicubic", "--scale", 4, "--data", mixed, "--out", out)
    one_line_error(code, lines, "mixed: holds 3 photo(s)", "dem.tif, grid.asc", "separate folders")
    photos, rasters = tmp_path / "photos", tmp_path / "rasters"
    photos.mkdir()
    rasters.mkdir()
    shutil.copy(mixed / "p0.png", photos)
    shutil.copy(mixed / "dem.tif", rasters)
    argv = ("--model", "bicubic", "--scale", 4, "--out", out, "--data", photos, rasters)
    code, lines = cli(capfd, evaluate.main, *argv)
    one_line_error(code, lines, "--data mixes photos", "separate calls")
    assert not out.exists()
