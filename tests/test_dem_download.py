"""download.py for rasters: the embedded DEMs, Copernicus tiles from 127.0.0.1, folders of rasters, bad rasters."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import download
import util
from download_module import copernicus, raster_pairs

REPO = Path(__file__).resolve().parents[1]
COPERNICUS_TILE = "Copernicus_DSM_COG_10_N40_00_W106_00_DEM"


def mtimes(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def overlaps(a, b) -> bool:
    """Boxes (row0, row1, col0, col1), end excluded."""
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def check_contract(dest: Path, patch: int, scales=(2, 4, 8)) -> dict:
    """Every file has its shape and dtype, no NaN, and no training patch touches a test region."""
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["kind"] == "raster" and manifest["settings"]["patch_size"] == patch
    assert manifest["settings"]["scales"] == list(scales)
    assert manifest["value_scale"] > 0
    for split in ("train", "test"):
        hr = np.load(dest / f"{split}_hr.npy")
        n = len(hr)
        assert n > 0 and hr.dtype == np.float32 and hr.shape == (n, patch, patch, 1) and np.isfinite(hr).all()
        for s in scales:
            lr = np.load(dest / f"{split}_sr{s}.npy")
            assert lr.dtype == np.float32 and lr.shape == (n, patch // s, patch // s, 1) and np.isfinite(lr).all()
        mask = np.load(dest / f"{split}_mask.npy")
        assert mask.dtype == np.uint8 and mask.shape == hr.shape and set(np.unique(mask)) <= {0, 1}
        assert (1 - mask).reshape(n, -1).mean(axis=1).max() <= raster_pairs.MAX_NODATA
        cell = np.load(dest / f"{split}_cell.npy")
        assert cell.dtype == np.float32 and cell.shape == (n, 2) and (cell > 0).all()
        assert len(manifest["splits"][split]["patches"]) == n
    regions = manifest["test_regions"]
    for i, row, col in manifest["splits"]["train"]["patches"]:
        name = manifest["splits"]["train"]["rasters"][i]
        if name in regions:
            assert not overlaps((row, row + patch, col, col + patch), regions[name]), (name, row, col)
    tiles = {}
    for i, row, col in manifest["splits"]["test"]["patches"]:
        name = manifest["splits"]["test"]["rasters"][i]
        r0, r1, c0, c1 = regions[name]
        assert r0 <= row and row + patch <= r1 and c0 <= col and col + patch <= c1
        box = (row, row + patch, col, col + patch)
        assert not any(overlaps(box, other) for other in tiles.get(name, []))  # test tiles never overlap
        tiles.setdefault(name, []).append(box)
    return manifest


# ---- dem: the embedded DEMs -------------------------------------------------------------


def test_dem_writes_the_raster_contract_then_is_up_to_date(tmp_path, capsys):
    import rasterio

    from util.io.rasters import read_raster

    args = ["dem", "--out", str(tmp_path), "--train", "80", "--test", "40"]
    download.main(args)
    out = capsys.readouterr().out
    assert "wrote 80 train / 10 test patches of 64x64 cells (block-mean LR x2/x4/x8" in out, out
    dest = tmp_path / "dem"
    manifest = check_contract(dest, 64)
    assert manifest["units"] == "m" and manifest["settings"]["lr"] == "block-mean"
    assert set(manifest["test_regions"]) == {"jacksboro_fault_dem.npz"}  # topobathy (91x120) is too small for both
    assert "whole to train" in manifest["split_rule"] and "topobathy.npz" in manifest["split_rule"]
    assert manifest["test_regions"]["jacksboro_fault_dem.npz"] == [0, 344, 403 - 128, 403]  # the east columns

    # Patches are the raster's cells; cells are ~92 x 74 m on Jacksboro's 3 arc-second grid at 36.6 N.
    rasters = {
        name: read_raster(tmp_path / "raw" / "dem" / name).values for name in manifest["splits"]["train"]["rasters"]
    }
    cells = {"train": np.load(dest / "train_cell.npy"), "test": np.load(dest / "test_cell.npy")}
    for split in ("train", "test"):
        hr, sr4 = np.load(dest / f"{split}_hr.npy"), np.load(dest / f"{split}_sr4.npy")
        names = manifest["splits"][split]["rasters"]
        for k, (i, row, col) in enumerate(manifest["splits"][split]["patches"]):
            assert np.array_equal(hr[k, ..., 0], rasters[names[i]][row : row + 64, col : col + 64])
            block = hr[k, ..., 0].reshape(16, 4, 16, 4).mean(axis=(1, 3))
            np.testing.assert_allclose(sr4[k, ..., 0], block, rtol=1e-6, atol=1e-3)
            if names[i] == "jacksboro_fault_dem.npz":
                np.testing.assert_allclose(cells[split][k], [92.6, 74.4], rtol=0.01)
    train_rasters = {manifest["splits"]["train"]["rasters"][i] for i, _, _ in manifest["splits"]["train"]["patches"]}
    assert train_rasters == {"jacksboro_fault_dem.npz", "topobathy.npz"}

    with rasterio.open(dest / "test_regions" / "jacksboro_fault_dem.tif") as src:
        assert (src.count, src.dtypes[0], src.height, src.width) == (1, "float32", 344, 128)
        np.testing.assert_array_equal(src.read(1), rasters["jacksboro_fault_dem.npz"][:, 275:])

    before = mtimes(tmp_path)
    download.main(args)
    assert "dem: up to date (seed 0, 80/10, 64x64 cells)" in capsys.readouterr().out
    assert mtimes(tmp_path) == before


def test_dem_bicubic_lr_and_32_cell_patches(tmp_path, capsys):
    download.main(["dem", "--out", str(tmp_path), "--train", "30", "--test", "500", "--patch", "32", "--lr", "bicubic"])
    manifest = check_contract(tmp_path / "dem", 32)
    assert manifest["test_regions"] == {  # both split at 32 cells: 96 of 403 columns, 32 of 120
        "jacksboro_fault_dem.npz": [0, 344, 307, 403],
        "topobathy.npz": [0, 91, 88, 120],
    }
    hr, sr2 = np.load(tmp_path / "dem" / "test_hr.npy"), np.load(tmp_path / "dem" / "test_sr2.npy")
    np.testing.assert_allclose(sr2, util.imresize(hr, output_shape=(16, 16), batch=True), rtol=1e-6, atol=1e-3)
    assert len(hr) == 10 * 3 + 2 * 1  # every test tile (--test is a maximum): 344//32 x 96//32 and 91//32 x 32//32
    assert "bicubic LR" in capsys.readouterr().out


def test_raster_flags_and_defaults(tmp_path):
    assert download.parse_args(["dem"]).train == 2000 and download.parse_args(["dem"]).test == 1000
    assert download.parse_args([]).train == 10_000
    with pytest.raises(util.UserError, match=r"^--patch / --nodata: raster settings, and builtin is photos"):
        download.main(["builtin", "--patch", "32", "--nodata", "-9999"])
    with pytest.raises(util.UserError, match=r"^--tiles: only for copernicus, not dem"):
        download.main(["dem", "--tiles", "N40_00_W106_00"])
    with pytest.raises(util.UserError, match=r"--patch 30: give a multiple of 8"):
        download.main(["dem", "--patch", "30", "--out", str(tmp_path)])
    with pytest.raises(util.UserError, match=r"--kind raster only applies to --folder"):
        download.main(["dem", "--kind", "raster"])


# ---- copernicus ---------------------------------------------------------------------------


def test_copernicus_tile_names_and_boxes():
    assert copernicus.bbox_tiles("-106,39.5,-104.2,41") == [
        "N40_00_W106_00",
        "N40_00_W105_00",
        "N39_00_W106_00",
        "N39_00_W105_00",
    ]
    assert copernicus.parse_tiles(f"N40_00_W106_00,{COPERNICUS_TILE},s12e005", 30) == [
        "N40_00_W106_00",
        "S12_00_E005_00",
    ]
    with pytest.raises(util.UserError, match="give --resolution 90"):
        copernicus.parse_tiles("Copernicus_DSM_COG_30_N40_00_W106_00_DEM", 30)
    assert copernicus.expected_shape("N49_00_E010_00", 30) == (3600, 3600)
    assert copernicus.expected_shape("N50_00_E010_00", 30) == (3600, 2400)  # narrower north of 50 degrees
    assert copernicus.expected_shape("S51_00_E010_00", 90) == (1200, 800)
    assert copernicus.tile_url("N40_00_W106_00", 90, None) == (
        "https://copernicus-dem-90m.s3.amazonaws.com/Copernicus_DSM_COG_30_N40_00_W106_00_DEM/"
        "Copernicus_DSM_COG_30_N40_00_W106_00_DEM.tif"
    )
    with pytest.raises(util.UserError, match=r"66 tiles .*give --max-tiles 66"):
        copernicus.choose_tiles(None, "-110,30,-99,36", 30, None)
    assert len(copernicus.choose_tiles(None, "-110,30,-99,36", 30, 66)) == 66


@pytest.fixture
def copernicus_tile(shared_data) -> Path:
    return shared_data / "dem" / f"{COPERNICUS_TILE}.tif"


def test_copernicus_from_a_mirror_resumes_and_notes_the_sea(
    tmp_path, http_server, copernicus_tile, fast_retries, capsys
):
    path = f"/cop/{COPERNICUS_TILE}/{COPERNICUS_TILE}.tif"
    http_server.add(path, copernicus_tile)
    http_server.cut_once.add(path)
    args = ["copernicus", "--url", http_server.url + "/cop", "--out", str(tmp_path), "--patch", "32", "--train", "40"]
    args += ["--tiles", "N40_00_W106_00,N39_00_W130_00"]
    download.main(args)
    statuses = [(p.split("/")[-1], status) for p, _, status in http_server.requests]
    assert statuses == [(f"{COPERNICUS_TILE}.tif", 200), (f"{COPERNICUS_TILE}.tif", 206)] + [
        ("Copernicus_DSM_COG_10_N39_00_W130_00_DEM.tif", 404)
    ]
    raw = tmp_path / "raw" / "copernicus"
    assert (raw / f"{COPERNICUS_TILE}.tif").read_bytes() == copernicus_tile.read_bytes()
    assert "N39_00_W130_00: no tile (sea or outside coverage" in capsys.readouterr().err

    manifest = check_contract(tmp_path / "copernicus", 32)
    assert any("no tile" in note for note in manifest["notes"])
    assert manifest["origin"].startswith(http_server.url + "/cop")
    cell = np.load(tmp_path / "copernicus" / "train_cell.npy")[0]
    np.testing.assert_allclose(cell, [92.6, 92.6 * np.cos(np.radians(40.15))], rtol=0.01)  # non-square at 40 N
    assert (tmp_path / "copernicus" / "test_regions" / f"{COPERNICUS_TILE}.tif").exists()

    requests = len(http_server.requests)
    download.main(args)  # the tile is here and the sea is remembered: no request
    assert len(http_server.requests) == requests
    assert "up to date" in capsys.readouterr().out


def test_copernicus_corrupt_tile_is_deleted_and_no_tile_is_an_error(tmp_path, http_server, copernicus_tile):
    http_server.add(f"/cop/{COPERNICUS_TILE}/{COPERNICUS_TILE}.tif", copernicus_tile.read_bytes()[:20_000])
    args = ["copernicus", "--url", http_server.url + "/cop", "--out", str(tmp_path), "--tiles", "N40_00_W106_00"]
    with pytest.raises(util.UserError, match=r"not a readable GeoTIFF.*the file was deleted") as err:
        download.main(args)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "raw" / "copernicus" / f"{COPERNICUS_TILE}.tif").exists()
    with pytest.raises(util.UserError, match=r"copernicus: no tile found among 1 \(N10_00_W150_00\)"):
        download.main([*args[:-1], "N10_00_W150_00"])


# ---- a folder of rasters -------------------------------------------------------------------


def test_folder_of_mixed_rasters_with_nodata(tmp_path, shared_data, capsys):
    from util.io.rasters import read_raster

    folder = tmp_path / "dems"
    (folder / "asc").mkdir(parents=True)
    shutil.copy(shared_data / "dem" / "srtm_boulder_3arcsec.tif", folder)
    for name in ("tidal_flat_2m.asc", "runout_10m.asc", "hugo_site_10m_no_nodata_header.asc"):
        shutil.copy(shared_data / "dem" / name, folder / "asc")
    assert raster_pairs.folder_kind(folder) == "raster"
    out = tmp_path / "out"
    # 16-cell patches: hugo's watershed (76x55) is half -9999, so 32x32 crops outside its test band hold too much.
    download.main(["--folder", str(folder), "--out", str(out), "--patch", "16", "--train", "200", "--nodata", "-9999"])
    dest = out / "folder-dems"
    manifest = check_contract(dest, 16, scales=(2, 4))
    names = {r["name"] for r in manifest["rasters"]}
    assert names == {
        "srtm_boulder_3arcsec.tif",
        "asc/tidal_flat_2m.asc",
        "asc/runout_10m.asc",
        "asc/hugo_site_10m_no_nodata_header.asc",
    }
    assert not manifest["skipped"]
    hr, mask = np.load(dest / "train_hr.npy"), np.load(dest / "train_mask.npy")
    assert not np.isin(hr, [-9999.0, 999.0, -32768.0]).any()  # nodata values never reach the patches
    assert (mask == 0).any()  # some patches hold nodata cells, masked
    # Each masked cell is nodata in its raster; each valid cell is the raster's value.
    values = {
        name: read_raster(folder / name, nodata=-9999.0).values for name in manifest["splits"]["train"]["rasters"]
    }
    for k, (i, row, col) in enumerate(manifest["splits"]["train"]["patches"]):
        cells = values[manifest["splits"]["train"]["rasters"][i]][row : row + 16, col : col + 16]
        assert np.array_equal(np.isfinite(cells), mask[k, ..., 0] == 1)
        assert np.array_equal(cells[mask[k, ..., 0] == 1], hr[k, ..., 0][mask[k, ..., 0] == 1])
    assert len(list((dest / "test_regions").glob("*.tif"))) == 4

    capsys.readouterr()
    download.main(["--folder", str(folder / "asc"), "--out", str(out), "--patch", "16", "--train", "20"])
    assert "give --nodata -9999" in capsys.readouterr().err  # without it, hugo's -9999 border counts as heights


def _npy_folder(tmp_path: Path, **arrays) -> Path:
    folder = tmp_path / "grids"
    folder.mkdir(exist_ok=True)
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
    return folder


def _terrain(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[:height, :width]
    return (100 * np.sin(x / 17.0) * np.cos(y / 23.0) + 3 * x).astype(np.float32)


def test_small_and_all_nodata_rasters(tmp_path, capsys):
    out = ["--out", str(tmp_path / "out")]
    folder = _npy_folder(tmp_path, tiny=_terrain(20, 40))
    with pytest.raises(
        util.UserError, match=r"no usable raster among 1 \(tiny.npy: 20x40 cells, smaller than a 64x64"
    ) as err:
        download.main(["--folder", str(folder), *out])
    assert "\n" not in str(err.value)
    (folder / "tiny.npy").unlink()
    folder = _npy_folder(tmp_path, empty=np.full((100, 100), np.nan, np.float32))
    with pytest.raises(util.UserError, match=r"empty.npy: every cell is nodata"):
        download.main(["--folder", str(folder), *out])
    (folder / "empty.npy").unlink()

    # Next to a good raster, the small one is skipped in one warning, and one raster too small to split
    # goes whole to test when no other raster has a test region.
    folder = _npy_folder(tmp_path, tiny=_terrain(20, 40), a=_terrain(96, 96), b=_terrain(80, 120))
    download.main(["--folder", str(folder), *out, "--patch", "32", "--train", "20"])
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "skipped 1 of 3 rasters (tiny.npy: 20x40 cells" in warnings[0]
    manifest = check_contract(tmp_path / "out" / "folder-grids", 32, scales=(2, 4, 8))
    assert set(manifest["test_regions"]) == {"a.npy", "b.npy"}
    download.main(["--folder", str(folder), *out, "--patch", "64", "--train", "20"])
    manifest = check_contract(tmp_path / "out" / "folder-grids", 64)
    assert manifest["test_regions"] == {"b.npy": [0, 80, 0, 120]}  # whole to test: no raster had room for both
    assert "whole to test" in manifest["split_rule"] and "whole to train" in manifest["split_rule"]
    assert not (tmp_path / "out" / "folder-grids" / "test_regions" / "a.tif").exists()  # stale region removed

    folder = tmp_path / "one"
    folder.mkdir()
    np.save(folder / "one.npy", _terrain(64, 100))
    result = subprocess.run(
        [sys.executable, str(REPO / "download.py"), "--folder", str(folder), *out],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "cannot hold both a test region and a training area of 64x64 patches; give --patch 32" in result.stderr


def test_patches_with_too_much_nodata_are_skipped(tmp_path):
    z = _terrain(128, 256)
    z[:, 40:90] = np.nan  # a strip of nodata in the training area
    z[100:, 216:] = np.nan  # and a corner of the test region
    folder = _npy_folder(tmp_path, holes=z)
    download.main(["--folder", str(folder), "--out", str(tmp_path / "out"), "--patch", "32", "--train", "300"])
    dest = tmp_path / "out" / "folder-grids"
    manifest = check_contract(dest, 32)
    invalid = 1 - np.load(dest / "train_mask.npy").reshape(300, -1).mean(axis=1)
    assert invalid.max() <= 0.25 and (invalid > 0).any()
    assert manifest["test_regions"] == {"holes.npy": [0, 128, 192, 256]}
    tiles = {(row, col) for _, row, col in manifest["splits"]["test"]["patches"]}
    assert tiles == {(r, c) for r in (0, 32, 64, 96) for c in (192, 224)} - {(96, 224)}  # 28x32 cells nodata
    kept = manifest["splits"]["test"]["patches"].index([0, 96, 192])  # 28x8 cells nodata: 22%, kept
    assert np.load(dest / "test_mask.npy")[kept].sum() == 32 * 32 - 28 * 8


def test_three_band_geotiff_needs_band(tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    folder = tmp_path / "multi"
    folder.mkdir()
    bands = np.stack([_terrain(96, 128) + 1000 * b for b in range(3)])
    profile = {"driver": "GTiff", "width": 128, "height": 96, "count": 3, "dtype": "float32"}
    with rasterio.open(
        folder / "rgb.tif", "w", **profile, transform=from_origin(0, 960, 10, 10), crs="EPSG:32613"
    ) as dst:
        dst.write(bands)
    assert raster_pairs.folder_kind(folder) == "raster"  # float32 bands: not a photo
    out = ["--out", str(tmp_path / "out"), "--patch", "32", "--train", "10"]
    with pytest.raises(util.UserError, match=r"rgb.tif: .*3 bands; give --band") as err:
        download.main(["--folder", str(folder), *out])
    assert "\n" not in str(err.value)
    download.main(["--folder", str(folder), *out, "--band", "2"])
    hr = np.load(tmp_path / "out" / "folder-multi" / "train_hr.npy")
    assert hr.min() >= 900  # band 2 holds the heights + 1000
