"""download_module.fetch: resumable downloads and zip extraction, against a local HTTP server."""

import io
import zipfile

import pytest

import util
from download_module import fetch

BODY = bytes(range(256)) * 4096  # 1 MiB, every offset recognisable


def etag(body: bytes) -> str:
    """The test server's ETag of ``body`` (tests/conftest.py)."""
    import hashlib

    return '"' + hashlib.sha1(body).hexdigest()[:16] + '"'


def statuses(server, path):
    return [(rng, status) for p, rng, status in server.requests if p == path]


def test_download_writes_the_file_once(http_server, tmp_path, fast_retries):
    url = http_server.add("/a.zip", BODY)
    dest = tmp_path / "downloads" / "a.zip"
    assert fetch.download(url, dest) == dest
    assert dest.read_bytes() == BODY
    assert not dest.with_name("a.zip.part").exists()
    fetch.download(url, dest)  # already there: no request
    assert statuses(http_server, "/a.zip") == [(None, 200)]


def test_download_resumes_a_transfer_cut_off_half_way(http_server, tmp_path, fast_retries):
    url = http_server.add("/a.zip", BODY)
    http_server.cut_once.add("/a.zip")
    dest = fetch.download(url, tmp_path / "a.zip")
    assert dest.read_bytes() == BODY
    assert statuses(http_server, "/a.zip") == [(None, 200), (f"bytes={len(BODY) // 2}-", 206)]


def test_download_restarts_when_the_server_ignores_range(http_server, tmp_path, fast_retries):
    url = http_server.add("/a.zip", BODY)
    http_server.cut_once.add("/a.zip")
    http_server.ignore_range.add("/a.zip")
    dest = fetch.download(url, tmp_path / "a.zip")
    assert dest.read_bytes() == BODY
    assert [status for _, status in statuses(http_server, "/a.zip")] == [200, 200]


def test_download_never_leaves_a_short_file_under_its_name(http_server, tmp_path, fast_retries):
    url = http_server.add("/a.zip", BODY)
    http_server.always_short.add("/a.zip")
    dest = tmp_path / "a.zip"
    with pytest.raises(util.UserError, match=r"failed after 5 attempts .*cut off.*run again to resume"):
        fetch.download(url, dest)
    assert not dest.exists()
    assert dest.with_name("a.zip.part").exists()  # kept, so that the next run resumes
    assert len(statuses(http_server, "/a.zip")) == fetch.RETRIES


def test_download_completes_a_full_part_file_on_416(http_server, tmp_path, fast_retries):
    url = http_server.add("/a.zip", BODY)
    (tmp_path / "a.zip.part").write_bytes(BODY)  # crashed after the last byte, before the rename
    (tmp_path / "a.zip.part.validator").write_text(etag(BODY))  # what the first response said
    assert fetch.download(url, tmp_path / "a.zip").read_bytes() == BODY
    assert statuses(http_server, "/a.zip") == [(f"bytes={len(BODY)}-", 416)]


def test_download_404_is_one_clear_error_without_retries(http_server, tmp_path, fast_retries):
    with pytest.raises(util.UserError, match=r"/missing.zip: HTTP 404 .*check the URL"):
        fetch.download(http_server.url + "/missing.zip", tmp_path / "missing.zip")
    assert len(http_server.requests) == 1
    assert list(tmp_path.iterdir()) == []


def test_download_unreachable_server_retries_then_fails(tmp_path, fast_retries, monkeypatch):
    monkeypatch.setattr(fetch, "RETRIES", 2)
    with pytest.raises(util.UserError, match=r"failed after 2 attempts \(cannot connect.*check the URL"):
        fetch.download("http://127.0.0.1:9/a.zip", tmp_path / "a.zip")  # port 9 (discard): refused


def test_download_from_a_file_url(tmp_path, fast_retries):
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "a.zip").write_bytes(BODY)
    url = fetch.archive_url((tmp_path / "mirror").as_uri(), "https://x/a.zip", "a.zip")
    assert fetch.download(url, tmp_path / "a.zip").read_bytes() == BODY
    with pytest.raises(util.UserError, match=r"b.zip: no such file; check --url"):
        fetch.download(url.replace("a.zip", "b.zip"), tmp_path / "b.zip")


