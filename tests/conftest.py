"""Shared test fixtures: benchmark sets, the shared data, small image folders, a local HTTP server."""

from __future__ import annotations

import hashlib
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # read-only, never copied into the repo
# Where the standard benchmark sets are found: `python3 download.py benchmarks`, or the shared data beside the repo.
BENCHMARK_ROOTS = (REPO / "datasets" / "benchmark", SHARED_DATA / "benchmark")

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


class FileServer:
    """What the test HTTP server serves, and what it was asked.

    - ``files``: URL path -> bytes or a Path to send;
    - ``cut_once``: URL paths whose next transfer stops half-way (the connection is
      closed after half the body), once each;
    - ``ignore_range``: URL paths answered in full (200) even to a Range request;
    - ``always_short``: URL paths whose body is always cut short (a broken server);
    - ``no_length``: URL paths answered without Content-Length (the end of the body is the close);
    - ``no_validator``: URL paths answered without ETag (every other answer has a strong ETag of
      the content, and a Range request whose If-Range differs from it gets the whole file, 200);
    - ``requests``: (path, Range header or None, status) of every GET.
    """

    def __init__(self):
        self.files: dict[str, bytes | Path] = {}
        self.cut_once: set[str] = set()
        self.ignore_range: set[str] = set()
        self.always_short: set[str] = set()
        self.no_validator: set[str] = set()
        self.no_length: set[str] = set()
        self.requests: list[tuple[str, str | None, int]] = []
        self.url = ""

    def add(self, path: str, content: bytes | Path) -> str:
        """Serve ``content`` at ``path`` (starting with /); return its full URL."""
        self.files[path] = content
        return self.url + path


def _handler(server: FileServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest's output clean
            pass

        def do_GET(self):
            path = self.path.split("?")[0]
            content = server.files.get(path)
            if content is None:
                server.requests.append((path, self.headers.get("Range"), 404))
                self.send_error(404)
                return
            body = content.read_bytes() if isinstance(content, Path) else content
            etag = None if path in server.no_validator else '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
            start, status = 0, 200
            range_header = self.headers.get("Range")
            match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
            if_range = self.headers.get("If-Range")
            if match and if_range is not None and if_range != etag:
                match = None  # RFC 9110: the validator does not match, so the whole (new) file
            if match and path not in server.ignore_range:
                start = int(match.group(1))
                if start >= len(body):
                    server.requests.append((path, range_header, 416))
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            server.requests.append((path, range_header, status))
            self.send_response(status)
            self.send_header("Content-Type", "application/zip")
            if path not in server.no_length:
                self.send_header("Content-Length", str(len(body) - start))
            else:
                self.close_connection = True
            if etag:
                self.send_header("ETag", etag)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.end_headers()
            payload = body[start:]
            if path in server.cut_once or path in server.always_short:
                server.cut_once.discard(path)
                payload = payload[: len(payload) // 2]
                self.close_connection = True
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def http_server():
    """A threaded HTTP server on 127.0.0.1 (a free port) serving a FileServer's files."""
    files = FileServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(files))
    files.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield files
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def fast_retries(monkeypatch):
    """Retry downloads without waiting."""
    from download_module import fetch

    monkeypatch.setattr(fetch, "BACKOFF_S", 0.0)
    monkeypatch.setattr(fetch, "TIMEOUT_S", 10.0)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA}: the shared test data is not there")
    return SHARED_DATA


@pytest.fixture(scope="session")
def benchmark_root() -> Path:
    """The folder holding Set5 and Set14 (HR images); skips where neither root has them."""
    for root in BENCHMARK_ROOTS:
        if (root / "Set5").is_dir() and (root / "Set14").is_dir():
            return root
    pytest.skip("no Set5/Set14 in datasets/benchmark (python3 download.py benchmarks) or ../shared/data/benchmark")


@pytest.fixture(scope="session")
def small_sets(tmp_path_factory) -> Path:
    """Two benchmark-style folders of HR images every clone has (scikit-image's): Tiny5 (3 RGB) and Grey (1 L)."""
    from PIL import Image
    from skimage import data

    root = tmp_path_factory.mktemp("benchmark")
    (root / "Tiny5").mkdir()
    (root / "Grey").mkdir()
    for name, image in (("astronaut", data.astronaut()), ("coffee", data.coffee()), ("chelsea", data.chelsea())):
        Image.fromarray(image[:96, :120]).save(root / "Tiny5" / f"{name}.png")
    Image.fromarray(data.camera()[:64, :80]).save(root / "Grey" / "camera.png")
    return root


@pytest.fixture(autouse=True, scope="session")
def runtime_cache(tmp_path_factory):
    """enhance.py's converted models (``--runtime``, util/inference/runtimes.py) go to a folder of the
    test session, never to the user's ~/.cache; child processes inherit it."""
    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg_cache"))
    yield
    if saved is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = saved


@pytest.fixture(autouse=True)
def float32_policy():
    """Every test starts and ends under Keras's float32 policy.

    A training that stops early (a test of an error or an interruption) leaves the
    bfloat16 policy that PRECISION auto sets; the models the next test builds would
    otherwise compute in bfloat16.
    """
    yield
    keras = sys.modules.get("keras")
    if keras is not None:
        keras.mixed_precision.set_global_policy("float32")


def photo_pairs(folder: Path, train: int, test: int, factors=(2, 4, 8), noise64=True, hr_only=False) -> Path:
    """A data set in download.py's layout in ``folder``: 128-px crops of scikit-image photos and their degradations.

    Train crops come from the astronaut, test crops from the coffee cup (seeded: the same
    patches on every run); ``factors``: the bicubic SR inputs written; ``noise64``: the
    prototype's noisy pairs; ``hr_only``: the HR patches alone (what synthetic tasks need).
    """
    import numpy as np
    from skimage import data

    import util

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, image, count in (("train", data.astronaut(), train), ("test", data.coffee(), test)):
        corners = rng.integers(0, np.array(image.shape[:2]) - 128, size=(count, 2))
        hr = np.stack([image[y : y + 128, x : x + 128] for y, x in corners])
        np.save(folder / f"{split}_hr.npy", hr)
        if hr_only:
            continue
        for factor in factors:
            np.save(folder / f"{split}_sr{factor}.npy", util.bicubic_downscale(hr, factor, batch=True))
        if noise64:
            noisy = np.clip(hr + rng.normal(0, 64, hr.shape), 0, 255).round().astype(np.uint8)
            np.save(folder / f"{split}_noise64.npy", noisy)
    return folder
