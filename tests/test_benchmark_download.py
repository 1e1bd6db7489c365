"""download.py benchmarks and the tar / checksum parts of download_module/fetch.py.

The archive is a small copy of EDSR's benchmark.tar built here (benchmark/<set>/HR/*.png
beside benchmark/<set>/LR_bicubic/X2..X4/), served from 127.0.0.1 with the checksum
monkeypatched to its own; the set sizes are monkeypatched down to a few images.
"""

import hashlib
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import download
import util
from download_module import benchmarks, fetch

REPO = Path(__file__).resolve().parents[1]
SMALL_SETS = {"Set5": ("Set5", 2), "Set14": ("Set14", 3), "BSD100": ("B100", 2), "Urban100": ("Urban100", 2)}
HR_SIDE = 24


def png_bytes(side: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def add_file(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tf.addfile(info, io.BytesIO(data))


def add_dir(tf: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tf.addfile(info)


def edsr_archive(path: Path, sets=SMALL_SETS, lr_names="edsr") -> dict[str, dict[str, bytes]]:
    """Write a benchmark.tar laid out as EDSR's; return {archive set folder: {HR file name: bytes}}.

    ``lr_names``: "edsr" names the LR files like the real archive (babyx2.png); "same" gives
    them the HR names, so that only the folder tells them apart.
    """
    hr = {}
    with tarfile.open(path, "w") as tf:
        add_dir(tf, "benchmark")
        for seed, (in_archive, count) in enumerate(sets.values()):
            base = f"benchmark/{in_archive}"
            for folder in (base, f"{base}/HR", f"{base}/LR_bicubic"):
                add_dir(tf, folder)
            hr[in_archive] = {f"img_{i:03d}.png": png_bytes(HR_SIDE, 100 * seed + i) for i in range(count)}
            for name, data in hr[in_archive].items():
                add_file(tf, f"{base}/HR/{name}", data)
            for scale in (2, 3, 4):
                add_dir(tf, f"{base}/LR_bicubic/X{scale}")
                for i, name in enumerate(hr[in_archive]):
                    lr_name = name if lr_names == "same" else name.replace(".png", f"x{scale}.png")
                    add_file(tf, f"{base}/LR_bicubic/X{scale}/{lr_name}", png_bytes(HR_SIDE // scale, 7 + i))
    return hr


@pytest.fixture
def small_sets(monkeypatch):
    monkeypatch.setattr(benchmarks, "SETS", SMALL_SETS)


@pytest.fixture
def served(tmp_path, http_server, small_sets, monkeypatch, fast_retries):
    """A fixture benchmark.tar at <server>/mirror/benchmark.tar, with its md5 as the checksum."""
    archive = tmp_path / "mirror" / benchmarks.ARCHIVE
    archive.parent.mkdir()
    hr = edsr_archive(archive)
    monkeypatch.setattr(benchmarks, "CHECKSUM", "md5:" + hashlib.md5(archive.read_bytes()).hexdigest())
    http_server.add("/mirror/benchmark.tar", archive)
    return hr


def run_benchmarks(http_server, out: Path, *extra: str) -> None:
    download.main(["benchmarks", "--url", http_server.url + "/mirror/", "--out", str(out), *extra])


def tree(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_sets_land_in_benchmark_folders_with_only_hr_images_then_nothing_to_do(tmp_path, http_server, served, capsys):
    out = tmp_path / "out"
    run_benchmarks(http_server, out)
    for name, (in_archive, count) in SMALL_SETS.items():
        folder = out / "benchmark" / name
        assert sorted(p.name for p in folder.iterdir()) == sorted(served[in_archive]), name
        assert len(served[in_archive]) == count
        for path in folder.iterdir():
            assert path.read_bytes() == served[in_archive][path.name]
    assert sorted(p.name for p in (out / "benchmark").iterdir()) == sorted(SMALL_SETS)  # no temporary folder left
    assert not list(out.rglob("*.npy"))
    assert (out / "downloads" / "benchmark.tar").exists()
    printed = capsys.readouterr().out
    assert "benchmark: wrote Set5, Set14, BSD100, Urban100 (HR images only)" in printed
    assert "benchmark/Set14: 3 Set14 HR images (PNG)" in printed

    before, requests = tree(out), len(http_server.requests)
    run_benchmarks(http_server, out)
    assert tree(out) == before and len(http_server.requests) == requests
    printed = capsys.readouterr().out
    assert "benchmark: up to date, nothing to fetch" in printed and "benchmark/BSD100: 2 BSD100 HR images" in printed

    (out / "downloads" / "benchmark.tar").unlink()  # not needed once the sets are there
    run_benchmarks(http_server, out)
    assert len(http_server.requests) == requests


def test_default_out_url_and_published_set_sizes():
    args = download.parse_args(["benchmarks"])
    assert args.out == REPO / "datasets" and args.url is None
    assert benchmarks.set_folders(args.out)["Set5"] == REPO / "datasets" / "benchmark" / "Set5"
    assert fetch.archive_url(None, benchmarks.URL, benchmarks.ARCHIVE) == benchmarks.URL
    assert {name: count for name, (_, count) in benchmarks.SETS.items()} == {
        "Set5": 5,
        "Set14": 14,
        "BSD100": 100,
        "Urban100": 100,
    }
    assert benchmarks.SETS["BSD100"][0] == "B100"  # EDSR's folder name


def test_a_transfer_cut_half_way_resumes(tmp_path, http_server, served):
    http_server.cut_once.add("/mirror/benchmark.tar")
    out = tmp_path / "out"
    run_benchmarks(http_server, out)
    statuses = [(rng is not None, status) for _, rng, status in http_server.requests]
    assert statuses == [(False, 200), (True, 206)]
    assert len(list((out / "benchmark" / "Urban100").iterdir())) == 2


def test_the_archive_url_itself_works_as_mirror(tmp_path, http_server, served):
    download.main(["benchmarks", "--url", http_server.url + "/mirror/benchmark.tar", "--out", str(tmp_path)])
    assert len(list((tmp_path / "benchmark" / "Set5").iterdir())) == 2


def test_checksum_mismatch_is_one_error_and_leaves_no_file(tmp_path, http_server, served, monkeypatch):
    monkeypatch.setattr(benchmarks, "CHECKSUM", "md5:" + "0" * 32)
    out = tmp_path / "out"
    with pytest.raises(util.UserError) as err:
        run_benchmarks(http_server, out)
    message = str(err.value)
    actual = hashlib.md5((tmp_path / "mirror" / "benchmark.tar").read_bytes()).hexdigest()
    assert "\n" not in message
    assert f"benchmark.tar: md5 checksum mismatch (expected {'0' * 32}, got {actual})" in message
    assert not (out / "downloads" / "benchmark.tar").exists()
    assert not (out / "downloads" / "benchmark.tar.part").exists()
    assert not (out / "benchmark").exists()


def test_cli_checksum_mismatch_is_one_line_on_stderr(tmp_path, http_server, small_sets):
    # the real md5 against the fixture archive: the subprocess needs no monkeypatching
    archive = tmp_path / "benchmark.tar"
    edsr_archive(archive)
    http_server.add("/m/benchmark.tar", archive)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(REPO / "download.py"), "benchmarks", "--url", http_server.url + "/m/", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "md5 checksum mismatch" in lines[0]
    assert benchmarks.CHECKSUM.split(":")[1] in lines[0]
    assert not (out / "downloads" / "benchmark.tar").exists()


@pytest.mark.parametrize("lr_names", ["edsr", "same"])
def test_lr_folders_never_end_up_among_the_references(tmp_path, http_server, served, lr_names, monkeypatch):
    archive = tmp_path / "mirror" / benchmarks.ARCHIVE
    hr = edsr_archive(archive, lr_names=lr_names)
    monkeypatch.setattr(benchmarks, "CHECKSUM", "md5:" + hashlib.md5(archive.read_bytes()).hexdigest())
    out = tmp_path / "out"
    run_benchmarks(http_server, out)
    for name, (in_archive, _) in SMALL_SETS.items():
        for path in (out / "benchmark" / name).rglob("*"):
            assert path.is_file() and path.parent == out / "benchmark" / name
            assert path.read_bytes() == hr[in_archive][path.name]
            assert Image.open(path).size == (HR_SIDE, HR_SIDE)
    assert not [p for p in out.rglob("*") if "LR" in p.relative_to(out).as_posix() or "x2" in p.name]


def test_an_archive_with_other_counts_fails_in_one_line_and_renames_nothing(tmp_path, http_server, served, monkeypatch):
    monkeypatch.setattr(benchmarks, "SETS", {**SMALL_SETS, "Urban100": ("Urban100", 3)})
    out = tmp_path / "out"
    with pytest.raises(util.UserError, match=r"benchmark/Urban100/HR/ holds 2 PNG images, but Urban100 has 3") as err:
        run_benchmarks(http_server, out)
    assert "\n" not in str(err.value)
    assert list((out / "benchmark").iterdir()) == []  # Set5 etc. were complete, but none was renamed


def test_only_missing_sets_are_fetched_and_a_wrong_folder_is_an_error(tmp_path, http_server, served, capsys):
    out = tmp_path / "out"
    run_benchmarks(http_server, out)
    set5 = tree(out / "benchmark" / "Set5")
    for name in ("Set14", "Urban100"):
        for path in (out / "benchmark" / name).iterdir():
            path.unlink()
        (out / "benchmark" / name).rmdir()
    capsys.readouterr()
    run_benchmarks(http_server, out)  # the archive is still in downloads/: no request
    assert "wrote Set14, Urban100" in capsys.readouterr().out
    assert tree(out / "benchmark" / "Set5") == set5
    assert len(list((out / "benchmark" / "Set14").iterdir())) == 3

    next((out / "benchmark" / "BSD100").iterdir()).unlink()
    with pytest.raises(util.UserError, match=r"BSD100: holds 1 PNG images, but BSD100 has 2; move the folder away"):
        run_benchmarks(http_server, out)


@pytest.mark.parametrize("flags", [["--train", "5"], ["--seed", "1"], ["--name", "x"], ["--folder", "."]])
def test_patch_options_do_not_apply(tmp_path, flags):
    with pytest.raises(util.UserError, match=r"benchmarks takes no --\w+: it fetches the evaluation sets whole"):
        download.main(["benchmarks", "--out", str(tmp_path), *flags])
    assert list(tmp_path.iterdir()) == []


def test_folder_name_benchmark_is_reserved(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(util.UserError, match=r"--name 'benchmark'"):
        download.main(["--folder", str(tmp_path / "photos"), "--name", "benchmark", "--out", str(tmp_path)])


# ---- fetch: checksums -------------------------------------------------------------------

BODY = bytes(range(256)) * 512


def test_download_checks_the_checksum_before_the_rename(tmp_path, http_server, fast_retries):
    url = http_server.add("/a.tar", BODY)
    good = "sha256:" + hashlib.sha256(BODY).hexdigest()
    dest = fetch.download(url, tmp_path / "a.tar", checksum=good)
    assert dest.read_bytes() == BODY
    fetch.download(url, dest, checksum=good)  # there and right: no request
    assert len(http_server.requests) == 1

    bad = "sha256:" + "f" * 64
    with pytest.raises(util.UserError, match=r"a.tar: sha256 checksum mismatch \(expected f{64}, got [0-9a-f]{64}\)"):
        fetch.download(url, dest, checksum=bad)  # an existing file is checked too
    assert not dest.exists()
    with pytest.raises(util.UserError, match=r"checksum mismatch"):
        fetch.download(url, dest, checksum=bad)
    assert not dest.exists() and not dest.with_name("a.tar.part").exists()
    with pytest.raises(ValueError, match=r"algorithm:hexdigest"):
        fetch.download(url, dest, checksum="nohash:00")


def test_archive_url_takes_tar_archives_as_the_archive_itself():
    assert fetch.archive_url("http://m/x.tar", "https://x/y.tar", "y.tar") == "http://m/x.tar"
    assert fetch.archive_url("http://m/x.tar.gz", "https://x/y.tar", "y.tar") == "http://m/x.tar.gz"
    assert fetch.archive_url("http://m/d", "https://x/y.tar", "y.tar") == "http://m/d/y.tar"


# ---- fetch: tar extraction -------------------------------------------------------------


def make_tar(path: Path, entries: dict[str, bytes], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in entries.items():
            add_file(tf, name, data)
    return path


@pytest.mark.parametrize("evil", ["../evil.txt", "a/../../evil.txt", "/abs/evil.txt"])
def test_extract_tar_refuses_members_outside_the_target(tmp_path, evil):
    archive = make_tar(tmp_path / "bad.tar", {"ok/fine.txt": b"fine", evil: b"evil"})
    target = tmp_path / "raw" / "x"
    with pytest.raises(util.UserError, match=r"bad.tar: refusing to extract entry .*evil.txt"):
        fetch.extract_tar(archive, target)
    assert not target.exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "raw" / "evil.txt").exists()


def test_extract_tar_refuses_a_link_pointing_outside(tmp_path):
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tf:
        add_file(tf, "ok/fine.txt", b"fine")
        link = tarfile.TarInfo("ok/escape")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
        tf.addfile(link)
    with pytest.raises(util.UserError, match=r"link.tar: refusing to extract entry 'ok/escape'"):
        fetch.extract_tar(archive, tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


@pytest.mark.parametrize(("suffix", "mode"), [(".tar", "w"), (".tar.gz", "w:gz"), (".tgz", "w:gz")])
def test_extract_tar_once_then_nothing(tmp_path, suffix, mode):
    archive = make_tar(tmp_path / f"good{suffix}", {"top/a.txt": b"a", "top/sub/b.txt": b"b"}, mode)
    target = fetch.extract(archive, tmp_path / "raw")
    assert (target / "top" / "sub" / "b.txt").read_bytes() == b"b"
    (target / "top" / "a.txt").write_bytes(b"changed")
    fetch.extract(archive, tmp_path / "raw")  # the marker says it is done
    assert (target / "top" / "a.txt").read_bytes() == b"changed"


def test_extract_tar_corrupt_archive_is_a_user_error(tmp_path):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tf:
        add_file(tf, "a.bin", np.random.default_rng(0).bytes(100_000))
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    with pytest.raises(util.UserError, match=r"broken.tar.gz: not a readable tar archive.*delete it"):
        fetch.extract_tar(archive, tmp_path / "raw")


def bsds_archive(path: Path, ids, extra=("2092", "8023")) -> dict[str, np.ndarray]:
    """A BSDS300-images.tgz laid out as Berkeley's: BSDS300/images/{train,test}/<id>.jpg; returns the test pixels."""
    pixels = {}
    with tarfile.open(path, "w:gz") as tf:
        for folder in ("BSDS300", "BSDS300/images", "BSDS300/images/test", "BSDS300/images/train"):
            add_dir(tf, folder)
        for i, image_id in enumerate([*ids, *extra]):
            rng = np.random.default_rng(i)
            image = rng.integers(0, 256, (12, 18, 3), dtype=np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="JPEG", quality=90)
            add_file(tf, f"BSDS300/images/test/{image_id}.jpg", buffer.getvalue())
            pixels[image_id] = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        add_file(tf, "BSDS300/images/train/1.jpg", b"not used")
    return pixels


def test_cbsd68_comes_from_the_bsds300_archive_as_png(http_server, tmp_path, capsys):
    from download_module import cbsd68

    archive = tmp_path / "served.tgz"
    pixels = bsds_archive(archive, cbsd68.IDS)
    http_server.files["/mirror/BSDS300-images.tgz"] = archive
    out = tmp_path / "datasets"
    download.main(["cbsd68", "--url", f"{http_server.url}/mirror/", "--out", str(out)])
    folder = out / "benchmark" / "CBSD68"
    written = sorted(p.stem for p in folder.iterdir())
    assert written == sorted(cbsd68.IDS)  # the 68, not the other test images
    for image_id in ("101085", "3096"):
        np.testing.assert_array_equal(np.asarray(Image.open(folder / f"{image_id}.png")), pixels[image_id])
    assert "wrote 68 images" in capsys.readouterr().out
    download.main(["cbsd68", "--url", f"{http_server.url}/mirror/", "--out", str(out)])
    assert "up to date" in capsys.readouterr().out and len(http_server.requests) == 1


def test_cbsd68_archive_without_the_images_writes_nothing(http_server, tmp_path):
    from download_module import cbsd68

    archive = tmp_path / "served.tgz"
    bsds_archive(archive, cbsd68.IDS[:-1])
    http_server.files["/BSDS300-images.tgz"] = archive
    out = tmp_path / "datasets"
    with pytest.raises(util.UserError, match="lacks 1 of the 68 CBSD68 images .e.g. 351093.jpg.") as err:
        download.main(["cbsd68", "--url", f"{http_server.url}/BSDS300-images.tgz", "--out", str(out)])
    assert "\n" not in str(err.value)
    assert [p.name for p in (out / "benchmark").iterdir()] == []  # no set folder, no temporary folder
    with pytest.raises(util.UserError, match="cbsd68 takes no --train"):
        download.main(["cbsd68", "--train", "5", "--out", str(out)])
