"""HTTP downloads that resume and check their checksum, and zip/tar extraction that stays inside its folder.

Every source that fetches an archive goes through ``download`` and ``extract``
(``extract_zip`` or ``extract_tar``), so a new source only names its URLs and,
where one is published, the archive's checksum. Standard library only (urllib,
hashlib, zipfile, tarfile), no extra dependency.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from util import UserError

RETRIES = 5  # attempts per download, each resuming where the last one stopped
BACKOFF_S = 2.0  # wait before retry n is BACKOFF_S * 2 ** (n - 1) seconds
TIMEOUT_S = 60.0  # socket timeout of one request
CHUNK_BYTES = 1 << 20
USER_AGENT = "image-enhance-suite-download/1.0 (+urllib)"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")  # what ``extract`` reads, by file name


# ---- 1. URLs ----------------------------------------------------------------


def archive_url(mirror: str | None, default_url: str, name: str) -> str:
    """URL of archive ``name``: ``default_url`` or, with a mirror, ``<mirror>/<name>``.

    A mirror (``--url``) is the base URL of a folder holding the source's archives
    under their official names. A mirror URL that already ends like an archive
    (``.zip``, ``.tar``, ``.tar.gz``, ``.tgz``) is taken as the archive itself (handy
    for sources with a single archive).
    """
    if not mirror:
        return default_url
    if urllib.parse.urlsplit(mirror).path.lower().endswith(ARCHIVE_SUFFIXES):
        return mirror
    return mirror.rstrip("/") + "/" + urllib.parse.quote(name)


# ---- 2. Download --------------------------------------------------------------


class _Retry(Exception):
    """A transfer that failed in a way worth trying again (the .part file is kept)."""


def download(url: str, dest, checksum: str | None = None) -> Path:
    """Download ``url`` to ``dest`` unless ``dest`` exists; return ``dest``.

    The bytes go to ``dest.part`` first; an interrupted transfer resumes from it
    with an HTTP Range request, up to RETRIES attempts with exponential backoff.
    The size is checked against Content-Length (or the total of Content-Range)
    before ``dest.part`` is renamed to ``dest``, so ``dest`` is always complete.

    ``checksum`` (``"md5:<hex>"``, ``"sha256:<hex>"``: any hashlib algorithm) is
    checked on the complete file before the rename, and on a ``dest`` that is
    already there; a file that does not match is deleted and the download is a
    UserError naming the file and both digests, so no file with a wrong checksum
    keeps the final name.
    """
    dest = Path(dest)
    if checksum is not None:
        _parse_checksum(checksum)  # a malformed constant fails before any transfer
    if dest.exists():
        if checksum is not None:
            verify_checksum(dest, checksum)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error = "no attempt"
    for attempt in range(1, RETRIES + 1):
        try:
            _transfer(url, part)
            if checksum is not None:
                verify_checksum(part, checksum, name=dest)
            os.replace(part, dest)
            _validator_path(part).unlink(missing_ok=True)
            return dest
        except _Retry as err:
            last_error = str(err)
        if attempt < RETRIES:
            wait = BACKOFF_S * 2 ** (attempt - 1)
            print(f"{dest.name}: {last_error}; retrying in {wait:g} s ({attempt}/{RETRIES})", flush=True)
            time.sleep(wait)
    resume = f"run again to resume from {part}" if part.exists() else "check the URL and the network, run again"
    raise UserError(
        f"{url}: download failed after {RETRIES} attempts ({last_error}); {resume}, or put the file at {dest} yourself"
    )


def _parse_checksum(checksum: str) -> tuple[str, str]:
    algorithm, _, expected = checksum.partition(":")
    algorithm = algorithm.lower()
    if algorithm not in hashlib.algorithms_available or not re.fullmatch(r"[0-9a-fA-F]+", expected):
        raise ValueError(f"checksum {checksum!r}: give 'algorithm:hexdigest', e.g. 'sha256:...' or 'md5:...'")
    return algorithm, expected.lower()


def file_digest(path, algorithm: str) -> str:
    """Hex digest of the file at ``path`` by the hashlib ``algorithm`` (``"md5"``, ``"sha256"``...)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def verify_checksum(path, checksum: str, name=None) -> None:
    """Raise a UserError, after deleting ``path``, unless its digest is ``checksum`` (``"md5:<hex>"``).

    ``name`` is the file named in the message (default ``path``), e.g. the final name of a ``.part`` file.
    """
    path = Path(path)
    algorithm, expected = _parse_checksum(checksum)
    actual = file_digest(path, algorithm)
    if actual != expected:
        path.unlink()
        raise UserError(
            f"{name or path}: {algorithm} checksum mismatch (expected {expected}, got {actual}); "
            "the file was deleted: run again to download it again, or check --url"
        )


