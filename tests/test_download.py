"""download.py end to end: every source through the real code, archives served from 127.0.0.1."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import download
import util
from download_module import pairs

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--train", "40", "--test", "10"]


def mtimes(folder: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def check_dataset(dest: Path, train: int, test: int, image_root: Path | None = None) -> dict:
    """Every file has its shape; with ``image_root``, every HR patch is its recorded crop."""
    manifest = json.loads((dest / "manifest.json").read_text())
    for split, count in (("train", train), ("test", test)):
        for kind in pairs.DEGRADATIONS:
            array = np.load(dest / f"{split}_{kind}.npy")
            assert array.dtype == np.uint8 and array.shape == (count, *pairs.patch_shape(kind)), (split, kind)
        if image_root is not None:
            part = manifest["splits"][split]
            hr = np.load(dest / f"{split}_hr.npy")
            pixels = {i: util.load_image_rgb(image_root / name) for i, name in enumerate(part["images"])}
            for row, (i, top, left, bottom, right, rot) in enumerate(part["patches"]):
                assert np.array_equal(hr[row], np.rot90(pixels[i][top:bottom, left:right], rot)), (split, row)
    return manifest


def test_default_output_is_datasets_next_to_download_py():
    assert download.parse_args([]).out == REPO / "datasets"
    assert download.parse_args([]).train == 10_000 and download.parse_args([]).test == 1_000


# ---- builtin -------------------------------------------------------------------------


def test_builtin_writes_pairs_then_is_up_to_date(tmp_path, capsys):
    download.main(["--out", str(tmp_path), *SMALL])
    dest = tmp_path / "builtin"
    manifest = check_dataset(dest, 40, 10, image_root=tmp_path / "raw" / "builtin")
    assert manifest["settings"]["seed"] == 0 and manifest["settings"]["counts"] == {"train": 40, "test": 10}
    test_images = {manifest["splits"]["test"]["images"][row[0]] for row in manifest["splits"]["test"]["patches"]}
    assert test_images <= {"coffee.png", "rocket.png", "gravel.png"}
    assert not set(manifest["splits"]["train"]["images"]) & set(manifest["splits"]["test"]["images"])
    assert "builtin: wrote 40 train / 10 test patches (seed 0)" in capsys.readouterr().out

    before = mtimes(dest) | mtimes(tmp_path / "raw" / "builtin")
    download.main(["--out", str(tmp_path), *SMALL])
    assert capsys.readouterr().out.strip().endswith("builtin: up to date (seed 0, 40/10)")
    assert mtimes(dest) | mtimes(tmp_path / "raw" / "builtin") == before

    test_hr = np.load(dest / "test_hr.npy")
    download.main(["--out", str(tmp_path), "--train", "50", "--test", "10"])  # other counts: written again
    assert "wrote" in capsys.readouterr().out
    assert np.array_equal(np.load(dest / "test_hr.npy"), test_hr)  # the test patches do not depend on --train
    download.main(["--out", str(tmp_path), "--train", "50", "--test", "10", "--seed", "1"])
    assert not np.array_equal(np.load(dest / "test_hr.npy"), test_hr)


# ---- mars -------------------------------------------------------------------------------


@pytest.fixture
def mars_zip(shared_data) -> Path:
    return shared_data / "fixtures" / "msl-images-sample.zip"


def split_list(mars_zip: Path, name: str) -> set[str]:
    with zipfile.ZipFile(mars_zip) as zf:
        text = zf.read(f"msl-images/{name}-calibrated-shuffled.txt").decode()
    return {line.split()[0] for line in text.splitlines() if line.strip()}


def test_mars_from_a_mirror_resumes_and_keeps_test_images_apart(tmp_path, http_server, mars_zip, fast_retries, capsys):
    http_server.add("/zenodo/msl-images.zip", mars_zip)
    http_server.cut_once.add("/zenodo/msl-images.zip")
    args = ["mars", "--url", http_server.url + "/zenodo/", "--out", str(tmp_path), *SMALL]
    download.main(args)
    assert [status for _, _, status in http_server.requests] == [200, 206]  # cut off, then resumed
    assert (tmp_path / "downloads" / "msl-images.zip").read_bytes() == mars_zip.read_bytes()
    assert not (tmp_path / "downloads" / "msl-images.zip.part").exists()

    manifest = check_dataset(tmp_path / "mars", 40, 10, image_root=tmp_path / "raw" / "mars" / "msl-images")
    test_list = split_list(mars_zip, "test")
    train_list = split_list(mars_zip, "train") | split_list(mars_zip, "val")
    test_part, train_part = manifest["splits"]["test"], manifest["splits"]["train"]
    assert {test_part["images"][row[0]] for row in test_part["patches"]} <= test_list
    assert set(test_part["images"]) <= test_list and set(train_part["images"]) <= train_list
    assert "sol-based" in manifest["split_rule"]

    requests = len(http_server.requests)
    download.main(args)  # everything is here: no network, nothing rewritten
    assert len(http_server.requests) == requests
    assert "mars: up to date (seed 0, 40/10)" in capsys.readouterr().out


def test_mars_skips_missing_and_small_images_in_one_warning(tmp_path, http_server, mars_zip, capsys):
    with zipfile.ZipFile(mars_zip) as src, zipfile.ZipFile(tmp_path / "msl-images.zip", "w") as dst:
        names = sorted(n for n in src.namelist() if n.endswith(".JPG"))
        for name in src.namelist():
            if name not in names[:2]:  # the first listed image is missing from this archive
                dst.writestr(name, src.read(name))
        dst.writestr(names[1], _png_bytes(Image.new("RGB", (100, 90))))  # and one is too small
    url = http_server.add("/msl-images.zip", tmp_path / "msl-images.zip")
    download.main(["mars", "--url", url, "--out", str(tmp_path / "out"), *SMALL])
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1
    assert "mars: skipped 2 of 30 images (1 unreadable, 1 smaller than 128 px)" in warnings[0]


def _png_bytes(img: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


# ---- div2k ------------------------------------------------------------------------------


def test_div2k_layout_from_set14(tmp_path, http_server, shared_data):
    set14 = sorted((shared_data / "benchmark" / "Set14").glob("*.png"))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for archive, files in (("DIV2K_train_HR", set14[:10]), ("DIV2K_valid_HR", set14[10:])):
        with zipfile.ZipFile(mirror / f"{archive}.zip", "w") as zf:
            for path in files:
                zf.write(path, f"{archive}/{path.name}")
        http_server.add(f"/div2k/{archive}.zip", mirror / f"{archive}.zip")
    out = tmp_path / "out"
    download.main(["div2k", "--url", http_server.url + "/div2k", "--out", str(out), *SMALL])
    manifest = check_dataset(out / "div2k", 40, 10, image_root=out / "raw" / "div2k")
    valid = {f"DIV2K_valid_HR/{p.name}" for p in set14[10:]}
    assert set(manifest["splits"]["test"]["images"]) == valid
    assert not set(manifest["splits"]["train"]["images"]) & valid
    assert manifest["origin"] == http_server.url + "/div2k"


# ---- unsplash ---------------------------------------------------------------------------


def test_unsplash_zip_mirror_uses_the_high_res_folder(tmp_path, http_server):
    from skimage import data

    archive = tmp_path / "unsplash.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        root = "Image Super Resolution - Unsplash"
        for i, name in enumerate(("astronaut", "coffee", "chelsea", "rocket")):
            img = Image.fromarray(getattr(data, name)())
            zf.writestr(f"{root}/high res/{i}.png", _png_bytes(img))
            zf.writestr(f"{root}/low res/{i}_2.png", _png_bytes(img.resize((img.width // 4, img.height // 4))))
        zf.writestr(f"{root}/image_data.csv", "low_res,high_res\n")
    url = http_server.add("/mirror/image-super-resolution-from-unsplash.zip", archive)
    out = tmp_path / "out"
    download.main(["unsplash", "--url", url, "--out", str(out), *SMALL])
    manifest = check_dataset(out / "unsplash", 40, 10)
    names = manifest["splits"]["train"]["images"] + manifest["splits"]["test"]["images"]
    assert len(names) == 4 and all("/high res/" in name for name in names)
    assert len(manifest["splits"]["test"]["images"]) == 1


def kaggle_free_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE")}
    env.update(HOME=str(tmp_path), KAGGLE_CONFIG_DIR=str(tmp_path / "kaggle"), KAGGLEHUB_CACHE=str(tmp_path / "cache"))
    return env


def test_unsplash_without_credentials_says_how_to_give_them(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "download.py"), "unsplash", "--out", str(tmp_path / "out")],
        env=kaggle_free_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: unsplash: no Kaggle credentials")
    assert "KAGGLE_USERNAME" in result.stderr and "kaggle.json" in result.stderr


# ---- a folder ---------------------------------------------------------------------------


def test_folder_converts_modes_and_counts_skipped_files(tmp_path, capsys):
    from skimage import data

    photos = tmp_path / "My Photos"
    (photos / "sub").mkdir(parents=True)
    rgb = data.astronaut()
    Image.fromarray(rgb).save(photos / "rgb.png")
    Image.fromarray(data.camera()).save(photos / "gray.png")
    Image.fromarray(np.dstack([data.coffee(), np.full(data.coffee().shape[:2], 7, np.uint8)])).save(photos / "rgba.png")
    Image.fromarray(data.moon().astype(np.uint16) * 257).save(photos / "sub" / "deep16.png")
    Image.fromarray(data.chelsea()).convert("P").save(photos / "sub" / "palette.png")
    Image.fromarray(data.rocket()).convert("CMYK").save(photos / "sub" / "cmyk.jpg")
    Image.fromarray(rgb[:100, :300]).save(photos / "tiny.png")
    (photos / "not-an-image.jpg").write_bytes(b"this is text")
    (photos / "truncated.png").write_bytes((photos / "rgb.png").read_bytes()[:5000])
    (photos / "notes.txt").write_text("ignored: not an image suffix")
    assert Image.open(photos / "sub" / "deep16.png").mode == "I;16"

    out = tmp_path / "out"
    download.main(["--folder", str(photos), "--out", str(out), *SMALL])
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1
    assert "folder-My-Photos: skipped 3 of 9 images (2 unreadable, 1 smaller than 128 px)" in warnings[0]

    dest = out / "folder-My-Photos"
    manifest = check_dataset(dest, 40, 10, image_root=photos)
    hr = np.concatenate([np.load(dest / "train_hr.npy"), np.load(dest / "test_hr.npy")])
    rows = [(s, row) for s in ("train", "test") for row in manifest["splits"][s]["patches"]]
    by_image = {}
    for index, (split, row) in enumerate(rows):
        by_image.setdefault(manifest["splits"][split]["images"][row[0]], []).append(hr[index])
    for name in ("gray.png", "sub/deep16.png"):  # gray and 16-bit gray: R = G = B
        for patch in by_image.get(name, []):
            assert np.array_equal(patch[..., 0], patch[..., 1]) and np.array_equal(patch[..., 1], patch[..., 2])
    assert len(by_image) >= 4  # patches from several of the six usable images
    assert sorted(name for name, _ in manifest["skipped"]) == ["not-an-image.jpg", "tiny.png", "truncated.png"]
    assert manifest["origin"] == str(photos.resolve())


def test_folder_name_option_and_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(util.UserError, match="no image files"):
        download.main(["--folder", str(tmp_path / "empty"), "--out", str(tmp_path)])
    with pytest.raises(util.UserError, match="--name 'mars'"):
        download.main(["--folder", str(tmp_path / "empty"), "--name", "mars", "--out", str(tmp_path)])
    with pytest.raises(util.UserError, match="not both"):
        download.main(["mars", "--folder", str(tmp_path / "empty")])


def test_folder_without_usable_image_is_one_error(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(b"not a png")
    with pytest.raises(util.UserError, match=r"folder-bad: no usable image among 3 "):
        download.main(["--folder", str(folder), "--out", str(tmp_path / "out"), *SMALL])


# ---- the command line's error path ----------------------------------------------------


def test_cli_refuses_a_zip_escaping_its_folder_in_one_line(tmp_path, http_server, mars_zip):
    evil = tmp_path / "msl-images.zip"
    with zipfile.ZipFile(mars_zip) as src, zipfile.ZipFile(evil, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
        dst.writestr("msl-images/../../escaped.txt", b"gotcha")
    http_server.add("/evil/msl-images.zip", evil)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(REPO / "download.py"), "mars", "--url", http_server.url + "/evil/", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert "msl-images.zip: refusing to extract entry 'msl-images/../../escaped.txt'" in result.stderr
    assert not (tmp_path / "escaped.txt").exists() and not (out / "escaped.txt").exists()
    assert not (out / "mars").exists()


def _unsplash_tree(root: Path, count: int = 3):
    from skimage import data

    for i, name in enumerate(("astronaut", "coffee", "chelsea", "rocket")[:count]):
        (root / "high res").mkdir(parents=True, exist_ok=True)
        Image.fromarray(getattr(data, name)()).save(root / "high res" / f"{i}.png")


def test_unsplash_uses_kagglehub_cache_without_network(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    version = cache / "datasets" / "quadeer15sh" / "image-super-resolution-from-unsplash" / "versions" / "2"
    _unsplash_tree(version / "Image Super Resolution - Unsplash")
    (version.parent.parent / "2.complete").touch()
    for key, value in kaggle_free_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(cache))
    download.main(["unsplash", "--out", str(tmp_path / "out"), *SMALL])
    manifest = check_dataset(tmp_path / "out" / "unsplash", 40, 10, image_root=version)
    assert manifest["origin"] == "kaggle:quadeer15sh/image-super-resolution-from-unsplash"


def test_unsplash_downloads_through_kagglehub_once(tmp_path, monkeypatch):
    import kagglehub

    calls = []

    def fake_download(handle, path=None, *, force_download=False, output_dir=None):
        calls.append((handle, output_dir))
        _unsplash_tree(Path(output_dir) / "Image Super Resolution - Unsplash", count=2)
        return output_dir

    for key, value in kaggle_free_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "0123")
    monkeypatch.setattr(kagglehub, "dataset_download", fake_download)
    out = tmp_path / "out"
    download.main(["unsplash", "--out", str(out), *SMALL])
    download.main(["unsplash", "--out", str(out), *SMALL])  # up to date: kagglehub is not called again
    assert calls == [("quadeer15sh/image-super-resolution-from-unsplash", str(out / "raw" / "unsplash" / "kaggle"))]
    check_dataset(out / "unsplash", 40, 10, image_root=out / "raw" / "unsplash" / "kaggle")


def test_a_mars_split_list_entry_outside_the_archive_is_refused(tmp_path):
    """A list line such as ../../x.png must not make download.py read a file outside the archive."""
    from download_module import mars

    root = tmp_path / "raw" / "mars" / "msl-images"
    (root / "calibrated").mkdir(parents=True)
    outside = tmp_path / "x.png"
    Image.fromarray(np.zeros((200, 200, 3), np.uint8)).save(outside)
    Image.fromarray(np.zeros((200, 200, 3), np.uint8)).save(root / "calibrated" / "a.JPG")
    (root / "train-calibrated-shuffled.txt").write_text("calibrated/a.JPG 1\n../../../x.png 2\n")
    with pytest.raises(util.UserError, match=r"lists '../../../x.png', outside the archive's folder") as err:
        mars._listed(root, ("train",))
    assert "\n" not in str(err.value)
    (root / "train-calibrated-shuffled.txt").write_text("calibrated/a.JPG 1\n")
    assert [image.name for image in mars._listed(root, ("train",))] == ["calibrated/a.JPG"]
