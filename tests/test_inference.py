"""Tiled whole-image inference: tiles cover the image, blend to 1, and agree with one whole pass."""

import numpy as np
import pytest
import tiny_models
from scipy.ndimage import gaussian_filter

import util
from util.inference.tiles import blend_weights, enhance_array, tile_starts
from util.models.layers import model_info
from util.models.loading import prepare_input


def smooth_image(height, width, seed=0) -> np.ndarray:
    """uint8 HWC RGB with smooth shapes, edges and saturated patches (bicubic overshoots there)."""
    rng = np.random.default_rng(seed)
    img = gaussian_filter(rng.random((height, width, 3)), sigma=(2, 2, 0))
    return np.clip((img - img.mean()) * 2400 + 128, 0, 255).astype(np.uint8)


class NearestModel:
    """A stand-in model without TensorFlow: nearest-neighbour upsampling (each output depends on one input)."""

    def __init__(self, scale):
        self.scale = scale

    def predict_on_batch(self, x):
        return np.repeat(np.repeat(x, self.scale, axis=1), self.scale, axis=2)


@pytest.mark.parametrize(
    "length, tile, stride, step", [(10, 16, 8, 1), (64, 24, 16, 4), (101, 16, 10, 1), (17, 16, 4, 1)]
)
def test_tile_starts_cover_on_the_grid(length, tile, stride, step):
    padded = -(-length // step) * step
    starts = tile_starts(padded, min(tile, padded), stride, step)
    assert starts[0] == 0 and starts[-1] + min(tile, padded) == padded
    assert all(s % step == 0 for s in starts)
    assert all(0 < b - a <= stride for a, b in zip(starts, starts[1:], strict=False))


def test_blend_weights_sum_to_one_and_fall_off_at_shared_edges():
    starts = tile_starts(101, 16, 10)  # uneven spacing, some pixels in three tiles
    weights = blend_weights(starts, 16, 101)
    total = np.zeros(101)
    for start, weight in zip(starts, weights, strict=True):
        total[start : start + 16] += weight
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    assert weights[0][0] == pytest.approx(weights[0][1])  # image edge: no fall-off
    assert weights[1][0] < 1e-3 and weights[1][8] > weights[1][2]  # shared edge: falls off towards it


@pytest.mark.parametrize(
    "shape, scale, tile, overlap", [((101, 77, 3), 3, 16, 6), ((9, 40), 2, 8, 2), ((30, 31, 4), 1, 12, 4)]
)
def test_blending_is_exact_for_a_pointwise_model(shape, scale, tile, overlap):
    info = {"task": "t", "scale": scale, "input_kind": "lr", "size_multiple": 1}
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    out = enhance_array(NearestModel(scale), info, image, tile=tile, overlap=overlap, progress=False)
    expected = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    if image.ndim == 3 and image.shape[-1] == 4:  # alpha is upscaled by bicubic, exactly so for scale 1
        expected[..., 3] = image[..., 3]
    assert out.shape == expected.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.fixture(scope="module", params=["upsampled", "lr"])
def tiny(request):
    model = tiny_models.upsampled_model() if request.param == "upsampled" else tiny_models.lr_model()
    return model, model_info(model)


def test_tiled_agrees_with_whole_image(tiny):
    model, info = tiny
    lr = smooth_image(64, 80)  # multiples of size_multiple / scale: the whole pass needs no padding
    whole = model.predict_on_batch(prepare_input(lr, info)[None])[0]
    whole = np.floor(np.clip(whole, 0, 1) * 255 + 0.5)
    tile, overlap = 24, 8
    assert len(tile_starts(64, tile, tile - overlap, 4)) * len(tile_starts(80, tile, tile - overlap, 4)) >= 12
    tiled = enhance_array(model, info, lr, tile=tile, overlap=overlap, progress=False)
    assert tiled.shape == whole.shape and tiled.dtype == np.uint8
    border = 2 * info["scale"]
    difference = np.abs(tiled.astype(np.float64) - whole)[border:-border, border:-border]
    assert difference.max() <= 1.0, f"tiled vs whole-image: {difference.max()}/255"
    assert np.abs(tiled.astype(np.float64) - whole).max() <= 1.0  # no padding here: the border agrees too


def test_layouts_keep_their_kind(tiny):
    model, info = tiny
    scale = info["scale"]
    lr = smooth_image(20, 28)
    rgb = enhance_array(model, info, lr, tile=12, overlap=4, progress=False)

    grey = enhance_array(model, info, lr[..., 1], tile=12, overlap=4, progress=False)
    assert grey.shape == (20 * scale, 28 * scale) and grey.dtype == np.uint8
    replicated = enhance_array(model, info, np.repeat(lr[..., 1:2], 3, axis=-1), tile=12, overlap=4, progress=False)
    assert np.abs(grey.astype(int) - replicated.mean(axis=-1)).max() <= 1

    alpha = np.linspace(0, 255, 20 * 28).reshape(20, 28).astype(np.uint8)
    rgba = enhance_array(model, info, np.dstack([lr, alpha]), tile=12, overlap=4, progress=False)
    assert rgba.shape == (20 * scale, 28 * scale, 4)
    assert np.abs(rgba[..., :3].astype(int) - rgb).max() <= 1
    assert np.abs(rgba[..., 3].astype(int) - util.bicubic_upscale(alpha, scale)).max() <= 1

    deep = enhance_array(model, info, lr.astype(np.uint16) * 257, tile=12, overlap=4, progress=False)
    assert deep.dtype == np.uint16 and deep.shape == rgb.shape
    assert np.abs(deep / 257.0 - rgb).max() <= 1.5  # float input skips the uint8 rounding of the bicubic input


def test_sizes_off_the_multiple_are_padded_and_cropped_back(tiny):
    model, info = tiny
    lr = smooth_image(37, 21)
    out = enhance_array(model, info, lr, tile=16, overlap=8, progress=False)
    assert out.shape == (37 * info["scale"], 21 * info["scale"], 3)
    whole = enhance_array(model, info, lr, tile=1000, progress=False)  # one tile: the whole image
    assert np.abs(out.astype(int) - whole).max() <= 1


def test_bad_arguments_are_refused(tiny):
    model, info = tiny
    with pytest.raises(ValueError, match="overlap"):
        enhance_array(model, info, smooth_image(8, 8), tile=8, overlap=8, progress=False)
    with pytest.raises(ValueError, match="channels"):
        enhance_array(model, info, np.zeros((8, 8, 5), np.uint8), progress=False)


def test_self_ensemble_averages_the_eight_flips_and_rotations(tiny):
    model, info = tiny
    lr = smooth_image(16, 24)  # not square: rotations swap height and width
    x = prepare_input(lr, info)
    expected = 0.0
    for k in range(4):
        for mirror in (False, True):
            view = np.rot90(x[:, ::-1] if mirror else x, k)
            y = np.rot90(model.predict_on_batch(view[None])[0], -k)
            expected = expected + (y[:, ::-1] if mirror else y)
    expected = np.floor(np.clip(expected / 8, 0, 1) * 255 + 0.5)
    plain = enhance_array(model, info, lr, tile=1000, progress=False)
    ensembled = enhance_array(model, info, lr, tile=1000, progress=False, ensemble=True)
    assert ensembled.shape == plain.shape == expected.shape
    assert np.abs(ensembled - expected).max() <= 1
    assert np.abs(ensembled.astype(int) - plain).max() > 1  # the tiny models are not rotation-invariant
    big = smooth_image(64, 80)
    whole = enhance_array(model, info, big, tile=1000, progress=False, ensemble=True)
    tiled = enhance_array(model, info, big, tile=24, overlap=8, progress=False, ensemble=True)
    assert np.abs(tiled.astype(int) - whole).max() <= 1


def test_self_ensemble_of_a_pointwise_model_is_the_model():
    info = {"task": "t", "scale": 2, "input_kind": "lr", "size_multiple": 1}
    image = np.random.default_rng(0).random((9, 14, 3)).astype(np.float32)
    plain = enhance_array(NearestModel(2), info, image, tile=6, overlap=2, progress=False)
    ensembled = enhance_array(NearestModel(2), info, image, tile=6, overlap=2, progress=False, ensemble=True)
    np.testing.assert_allclose(ensembled, plain, atol=1e-6)