def test_archive_url_is_a_folder_or_the_archive():
    assert fetch.archive_url(None, "https://x/y.zip", "y.zip") == "https://x/y.zip"
    assert fetch.archive_url("http://m/data/", "https://x/y.zip", "y.zip") == "http://m/data/y.zip"
    assert fetch.archive_url("http://m/data", "https://x/y.zip", "y.zip") == "http://m/data/y.zip"
    assert fetch.archive_url("http://m/other.zip?dl=1", "https://x/y.zip", "y.zip") == "http://m/other.zip?dl=1"


def make_zip(path, entries: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize("evil", ["../evil.txt", "a/../../evil.txt", "/abs/evil.txt", "C:/evil.txt", "..\\evil.txt"])
def test_extract_refuses_entries_outside_the_target(tmp_path, evil):
    archive = make_zip(tmp_path / "bad.zip", {"ok/fine.txt": b"fine", evil: b"evil"})
    target = tmp_path / "raw" / "x"
    with pytest.raises(util.UserError, match=r"bad.zip: refusing to extract entry .*evil.txt.* outside"):
        fetch.extract_zip(archive, target)
    assert not target.exists()  # checked before anything is written
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "raw" / "evil.txt").exists()


def test_extract_once_then_nothing(tmp_path):
    archive = make_zip(tmp_path / "good.zip", {"top/a.txt": b"a", "top/sub/b.txt": b"b", "top/empty/": b""})
    target = fetch.extract_zip(archive, tmp_path / "raw")
    assert (target / "top" / "sub" / "b.txt").read_bytes() == b"b"
    (target / "top" / "a.txt").write_bytes(b"changed")
    fetch.extract_zip(archive, tmp_path / "raw")  # the marker says it is done
    assert (target / "top" / "a.txt").read_bytes() == b"changed"


def test_extract_corrupt_zip_is_a_user_error(tmp_path):
    data = io.BytesIO()
    make_zip(data, {"a.txt": b"x" * 1000})
    archive = tmp_path / "broken.zip"
    archive.write_bytes(data.getvalue()[:-30])  # the central directory is cut
    with pytest.raises(util.UserError, match=r"broken.zip: not a readable zip archive.*delete it"):
        fetch.extract_zip(archive, tmp_path / "raw")


def test_download_and_extract_needs_no_archive_once_extracted(http_server, tmp_path, fast_retries):
    data = tmp_path / "served.zip"
    make_zip(data, {"top/a.txt": b"a"})
    url = http_server.add("/x.zip", data)
    archive, target = tmp_path / "downloads" / "x.zip", tmp_path / "raw"
    assert (fetch.download_and_extract(url, archive, target) / "top" / "a.txt").read_bytes() == b"a"
    archive.unlink()  # deleted to save space
    fetch.download_and_extract(url, archive, target)
    assert len(http_server.requests) == 1 and not archive.exists()


def test_a_file_changed_on_the_server_is_downloaded_again_whole(http_server, tmp_path, fast_retries):
    new = bytes(reversed(BODY))
    url = http_server.add("/a.zip", new)
    (tmp_path / "a.zip.part").write_bytes(BODY[: len(BODY) // 2])  # half of the old version
    (tmp_path / "a.zip.part.validator").write_text(etag(BODY))
    dest = fetch.download(url, tmp_path / "a.zip")
    assert dest.read_bytes() == new  # never half old, half new
    assert statuses(http_server, "/a.zip") == [(f"bytes={len(BODY) // 2}-", 200)]
    assert not (tmp_path / "a.zip.part.validator").exists()


def test_a_part_without_a_validator_is_not_resumed(http_server, tmp_path, fast_retries):
    url = http_server.add("/a.zip", BODY)
    http_server.no_validator.add("/a.zip")
    http_server.cut_once.add("/a.zip")
    dest = fetch.download(url, tmp_path / "a.zip")
    assert dest.read_bytes() == BODY
    assert statuses(http_server, "/a.zip") == [(None, 200), (None, 200)]  # no way to tell it is the same file


def test_an_archive_cut_short_without_content_length_is_not_taken_as_complete(http_server, tmp_path, fast_retries):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("a/b.bin", BODY)
    archive = buffer.getvalue()
    url = http_server.add("/a.zip", archive)
    http_server.no_length.add("/a.zip")
    http_server.cut_once.add("/a.zip")
    dest = fetch.download(url, tmp_path / "a.zip")
    assert dest.read_bytes() == archive
    assert [status for _, status in statuses(http_server, "/a.zip")] == [200, 206]  # the cut one was resumed
