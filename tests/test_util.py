"""The light parts of util: resizing, metrics, image input, files and the CLI wrapper."""

import io
import json

import numpy as np
import pytest
from PIL import Image

import util

# ---- util.data.resize and util.evaluation.metrics: the published bicubic baseline ---------------------

# Bicubic rows of the SR tables (e.g. EDSR, RCAN): Set5, Y channel, `scale` border pixels cropped.
SET5_BICUBIC = [(2, 33.66, 0.9299), (3, 30.39, 0.8682), (4, 28.42, 0.8104)]


@pytest.mark.parametrize(("scale", "psnr", "ssim"), SET5_BICUBIC)
def test_set5_bicubic_matches_the_published_row(benchmark_root, scale, psnr, ssim):
    psnrs, ssims = [], []
    for path in sorted((benchmark_root / "Set5").glob("*.png")):
        hr = util.modcrop(util.load_image_rgb(path), scale)
        sr = util.bicubic_upscale(util.bicubic_downscale(hr, scale), scale)
        assert sr.dtype == np.uint8 and sr.shape == hr.shape
        psnrs.append(util.psnr(hr, sr, crop_border=scale, y_channel=True))
        ssims.append(util.ssim(hr, sr, crop_border=scale, y_channel=True, gaussian_window=True))
    assert len(psnrs) == 5
    assert np.mean(psnrs) == pytest.approx(psnr, abs=0.05)
    assert np.mean(ssims) == pytest.approx(ssim, abs=0.002)


def test_imresize_batch_equals_one_image_at_a_time():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (3, 37, 52, 3), dtype=np.uint8)
    for kwargs in ({"scale": 0.5}, {"scale": 1.7}, {"output_shape": (20, 13)}):
        together = util.imresize(batch, batch=True, **kwargs)
        one_by_one = np.stack([util.imresize(img, **kwargs) for img in batch])
        assert together.dtype == np.uint8 and np.array_equal(together, one_by_one), kwargs
    floats = batch.astype(np.float64) / 255
    assert np.allclose(
        util.imresize(floats, scale=0.25, batch=True), np.stack([util.imresize(f, scale=0.25) for f in floats])
    )
    hr = rng.integers(0, 256, (4, 128, 128, 3), dtype=np.uint8)
    for factor in (2, 4, 8):
        lr = util.bicubic_downscale(hr, factor, batch=True)
        assert lr.shape == (4, 128 // factor, 128 // factor, 3)
        assert np.array_equal(lr[2], util.bicubic_downscale(hr[2], factor))


def test_imresize_keeps_a_constant_image_and_rejects_bad_sizes():
    flat = np.full((16, 24, 3), 77, np.uint8)
    assert np.array_equal(util.bicubic_downscale(flat, 4), np.full((4, 6, 3), 77, np.uint8))
    assert np.array_equal(util.bicubic_upscale(flat, 3), np.full((48, 72, 3), 77, np.uint8))
    assert util.modcrop(np.zeros((13, 10, 3)), 4).shape == (12, 8, 3)
    with pytest.raises(ValueError, match="modcrop"):
        util.bicubic_downscale(np.zeros((13, 12, 3), np.uint8), 4)
    with pytest.raises(ValueError):
        util.imresize(flat)


def test_psnr_and_y_channel():
    a = np.zeros((8, 8, 3), np.uint8)
    b = a.copy()
    assert util.psnr(a, b) == float("inf")
    b[...] = 1  # MSE 1
    assert util.psnr(a, b) == pytest.approx(10 * np.log10(255**2))
    y = util.rgb_to_y(np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8))
    assert y[0, 0] == pytest.approx(16) and y[0, 1] == pytest.approx(235)
    with pytest.raises(ValueError, match="shapes differ"):
        util.psnr(a, a[:4])


# ---- util.io.images ------------------------------------------------------------------------


def saved(tmp_path, img: Image.Image, name: str, **kwargs):
    path = tmp_path / name
    img.save(path, **kwargs)
    return util.load_image_rgb(path)


