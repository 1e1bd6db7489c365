"""util.io.images: photos read and written as they are (mode, bit depth, alpha, ICC, EXIF orientation)."""

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from util.io.images import ImageError, check_photo, read_photo, write_png

ORIENTATION = 0x0112


def pattern(height, width, channels=3, dtype=np.uint8) -> np.ndarray:
    """Distinct values everywhere, so that any flip or rotation shows."""
    peak = np.iinfo(dtype).max
    values = np.arange(height * width * channels, dtype=np.float64).reshape(height, width, channels)
    return (values * peak / values.max()).astype(dtype)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does(tmp_path, orientation):
    path = tmp_path / "photo.png"
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    Image.fromarray(pattern(5, 7)).save(path, exif=exif.tobytes())
    with Image.open(path) as img:
        expected = np.asarray(ImageOps.exif_transpose(img))
    np.testing.assert_array_equal(read_photo(path).pixels, expected)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16_bit_png_round_trip_keeps_depth_channels_and_icc(tmp_path, channels):
    pixels = pattern(33, 20, channels, np.uint16)
    pixels = pixels[..., 0] if channels == 1 else pixels
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "deep.png"
    write_png(path, pixels, icc)
    photo = read_photo(path)
    assert photo.pixels.dtype == np.uint16
    np.testing.assert_array_equal(photo.pixels, pixels)
    assert photo.icc_profile == icc
    with Image.open(path) as img:  # a valid PNG for other readers too
        img.load()
        assert img.size == (20, 33)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_8_bit_png_round_trip_keeps_mode(tmp_path, mode):
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    pixels = pattern(6, 9, channels)
    pixels = pixels[..., 0] if channels == 1 else pixels
    path = tmp_path / "photo.png"
    write_png(path, pixels)
    with Image.open(path) as img:
        assert img.mode == mode
    np.testing.assert_array_equal(read_photo(path).pixels, pixels)


def test_other_modes_become_grey_rgb_or_rgba(tmp_path):
    palette = Image.fromarray(pattern(4, 4)).convert("P")
    palette.save(tmp_path / "p.png")
    palette.save(tmp_path / "pt.png", transparency=0)
    Image.fromarray(pattern(4, 4)[..., 0] > 100).save(tmp_path / "bits.png")
    Image.fromarray(pattern(4, 4)).convert("CMYK").save(tmp_path / "cmyk.jpg", icc_profile=b"not an RGB profile")
    assert read_photo(tmp_path / "p.png").pixels.shape == (4, 4, 3)
    assert read_photo(tmp_path / "pt.png").pixels.shape == (4, 4, 4)
    assert read_photo(tmp_path / "bits.png").pixels.shape == (4, 4)
    cmyk = read_photo(tmp_path / "cmyk.jpg")
    assert cmyk.pixels.shape == (4, 4, 3) and cmyk.icc_profile is None


def test_unreadable_files_raise_one_line_image_errors(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    Image.fromarray(pattern(64, 64)).save(tmp_path / "cut.png")
    write_png(tmp_path / "cut16.png", pattern(64, 64, 3, np.uint16))
    for path in (tmp_path / "cut.png", tmp_path / "cut16.png"):
        path.write_bytes(path.read_bytes()[:300])
    for path in (tmp_path / "notes.png", tmp_path / "missing.png"):
        with pytest.raises(ImageError, match=path.name) as err:
            check_photo(path)
        assert "\n" not in str(err.value)
    for path in (tmp_path / "cut.png", tmp_path / "cut16.png"):
        with pytest.raises(ImageError, match=path.name) as err:
            read_photo(path)
        assert "\n" not in str(err.value)
