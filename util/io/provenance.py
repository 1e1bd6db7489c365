"""What an enhanced file says about itself: it is a model's output, never a measurement.

``model_provenance(model_path, info)`` builds the record once per model (its file's name and
SHA-256, the SuiteInfo's task, scale and architecture, the suite's version); ``for_input``
stamps it with each input's name and the UTC time of the output. The writers take it as an
optional argument (None: they write none of it) and put it where each format has room:

- PNG (``util.io.images.write_png``): text chunks ``Software``, ``Description`` (``summary``),
  ``Creation Time`` and ``provenance`` (the fields as JSON); tEXt, or iTXt for text beyond Latin-1;
- GeoTIFF (``util.io.rasters.RasterWriter``): ``TIFFTAG_SOFTWARE`` and ``TIFFTAG_IMAGEDESCRIPTION``,
  and the fields in the GDAL metadata domain ``PROVENANCE`` (``rasterio``: ``src.tags(ns="PROVENANCE")``);
- NetCDF: the CF global attributes ``history`` (the input's, with one timestamped line appended),
  ``source`` (the model) and ``comment`` (``summary``), and ``provenance`` (the fields as JSON);
- ``.npz``: a 0-d string array ``provenance`` (the fields as JSON), which the suite's reader
  passes over (it takes 2-D grids and numeric scalars);
- ESRI ASCII grids and ``.npy``: nothing; neither format has a place for text.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SOFTWARE = "Image enhancement from little data"  # the suite's name, as its README's title
REPO = Path(__file__).resolve().parents[2]
SHA256_DIGITS = 12  # of the model file's SHA-256: enough to tell two models apart, short enough to read


@dataclass(frozen=True)
class Provenance:
    """What made an output: ``model`` (the file's name), ``model_sha256`` (the first 12 hex digits of its
    SHA-256), the SuiteInfo's ``task``, ``scale`` and ``architecture``, the suite's version, the UTC time
    ``created`` (ISO 8601) and the ``input`` file's name ("" until ``for_input``)."""

    model: str
    model_sha256: str
    task: str
    scale: int
    architecture: str
    suite_version: str
    created: str
    input: str = ""

    def for_input(self, path) -> Provenance:
        """This record for the output of the input file ``path``, made now."""
        return dataclasses.replace(self, input=Path(path).name, created=utc_now())

    @property
    def software(self) -> str:
        """The suite and its version, e.g. ``Image enhancement from little data 0.1.0+g16ca5f4df574``."""
        return f"{SOFTWARE} {self.suite_version}"

    @property
    def model_text(self) -> str:
        """The model in one phrase: ``dem_x4.keras (sha256 1a2b3c4d5e6f; EDSR-lite ...; task sr4, x4)``."""
        return f"{self.model} (sha256 {self.model_sha256}; {self.architecture}; task {self.task}, x{self.scale})"

    def summary(self) -> str:
        """One sentence that says the file is a model's output, what made it and when."""
        made = f"{self.input} enhanced" if self.input else "Enhanced"
        return (
            f"A model's output, not a measurement: {made} by {self.model_text} with {self.software} on {self.created}"
        )

    def history_line(self) -> str:
        """A line for NetCDF's ``history`` (CF: a timestamp first, then the program and what it did)."""
        made = f": {self.input} enhanced" if self.input else ": enhanced"
        return f"{self.created} {self.software}{made} by {self.model_text}"

    def fields(self) -> dict[str, str]:
        """Every field as text, for the formats whose metadata are strings."""
        return {key: str(value) for key, value in dataclasses.asdict(self).items()}

    def to_json(self) -> str:
        """The fields as one line of JSON (ASCII: any file name fits any text slot)."""
        return json.dumps(dataclasses.asdict(self), ensure_ascii=True)


def model_provenance(model_path, info: dict) -> Provenance:
    """The record of outputs of the model file ``model_path`` whose SuiteInfo is ``info`` (util.models.layers)."""
    model_path = Path(model_path)
    with open(model_path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()[:SHA256_DIGITS]
    return Provenance(
        model=model_path.name,
        model_sha256=digest,
        task=str(info["task"]),
        scale=int(info["scale"]),
        architecture=architecture_text(info),
        suite_version=suite_version(),
        created=utc_now(),
    )


def architecture_text(info: dict) -> str:
    """The SuiteInfo's architecture, and that the output keeps the LR block means when it does (CONSERVE)."""
    architecture = str(info.get("architecture", ""))
    return f"{architecture}, LR block means conserved" if info.get("conserve") else architecture


VERSION = "0.1.0"  # the suite's version, the one place it is set (util.__version__)


def utc_now() -> str:
    """The UTC time to the second, ISO 8601: ``2025-01-31T12:00:00Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def suite_version() -> str:
    """``VERSION``, with the commit as a local version (``0.1.0+g16ca5f4df574``, ``.dirty`` when the
    checkout has changes) when the suite is a git checkout and git runs; the plain version otherwise."""
    if not (REPO / ".git").exists():  # a copy without git, or the suite vendored into another repository
        return VERSION
    try:
        commit = subprocess.run(  # the commit alone, whatever the tags: --exclude leaves none to describe by
            ["git", "-C", str(REPO), "describe", "--always", "--dirty=.dirty", "--abbrev=12", "--exclude=*"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):  # no git, or a broken checkout: the version alone is still true
        return VERSION
    return f"{VERSION}+g{commit}"