def test_load_image_rgb_converts_every_mode_to_uint8_rgb(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (20, 30), dtype=np.uint8)

    def check(arr):
        assert arr.dtype == np.uint8 and arr.shape == (20, 30, 3)
        return arr

    assert np.array_equal(check(saved(tmp_path, Image.fromarray(rgb), "rgb.png")), rgb)
    assert np.array_equal(check(saved(tmp_path, Image.fromarray(gray), "gray.png")), np.dstack([gray] * 3))
    rgba = np.dstack([rgb, np.zeros_like(gray)])  # fully transparent: the colours are kept, not blackened
    assert np.array_equal(check(saved(tmp_path, Image.fromarray(rgba), "rgba.png")), rgb)
    deep = gray.astype(np.uint16) * 257  # 16 bit: scaled by 65535 -> 255
    img16 = Image.fromarray(deep)
    assert img16.mode == "I;16"
    assert np.array_equal(check(saved(tmp_path, img16, "deep.png")), np.dstack([gray] * 3))
    palette = Image.fromarray(rgb).quantize(16)
    expected = np.asarray(palette.convert("RGB"))
    assert np.array_equal(check(saved(tmp_path, palette, "palette.png")), expected)
    cmyk = Image.fromarray(rgb).convert("CMYK")
    assert np.array_equal(check(saved(tmp_path, cmyk, "cmyk.tif")), np.asarray(cmyk.convert("RGB")))
    jpeg_cmyk = check(saved(tmp_path, cmyk, "cmyk.jpg", quality=95))
    assert np.abs(jpeg_cmyk.astype(int) - np.asarray(cmyk.convert("RGB"), dtype=int)).mean() < 20
    bilevel = Image.fromarray(gray > 128)
    assert set(np.unique(check(saved(tmp_path, bilevel, "bw.png")))) <= {0, 255}