def _validator_path(part: Path) -> Path:
    return part.with_name(part.name + ".validator")


def _validator(headers) -> str | None:
    """The server's validator of a response (a strong ETag, else Last-Modified), for If-Range."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")


def _transfer(url: str, part: Path) -> None:
    """One attempt: append the missing bytes of ``url`` to ``part``; raise _Retry if incomplete.

    A resume sends ``If-Range`` with the validator (ETag or Last-Modified) that the first
    response gave, kept beside the .part file: a server whose file changed since answers
    with the whole new file, which replaces the old part. A part without a validator is
    not resumed (its server gave no way to tell that the file is the same).
    """
    validator_file = _validator_path(part)
    validator = validator_file.read_text() if validator_file.exists() else None
    if part.exists() and not validator:
        part.unlink()
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
        request.add_header("If-Range", validator)
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            _check_complete_after_416(err, part, offset)
            return
        if err.code >= 500 or err.code in (408, 429):
            raise _Retry(f"HTTP {err.code} {err.reason}") from None
        raise UserError(f"{url}: HTTP {err.code} {err.reason}; check the URL (--url) or try again later") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, FileNotFoundError):  # a file:// mirror without the file: retrying will not help
            raise UserError(f"{url}: no such file; check --url") from None
        raise _Retry(f"cannot connect ({reason})") from None

    with response:
        status = response.status or 200  # file:// URLs have no status
        served = _validator(response.headers)
        if status == 206 and served != validator:
            part.unlink(missing_ok=True)  # another version of the file than the part holds: start over
            raise _Retry("the file changed on the server; restarting")
        if status != 206:
            if served:
                validator_file.write_text(served)
            else:
                validator_file.unlink(missing_ok=True)
        if status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                part.unlink(missing_ok=True)  # the server sent another range: start over
                raise _Retry("server answered a different byte range; restarting")
            total = None if match.group(3) == "*" else int(match.group(3))
        else:
            if offset:
                part.unlink(missing_ok=True)  # the server ignored Range: it sends everything
                offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        _stream(response, part, offset, total)

    size = part.stat().st_size
    if total is not None and size != total:
        if size > total:
            part.unlink()
            raise _Retry(f"got {size} bytes, more than the announced {total}; restarting")
        raise _Retry(f"transfer cut off at {size} of {total} bytes")
    if total is None and _is_archive_name(part) and not _archive_is_whole(part):
        # No size announced: a connection closed early looks like the end of the file. An
        # archive says itself whether it is whole (a zip's end record, a tar's end blocks).
        raise _Retry(f"transfer ended at {size} bytes with no size announced, and the archive is cut short")


def _is_archive_name(part: Path) -> bool:
    name = part.name.removesuffix(".part").lower()
    return name.endswith((".zip", ".tar", ".tar.gz", ".tgz"))


def _archive_is_whole(part: Path) -> bool:
    name = part.name.removesuffix(".part").lower()
    if name.endswith(".zip"):
        return zipfile.is_zipfile(part)
    try:
        with tarfile.open(part) as tar:
            for _ in tar:
                pass
        return True
    except (tarfile.TarError, EOFError, OSError):
        return False


def _stream(response, part: Path, offset: int, total: int | None) -> None:
    with (
        open(part, "ab" if offset else "wb") as f,
        tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=part.stem, disable=None
        ) as bar,
    ):
        while True:
            try:
                chunk = response.read(CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as err:  # only network errors: a full disk is not retried
                raise _Retry(f"connection lost ({err or type(err).__name__})") from None
            if not chunk:
                return
            f.write(chunk)
            bar.update(len(chunk))


def _check_complete_after_416(err: urllib.error.HTTPError, part: Path, offset: int) -> None:
    """416 on a resume: the .part file may already hold every byte (a crash before the rename)."""
    match = re.match(r"bytes\s+\*/(\d+)", err.headers.get("Content-Range", "") if err.headers else "")
    if match and int(match.group(1)) == offset:
        return
    part.unlink(missing_ok=True)
    raise _Retry("server refused to resume; restarting")


# ---- 3. Extraction ----------------------------------------------------------------


def download_and_extract(url: str, archive, target, checksum: str | None = None) -> Path:
    """``download`` ``url`` to ``archive``, then ``extract`` it into ``target``; return ``target``.

    An archive deleted after its extraction (to save space) is not fetched again:
    the extracted files are used as they are.
    """
    archive, target = Path(archive), Path(target)
    if not archive.exists() and _marker(archive, target).exists():
        return target
    return extract(download(url, archive, checksum), target)


def extract(archive, target) -> Path:
    """``extract_zip`` or ``extract_tar`` by the archive's name (ARCHIVE_SUFFIXES); return ``target``."""
    archive = Path(archive)
    name = archive.name.lower()
    if name.endswith(".zip"):
        return extract_zip(archive, target)
    if name.endswith(ARCHIVE_SUFFIXES):
        return extract_tar(archive, target)
    raise UserError(f"{archive}: not a .zip, .tar, .tar.gz or .tgz archive; cannot extract it")


