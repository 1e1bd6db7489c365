"""download_module.pairs: crops, degradations, the split of a folder, the dataset folder."""

import numpy as np
import pytest
from PIL import Image

import util
from download_module import pairs
from download_module.pairs import HRImage


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    """Three scikit-image photographs as PNG files."""
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for name in ("astronaut", "coffee", "chelsea"):
        path = folder / f"{name}.png"
        Image.fromarray(getattr(data, name)()).save(path)
        paths.append(path)
    return paths


def images_of(paths):
    return [HRImage(p, p.name) for p in paths]


def test_degrade_shapes_and_bicubic():
    hr = np.random.default_rng(1).integers(0, 256, (3, 128, 128, 3), dtype=np.uint8)
    out = pairs.degrade(hr, np.random.default_rng(0))
    assert set(out) == set(pairs.DEGRADATIONS)
    for kind, array in out.items():
        assert array.dtype == np.uint8 and array.shape == (3, *pairs.patch_shape(kind)), kind
    for factor in (2, 4, 8):
        assert np.array_equal(out[f"sr{factor}"], util.bicubic_downscale(hr, factor, batch=True))
    assert out["sr8"].shape[1:] == (16, 16, 3) and out["x4noise64"].shape[1:] == (32, 32, 3)


def test_noise_is_gaussian_sigma_64_clipped_and_rounded():
    gray = np.full((4, 128, 128, 3), 128, np.uint8)
    noisy = pairs.add_noise(gray, np.random.default_rng(0)).astype(np.float64)
    inside = noisy[(noisy > 0) & (noisy < 255)] - 128  # values not clipped
    assert abs(inside.mean()) < 1.0
    assert 58 < noisy.std() < 64  # sigma 64, slightly less where clipped at 0 / 255
    assert 0.02 < np.mean(noisy == 255) < 0.04  # P(N(0, 64) >= 126.5) = 2.4%
    same = pairs.add_noise(gray, np.random.default_rng(0))
    assert np.array_equal(same, noisy.astype(np.uint8))


def test_blur_is_a_5x5_gaussian_sigma_1_1_with_reflected_borders():
    img = np.random.default_rng(2).integers(0, 256, (2, 20, 24, 3), dtype=np.uint8)
    x = np.arange(-2, 3)
    k = np.exp(-(x**2) / (2 * 1.1**2))
    k /= k.sum()
    padded = np.pad(img.astype(np.float64), ((0, 0), (2, 2), (2, 2), (0, 0)), mode="symmetric")  # = scipy 'reflect'
    rows = sum(k[i] * padded[:, i : i + 20] for i in range(5))
    expected = sum(k[j] * rows[:, :, j : j + 24] for j in range(5))
    got = pairs.blur5x5(img).astype(np.float64)
    assert np.max(np.abs(got - np.rint(expected))) <= 1  # float32 vs float64 rounding at .5
    assert np.mean(got != np.rint(expected)) < 0.01


def test_patches_are_the_recorded_crops_and_reproducible(photo_files):
    images = images_of(photo_files)
    arrays, part = pairs.make_patch_pairs(images, 30, seed=3, split="train")
    assert part["patch_columns"] == ["image", "top", "left", "bottom", "right", "rot90"]
    assert len(part["patches"]) == 30 and part["skipped"] == []
    for row, (i, top, left, bottom, right, rot) in enumerate(part["patches"]):
        assert (bottom - top, right - left) == (128, 128) and rot in range(4)
        pixels = util.load_image_rgb(photo_files[[p.name for p in photo_files].index(part["images"][i])])
        assert np.array_equal(arrays["hr"][row], np.rot90(pixels[top:bottom, left:right], rot))
    again, _ = pairs.make_patch_pairs(images, 30, seed=3, split="train")
    other, _ = pairs.make_patch_pairs(images, 30, seed=4, split="train")
    for kind in pairs.DEGRADATIONS:
        assert np.array_equal(arrays[kind], again[kind]), kind
    assert not np.array_equal(arrays["hr"], other["hr"])


def test_plan_balances_images_and_is_uniform_within_each(tmp_path):
    sizes = [(200, 150), (300, 200), (400, 350)]
    usable = [
        pairs.UsableImage(HRImage(tmp_path / f"{i}.png", f"{i}.png"), (0, 0, h, w)) for i, (h, w) in enumerate(sizes)
    ]
    plan = pairs.plan_patches(usable, 20_000, np.random.default_rng(0))
    for n in (2, 7, 100, 20_000):  # every first n rows: counts per image differ by at most one
        counts = np.bincount(plan[:n, 0], minlength=3)
        assert counts.max() - counts.min() <= 1, (n, counts)
    tops = plan[plan[:, 0] == 2, 1]  # uniform over the 273 tops of the 400 px image
    assert abs(tops.mean() - 136) < 6 and np.bincount(tops, minlength=273).min() > 0
    for i, (h, w) in enumerate(sizes):
        rows = plan[plan[:, 0] == i]
        assert rows[:, 1].min() >= 0 and rows[:, 1].max() <= h - 128
        assert rows[:, 2].min() >= 0 and rows[:, 2].max() <= w - 128
    assert set(plan[:, 3].tolist()) == {0, 1, 2, 3}
    tight = pairs.plan_patches(usable_of(tmp_path, [(129, 130)]), 200, np.random.default_rng(0))
    assert set(tight[:, 1].tolist()) == {0, 1} and set(tight[:, 2].tolist()) == {0, 1, 2}  # every position