def test_load_image_rgb_applies_exif_orientation(tmp_path):
    img = Image.fromarray(np.zeros((20, 30, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif)
    assert util.load_image_rgb(path).shape == (30, 20, 3)


def test_load_image_rgb_names_the_file_it_cannot_read(tmp_path):
    (tmp_path / "text.png").write_text("not an image")
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(buffer, format="PNG")
    (tmp_path / "truncated.png").write_bytes(buffer.getvalue()[:60])
    for name in ("text.png", "truncated.png", "missing.png"):
        with pytest.raises(util.ImageError, match=name):
            util.load_image_rgb(tmp_path / name)
    assert issubclass(util.ImageError, util.UserError)


def test_list_images_is_recursive_sorted_and_by_suffix(tmp_path):
    for name in ("b.PNG", "a.jpg", "sub/c.tiff", "notes.txt", "sub/d.npy"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in util.list_images(tmp_path)] == ["a.jpg", "b.PNG", "sub/c.tiff"]
    with pytest.raises(util.UserError, match="not a folder"):
        util.list_images(tmp_path / "a.jpg")


# ---- util.io.files -------------------------------------------------------------------------


def test_atomic_writes_leave_the_old_file_on_an_exception(tmp_path):
    path = tmp_path / "result.json"
    util.write_json_atomic(path, {"old": 1})
    with pytest.raises(TypeError):
        util.write_json_atomic(path, {"new": {1, 2}})  # a set is not JSON: fails half-way
    assert json.loads(path.read_text()) == {"old": 1}
    with pytest.raises(RuntimeError), util.atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left


def test_save_npy_atomic_and_write_text_atomic(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    util.save_npy_atomic(tmp_path / "sub" / "a.npy", array)
    assert np.array_equal(np.load(tmp_path / "sub" / "a.npy"), array)
    util.write_text_atomic(tmp_path / "t.txt", "hello")
    util.write_text_atomic(tmp_path / "t.txt", "again")
    assert (tmp_path / "t.txt").read_text() == "again"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub", "t.txt"]


def test_run_cli_turns_a_user_error_into_one_line(capsys):
    def fails(argv):
        raise util.UserError(f"{argv[0]}: bad setting; fix it")

    assert util.run_cli(fails, ["X"]) == 1
    assert capsys.readouterr().err == "error: X: bad setting; fix it\n"
    assert util.run_cli(lambda argv: None, []) == 0


# ---- util.data.pipelines: the shifts augmentation ---------------------------------------------


@pytest.mark.parametrize(("scale", "upsampled"), [(2, False), (4, False), (4, True)])
def test_shifts_make_exact_pairs_at_every_sub_pixel_phase(scale, upsampled):
    from util.data import pipelines

    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    lr = util.bicubic_downscale(hr, scale, batch=True)
    stored = util.bicubic_upscale(lr, scale, batch=True) if upsampled else lr
    batches = iter(
        pipelines.make_dataset(stored, hr, 8, 0, augment=("shifts",), shift_scale=scale, upsampled=upsampled)
    )
    size = 32 - scale
    phases = set()
    for _ in range(20):
        x, y = (np.round(t.numpy() * 255).astype(np.uint8) for t in next(batches))
        side = size if upsampled else size // scale
        assert x.shape == (8, side, side, 3) and y.shape == (8, size, size, 3)
        for small, crop in zip(x, y, strict=True):
            found = [
                (i, dy, dx)
                for i in range(len(hr))
                for dy in range(scale)
                for dx in range(scale)
                if np.array_equal(hr[i, dy : dy + size, dx : dx + size], crop)
            ]
            assert len(found) == 1
            phases.add(found[0][1:])
            expected = util.bicubic_downscale(crop, scale)
            expected = util.bicubic_upscale(expected, scale) if upsampled else expected
            assert np.array_equal(small, expected)
    assert len(phases) == scale * scale


def test_pair_augmentations_transform_input_and_target_alike():
    """flips, channels and invert: each draw is one of the 8 x 6 x 2 transforms, the same on both sides."""
    import itertools

    from util.data import pipelines

    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, (4, 6, 6, 3), dtype=np.uint8)
    hr = lr.repeat(2, axis=1).repeat(2, axis=2)  # nearest x2: commutes with every one of them
    augment = ("flips", "channels", "invert")
    batches = iter(pipelines.make_dataset(lr, hr, 8, 0, augment=augment))

    def variants(image):
        for k, flip, order, invert in itertools.product(range(4), (0, 1), itertools.permutations(range(3)), (0, 1)):
            out = np.rot90(image, k)[:, ::-1] if flip else np.rot90(image, k)
            out = out[..., list(order)]
            yield (k, flip, order, invert), 255 - out if invert else out

    known = {}
    for image in lr:
        for key, out in variants(image):
            known.setdefault(out.tobytes(), []).append(key)
    seen = set()
    for _ in range(30):
        x, y = (np.round(t.numpy() * 255).astype(np.uint8) for t in next(batches))
        assert x.dtype == np.uint8 and x.shape == (8, 6, 6, 3) and y.shape == (8, 12, 12, 3)
        for small, big in zip(x, y, strict=True):
            assert np.array_equal(big, small.repeat(2, axis=0).repeat(2, axis=1))
            found = known[small.tobytes()]
            assert len(found) == 1
            seen.add(found[0])
    assert {key[:2] for key in seen} == set(itertools.product(range(4), (0, 1)))
    assert {key[2] for key in seen} == set(itertools.permutations(range(3)))
    assert {key[3] for key in seen} == {0, 1}


def test_shifts_need_a_bicubic_task():
    from util.data import pipelines

    patches = np.zeros((2, 16, 16, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="shifts needs the bicubic scale"):
        pipelines.make_dataset(patches, patches, 1, 0, augment=("shifts",), shift_scale=0)


def test_raster_augmentations_keep_input_target_and_mask_together():
    """flips and invert on rasters: one of the 8 x 2 transforms, the same on the input, the target and the mask."""
    import itertools

    from util.data import pipelines

    rng = np.random.default_rng(0)
    lr = rng.normal(500.0, 50.0, (4, 6, 6, 1)).astype(np.float32)
    hr = lr.repeat(2, axis=1).repeat(2, axis=2)
    mask = (rng.random(hr.shape) < 0.8).astype(np.uint8)
    batches = iter(pipelines.make_raster_dataset(lr, hr, mask, 8, 0, augment=("flips", "invert")))
    known = {}
    for i, image in enumerate(lr):
        for k, flip, sign in itertools.product(range(4), (0, 1), (1, -1)):
            out = np.rot90(image, k)[:, ::-1] if flip else np.rot90(image, k)
            known[(sign * out).tobytes()] = (i, k, flip, sign)
    seen = set()
    for _ in range(30):
        x, y, w = (t.numpy() for t in next(batches))
        assert x.dtype == np.float32 and w.shape == (8, 12, 12)
        for small, big, weight in zip(x, y, w, strict=True):
            assert np.array_equal(big, small.repeat(2, axis=0).repeat(2, axis=1))
            i, k, flip, sign = known[small.tobytes()]
            turned = np.rot90(mask[i, ..., 0], k)
            assert np.array_equal(weight, turned[:, ::-1] if flip else turned)
            seen.add((k, flip, sign))
    assert len(seen) == 16


def test_raster_amplitude_scales_input_and_target_by_one_factor():
    from util.data import pipelines

    rng = np.random.default_rng(1)
    lr = rng.normal(500.0, 50.0, (4, 6, 6, 1)).astype(np.float32)
    hr = lr.repeat(2, axis=1).repeat(2, axis=2)
    mask = np.ones(hr.shape, np.uint8)
    batches = iter(pipelines.make_raster_dataset(lr, hr, mask, 8, 0, augment=("amplitude",)))
    factors = []
    for _ in range(20):
        x, y, _ = (t.numpy() for t in next(batches))
        for small, big in zip(x, y, strict=True):
            i = int(np.argmin([np.abs(small / p - (small / p).mean()).max() for p in lr]))
            factor = float((small / lr[i]).mean())
            np.testing.assert_allclose(small, factor * lr[i], rtol=1e-5)
            np.testing.assert_allclose(big, factor * hr[i], rtol=1e-5)
            factors.append(factor)
    assert 0.5 <= min(factors) < 0.7 and 1.4 < max(factors) <= 2.0
