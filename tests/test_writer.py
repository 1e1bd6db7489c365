"""download_module.writer: the .npy files of a data set folder, written under temporary names, and its manifest."""

import json

import numpy as np
import pytest

import util
from download_module import writer


def test_compact_json_keeps_rows_on_one_line():
    obj = {"patches": [[1, 2, 3], [4, -5, 6]], "name": "x", "nested": {"sizes": [[1.5, 2]]}}
    text = writer.compact_json(obj)
    assert json.loads(text) == obj
    assert "[1, 2, 3]" in text and "[4, -5, 6]" in text


def test_npy_files_are_renamed_when_complete_and_removed_when_not(tmp_path):
    layout = writer.npy_layout({"train": 3, "test": 2}, {"hr": ((4, 4, 1), "float32"), "mask": ((4, 4, 1), "uint8")})
    assert layout["test"]["mask"] == writer.NpyFile("test_mask.npy", (2, 4, 4, 1), "uint8")
    assert writer.npy_bytes(layout) == 5 * 16 * 4 + 5 * 16
    with writer.npy_files(tmp_path, layout["train"]) as arrays:
        arrays["hr"][:] = 1.5
        assert sorted(p.name.split(".")[1] for p in tmp_path.iterdir()) == ["train_hr", "train_mask"]  # temporaries
    assert np.load(tmp_path / "train_hr.npy").tolist() == np.full((3, 4, 4, 1), 1.5).tolist()
    with pytest.raises(RuntimeError), writer.npy_files(tmp_path, layout["test"]):
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_hr.npy", "train_mask.npy"]


def test_prepare_removes_temporaries_and_the_old_manifest(tmp_path, capsys):
    (tmp_path / "test_regions").mkdir()
    (tmp_path / ".train_hr.x1.part.npy").write_bytes(b"0")
    (tmp_path / "test_regions" / ".a.x2.part.tif").write_bytes(b"0")
    writer.write_manifest(tmp_path, {"files": {"train_hr": {"file": "train_hr.npy"}}})
    assert writer.listed_files(tmp_path) == {"train_hr.npy"}
    writer.prepare(tmp_path, 0, quiet_stale=("test_regions/.*.part.*",))
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
    assert "removed 1 temporary file(s)" in capsys.readouterr().err
    with pytest.raises(util.UserError, match=r"the pairs need 1024.00 GiB and the disk has .* GiB free"):
        writer.prepare(tmp_path, 2**40)


def test_disk_errors_are_one_line_naming_the_folder(tmp_path):
    import errno

    full = r"^.*: the disk is full \(No space left\); free space"
    with pytest.raises(util.UserError, match=full) as err, writer.disk_errors(tmp_path):
        raise OSError(errno.ENOSPC, "No space left")
    assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)
    refused = r"dataset folder .*: cannot write there: permission denied"
    with pytest.raises(util.UserError, match=refused), writer.disk_errors(tmp_path):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "x"))
    with pytest.raises(OSError, match="other"), writer.disk_errors(tmp_path):
        raise OSError(errno.EIO, "other")