def test_no_usable_image_is_a_user_error(tmp_path):
    small = tmp_path / "small.png"
    Image.new("RGB", (100, 300)).save(small)
    with pytest.raises(util.UserError, match="no usable image"):
        pairs.make_patch_pairs([HRImage(small, "small.png")], 5)


def usable_of(tmp_path, sizes):
    return [
        pairs.UsableImage(HRImage(tmp_path / f"{i:02d}.png", f"{i:02d}.png"), (0, 0, h, w))
        for i, (h, w) in enumerate(sizes)
    ]


def test_split_by_name_sends_a_tenth_to_test_and_is_stable(tmp_path):
    usable = usable_of(tmp_path, [(200, 200)] * 25)
    train, test, rule = pairs.split_by_name(usable)
    assert len(test) == 2 and len(train) == 23 and not {u.image for u in train} & {u.image for u in test}
    assert [u.image for u in pairs.split_by_name(list(reversed(usable)))[1]] == [u.image for u in test]
    assert "sha256" in rule
    assert len(pairs.split_by_name(usable[:2])[1]) == 1  # at least one test image


def test_split_of_a_single_image_is_in_space(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (1000, 300)).save(path)
    usable, skipped = pairs.check_images([HRImage(path, "wide.png")])
    train, test, rule = pairs.split_by_name(usable)
    assert train[0].region == (0, 0, 300, 872) and test[0].region == (0, 872, 300, 1000)
    assert "in space" in rule
    arrays = {kind: np.zeros((20, *pairs.patch_shape(kind)), np.uint8) for kind in pairs.DEGRADATIONS}
    part = pairs._fill_split(test, 20, 0, "test", arrays)
    assert all(left >= 872 and right <= 1000 for _, _, left, _, right, _ in part["patches"])
    part = pairs._fill_split(train, 20, 0, "train", arrays)
    assert all(right <= 872 for _, _, _, _, right, _ in part["patches"])


def test_split_of_a_small_single_image_uses_it_for_both(tmp_path, capsys):
    train, test, rule = pairs.split_by_name(usable_of(tmp_path, [(150, 200)]))
    assert train[0].region == test[0].region == (0, 0, 150, 200) and "overlap" in rule
    assert "warning: 00.png" in capsys.readouterr().err


def test_is_up_to_date_needs_every_file_with_its_shape(tmp_path, photo_files):
    images = pairs.SourceImages(images_of(photo_files[:2]), images_of(photo_files[2:]), "fixed", "here")
    settings = pairs.dataset_settings("t", images, {"train": 12, "test": 5}, seed=0)
    dest = tmp_path / "t"
    assert not pairs.is_up_to_date(dest, settings)
    manifest = pairs.write_dataset(dest, images, settings)
    assert manifest["splits"]["test"]["images"] == ["chelsea.png"]
    assert pairs.is_up_to_date(dest, settings)
    assert not pairs.is_up_to_date(dest, {**settings, "seed": 1})
    np.save(dest / "test_sr4.npy", np.zeros((5, 32, 32, 1), np.uint8))
    assert not pairs.is_up_to_date(dest, settings)
    (dest / "test_sr4.npy").unlink()
    assert not pairs.is_up_to_date(dest, settings)


def test_a_full_disk_is_a_one_line_error_and_leaves_no_temporary_file(tmp_path, photo_files, monkeypatch):
    import errno
    import os

    images = pairs.SourceImages(images_of(photo_files[:2]), images_of(photo_files[2:]), "fixed", "here")
    settings = pairs.dataset_settings("t", images, {"train": 12, "test": 5}, seed=0)
    dest = tmp_path / "t"
    pairs.write_dataset(dest, images, settings)
    before = {p.name: p.read_bytes() for p in dest.glob("*.npy")}

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)  # what a full disk answers when the blocks are reserved
    other = pairs.dataset_settings("t", images, {"train": 12, "test": 5}, seed=1)
    with pytest.raises(util.UserError, match="the disk is full .*; free space or lower --train/--test") as err:
        pairs.write_dataset(dest, images, other)
    assert "\n" not in str(err.value)
    assert not list(dest.glob(".*part*")), "no temporary file is left behind"
    assert {p.name: p.read_bytes() for p in dest.glob("*.npy")} == before  # the old files are intact
    assert not pairs.is_up_to_date(dest, other)


def test_free_space_is_checked_first_and_stale_temporaries_are_removed(tmp_path, photo_files, monkeypatch, capsys):
    import shutil

    images = pairs.SourceImages(images_of(photo_files[:2]), images_of(photo_files[2:]), "fixed", "here")
    counts = {"train": 12, "test": 5}
    settings = pairs.dataset_settings("t", images, counts, seed=0)
    dest = tmp_path / "t"
    dest.mkdir()
    stale = dest / ".train_hr.k3j2x.part.npy"  # what a killed run leaves
    stale.write_bytes(b"\0" * 1000)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=pairs.dataset_bytes(counts) - 1))
    with pytest.raises(util.UserError, match=r"the pairs need 0.00 GiB and the disk has 0.00 GiB free"):
        pairs.write_dataset(dest, images, settings)
    assert not stale.exists() and "removed 1 temporary file(s)" in capsys.readouterr().err
    assert not list(dest.glob("*.npy"))  # nothing written
    monkeypatch.undo()
    pairs.write_dataset(dest, images, settings)
    assert pairs.is_up_to_date(dest, settings)