def _stamp(archive: Path) -> dict:
    """What the extraction marker records of the archive it was made from."""
    return {"archive": archive.name, "bytes": archive.stat().st_size}


def _marker(archive: Path, target: Path) -> Path:
    return target / f".{archive.name}.extracted"


def extract_zip(archive, target) -> Path:
    """Extract ``archive`` into ``target`` once; return ``target``.

    Entries that would land outside ``target`` (absolute paths, ``..``, drive
    letters) make the whole archive refused before anything is written. A marker
    file records a finished extraction, so a second call with the same archive
    does nothing; an interrupted one is redone.
    """
    archive, target = Path(archive), Path(target)
    marker, stamp = _marker(archive, target), _stamp(archive)
    if marker.exists() and _read_json(marker) == stamp:
        return target
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:
                _check_member(archive, target, info.filename)
            target.mkdir(parents=True, exist_ok=True)
            for info in tqdm(members, desc=f"extract {archive.name}", unit="file", disable=None):
                _extract_member(zf, info, target)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise UserError(f"{archive}: not a readable zip archive ({err}); delete it and run again") from None
    marker.write_text(json.dumps(stamp) + "\n")
    return target


def _check_member(archive: Path, target: Path, name: str) -> None:
    posix = name.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    outside = (
        posix.startswith("/")
        or re.match(r"^[A-Za-z]:", posix) is not None
        or ".." in parts
        or not (target.resolve() / posix).resolve().is_relative_to(target.resolve())
    )
    if outside:
        raise UserError(
            f"{archive}: refusing to extract entry {name!r}, it would land outside {target}; "
            "the archive is unsafe or corrupt, delete it and get it again"
        )


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    path = target / info.filename.replace("\\", "/")
    if info.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with zf.open(info) as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst, CHUNK_BYTES)
    os.replace(tmp, path)


def extract_tar(archive, target) -> Path:
    """Extract the tar ``archive`` (plain, gzip, bz2 or xz) into ``target`` once; return ``target``.

    The same rules as ``extract_zip``: every member is checked before anything is
    written, with the checks of ``extract_zip`` and tarfile's ``"data"`` filter
    (no absolute or ``..`` paths, no links pointing outside ``target``, no device
    files or pipes), and a marker records a finished extraction.
    """
    archive, target = Path(archive), Path(target)
    marker, stamp = _marker(archive, target), _stamp(archive)
    if marker.exists() and _read_json(marker) == stamp:
        return target
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = tf.getmembers()
            for member in members:
                _check_member(archive, target, member.name)
                _check_tar_member(archive, target, member)
            target.mkdir(parents=True, exist_ok=True)
            for member in tqdm(members, desc=f"extract {archive.name}", unit="file", disable=None):
                tf.extract(member, target, filter="data")
    except (tarfile.ReadError, tarfile.CompressionError, EOFError, zlib.error) as err:
        raise UserError(f"{archive}: not a readable tar archive ({err}); delete it and run again") from None
    marker.write_text(json.dumps(stamp) + "\n")
    return target


def _check_tar_member(archive: Path, target: Path, member: tarfile.TarInfo) -> None:
    try:
        tarfile.data_filter(member, str(target))
    except tarfile.FilterError as err:
        raise UserError(
            f"{archive}: refusing to extract entry {member.name!r} ({err}); "
            "the archive is unsafe or corrupt, delete it and get it again"
        ) from None


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
