"""One photo/raster decision per file (util/io/kinds.py), used by download.py, enhance.py and evaluate.py.

Hostile inputs around kinds and folders: DEMs among photos, DEMs that look like pictures,
pictures that look like DEMs, a model of the other kind, hidden files, unreadable files.
"""

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin

import download
import enhance
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)  # a plain TIFF on purpose
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


# ---- Rows 2 to 4: enhance.py takes each file by its kind --------------------------------------------------------


def test_a_folder_of_dems_takes_the_raster_path(tmp_path):
    folder = tmp_path / "dems"
    folder.mkdir()
    heights = terrain(24, 24)
    write_tif(folder / "a_int16.tif", heights, "int16")
    write_tif(folder / "b_float.tif", heights, "float32", georeferenced=False)
    write_asc(folder / "c.asc", heights)
    enhance.main([str(folder), "--scale", "2", "--quiet"])  # the shipped dem_x2.keras
    out = tmp_path / "dems_x2"
    assert sorted(p.name for p in out.iterdir()) == ["a_int16_x2.tif", "b_float_x2.tif", "c_x2.asc"]
    for name in ("a_int16_x2.tif", "b_float_x2.tif", "c_x2.asc"):
        with rasterio.open(out / name) as src:
            assert (src.count, src.height, src.width, src.dtypes[0]) == (1, 48, 48, "float32"), name
            values = src.read(1)
            if name.startswith("a_"):
                assert src.crs == rasterio.crs.CRS.from_string(UTM) and src.transform.a == 15.0  # CRS kept
        assert abs(float(values.mean()) - float(heights.mean())) < 20, name  # metres in, metres out


def test_one_uint16_band_without_crs_is_a_raster_as_documented(tmp_path):
    source = write_tif(tmp_path / "g_uint16_nocrs.tif", terrain(24, 24), "uint16", georeferenced=False)
    enhance.main([str(source), "--scale", "2", "--quiet"])
    assert not (tmp_path / "g_uint16_nocrs_x2.png").exists()
    with rasterio.open(tmp_path / "g_uint16_nocrs_x2.tif") as src:
        assert (src.height, src.width, src.dtypes[0]) == (48, 48, "float32")
        assert abs(float(src.read(1).mean()) - float(terrain(24, 24).mean())) < 20


def test_a_raster_model_given_a_photo_is_one_line(tmp_path, capfd):
    Image.fromarray(photo()).save(tmp_path / "photo.png")
    code, lines = cli(capfd, enhance.main, tmp_path / "photo.png", "--model", MODELS / "dem_x4.keras", "--quiet")
    one_line_error(code, lines, "dem_x4.keras: a raster model", "photo.png is a photo", "give a photo model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


def test_a_mixed_folder_routes_each_file_to_the_model_of_its_kind(tmp_path, capfd):
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(photo()).save(folder / "p.png")
    write_tif(folder / "sub" / "dem.tif", terrain(24, 24), "int16")
    code, lines = cli(capfd, enhance.main, folder, "--model", MODELS / "sr2.keras", "--quiet")
    one_line_error(code, lines, "--model", "photos (p.png) and rasters (dem.tif)", "leave out --model")
    code, lines = cli(capfd, enhance.main, folder, "--task", "denoise", "--quiet")
    one_line_error(code, lines, "--task denoise applies to photos", "dem.tif")
    assert not (tmp_path / "mixed_x2").exists()
    enhance.main([str(folder), "--scale", "2", "--quiet"])  # sr2.keras for the photo, dem_x2.keras for the DEM
    out = tmp_path / "mixed_x2"
    assert Image.open(out / "p_x2.png").size == (48, 48)
    with rasterio.open(out / "sub" / "dem_x2.tif") as src:
        assert (src.height, src.width, src.dtypes[0]) == (48, 48, "float32") and src.crs is not None


# ---- Hostile inputs around kinds and folders -------------------------------------------------------------------


def test_the_one_rule_per_file(tmp_path):
    from util.io.kinds import file_kind

    heights = terrain(24, 24)
    pixels = photo()
    cases = {
        "dem.tif": (write_tif(tmp_path / "dem.tif", heights, "int16"), "raster"),
        "u8_geo.tif": (write_tif(tmp_path / "u8_geo.tif", heights - 1400, "uint8"), "raster"),  # georeferenced
        "u8_grey.tif": (write_tif(tmp_path / "u8_grey.tif", pixels[..., 0], "uint8", False), "photo"),
        "rgb.tiff": (write_tif(tmp_path / "rgb.tiff", np.moveaxis(pixels, 2, 0), "uint8", False), "photo"),
        "g16.tif": (write_tif(tmp_path / "g16.tif", heights, "uint16", False), "raster"),  # one band, not 8-bit
        "i8.tif": (write_tif(tmp_path / "i8.tif", (heights - 1500) / 4, "int8", False), "raster"),
        "two.tif": (write_tif(tmp_path / "two.tif", np.stack([heights] * 2), "int16", False), "raster"),
        "rgb16.tif": (
            write_tif(
                tmp_path / "rgb16.tif",
                np.moveaxis(pixels, 2, 0).astype(np.uint16) * 257,
                "uint16",
                False,
                photometric="RGB",
            ),
            "photo",
        ),
        "bands16.tif": (write_tif(tmp_path / "bands16.tif", np.stack([heights] * 3), "uint16", False), "raster"),
        "float.tif": (write_tif(tmp_path / "float.tif", heights, "float32", False), "raster"),
        "UPPER.TIF": (write_tif(tmp_path / "UPPER.TIF", heights, "int16"), "raster"),
        "GRID.ASC": (write_asc(tmp_path / "GRID.ASC", heights), "raster"),
        "grid.npy": (tmp_path / "grid.npy", "raster"),
        "photo16.png": (tmp_path / "photo16.png", "photo"),
        "notes.txt": (tmp_path / "notes.txt", None),
    }
    np.save(tmp_path / "grid.npy", heights)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    (tmp_path / "photo.png").rename(tmp_path / "png_named.tif")  # a PNG behind a .tif suffix: GDAL reads it
    cases["png_named.tif"] = (tmp_path / "png_named.tif", "photo")
    whole = (tmp_path / "dem.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(whole[:100])  # cut short: the raster reader names it
    cases["cut.tif"] = (tmp_path / "cut.tif", "raster")
    kinds_found = {name: file_kind(path) for name, (path, _) in cases.items()}
    assert kinds_found == {name: kind for name, (_, kind) in cases.items()}


def test_hidden_files_and_folders_are_left_out(tmp_path, capfd):
    folder = tmp_path / "shots"
    (folder / ".ipynb_checkpoints").mkdir(parents=True)
    Image.fromarray(photo()).save(folder / "p.png")
    (folder / "._p.png").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")  # macOS's AppleDouble
    Image.fromarray(photo()).save(folder / ".ipynb_checkpoints" / "p-checkpoint.png")
    code, lines = cli(capfd, enhance.main, folder, "--scale", 2, "--quiet")
    assert code == 0 and lines == [], lines
    assert sorted(p.name for p in (tmp_path / "shots_x2").rglob("*")) == ["p_x2.png"]
    Image.fromarray(photo(48, 48)).save(folder / "p.png")
    code, lines = cli(capfd, evaluate.main, "--model", "bicubic", "--scale", 2, "--data", folder, "--out", tmp_path)
    assert code == 0 and lines == [], lines
    assert [row["image"] for row in json.loads((tmp_path / "eval_shots_sr2.json").read_text())["images"]] == ["p"]


def test_the_current_folder_as_input(tmp_path, monkeypatch):
    folder = tmp_path / "here"
    folder.mkdir()
    Image.fromarray(photo()).save(folder / "p.png")
    write_tif(folder / "dem.tif", terrain(24, 24), "int16")
    monkeypatch.chdir(folder)
    enhance.main([".", "--scale", "2", "--quiet"])
    assert sorted(p.name for p in (tmp_path / "here_x2").iterdir()) == ["dem_x2.tif", "p_x2.png"]


def test_outputs_inside_the_input_folder_are_not_taken_as_inputs(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    Image.fromarray(photo()).save(folder / "p.png")
    write_tif(folder / "dem.tif", terrain(24, 24), "int16")
    out = folder / "enhanced"
    enhance.main([str(folder), "--scale", "2", "--quiet", "--out", str(out)])
    enhance.main([str(folder), "--scale", "2", "--quiet", "--out", str(out), "--skip-existing"])  # a resumed batch
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["dem_x2.tif", "p_x2.png"]


def test_a_file_given_twice_is_refused_before_any_work(tmp_path, capfd):
    folder = tmp_path / "dems"
    folder.mkdir()
    write_tif(folder / "dem.tif", terrain(24, 24), "int16")
    for argv in ((folder / "dem.tif", folder / "dem.tif"), (folder / "dem.tif", folder)):
        code, lines = cli(capfd, enhance.main, *argv, "--scale", 2, "--out", tmp_path / "out", "--quiet")
        one_line_error(code, lines, "dem.tif: among the inputs twice", "give each file or folder once")
    assert not (tmp_path / "out").exists()


def test_download_of_a_folder_of_neither_kind_says_so(tmp_path, capfd):
    folder = tmp_path / "nothing"
    folder.mkdir()
    (folder / "._dem.tif").write_bytes(b"\x00\x05\x16\x07")
    (folder / "readme.txt").write_text("heights of the valley")
    code, lines = cli(capfd, download.main, "--folder", folder, "--out", tmp_path / "out", "--patch", 32)
    one_line_error(code, lines, "nothing: no image files (.png, .jpg, ...) or rasters", "hidden files left out")
