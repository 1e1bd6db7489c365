"""The synthetic tasks (noiseS, blind noise, defocus): parsing, degradations in NumPy and tf.data, training."""

import json

import numpy as np
import pytest
from conftest import photo_pairs

import util
from util.data.degrade import degrade_image, degrade_patches, disk_psf, psf_bank, tf_degrade
from util.data.tasks import parse_task, stored_task, task_family

TINY = ["--train-patches", "16", "--backprops", "32", "--batch", "8", "--epochs", "2", "--val-patches", "8"]


@pytest.fixture(scope="module")
def hr_only(tmp_path_factory):
    """A data set with HR patches only (what the synthetic tasks need): 24 train / 6 test of a photo."""
    return photo_pairs(tmp_path_factory.mktemp("datasets") / "hronly", train=24, test=6, hr_only=True)


def test_task_names():
    assert parse_task("noise25").noise_sigma == 25 and parse_task("noise25").synthetic
    assert parse_task("noise15").synthetic and not parse_task("noise15").blind
    blind = parse_task("noise")
    assert blind.sigma_range == (0.0, 55.0) and blind.blind and blind.synthetic
    assert parse_task("defocus").radius_range == (1.0, 4.0) and parse_task("defocus").blind
    fixed = parse_task("defocus2.5")
    assert fixed.radius_range == (2.5, 2.5) and not fixed.blind and fixed.baseline_name == "blurred input"
    assert not parse_task("noise64").synthetic  # the prototype's stored pairs
    assert stored_task("noise50").name == "noise50"
    assert [task_family(parse_task(n)) for n in ("sr4", "noise", "defocus", "x4noise64")] == [
        "super-resolution",
        "denoising",
        "deblurring",
        "super-resolution",
    ]


@pytest.mark.parametrize(
    "name, message",
    [
        ("noise300", "sigma 300 is outside 0-255"),
        ("noise-5", "sigma -5 is outside 0-255"),
        ("noise0", "sigma 0 adds no noise"),
        ("defocus0", "radius must be above 0"),
        ("defocus-1", "radius must be above 0"),
        ("defocus40", "at most 16 pixels"),
    ],
)
def test_bad_sigma_and_radius_are_one_line_errors(name, message):
    with pytest.raises(util.UserError, match=message) as err:
        parse_task(name)
    assert "\n" not in str(err.value)


def test_disk_psf_is_matlabs_fspecial_disk():
    psf = disk_psf(1)
    # MATLAB fspecial('disk', 1): 0.0251 0.1453 0.0251 / 0.1453 0.3171 0.1453 (exact pixel areas)
    matlab = [[0.0251, 0.1453, 0.0251], [0.1453, 0.3171, 0.1453], [0.0251, 0.1453, 0.0251]]
    np.testing.assert_allclose(psf, matlab, atol=0.01)
    for radius in (1, 2.5, 4):
        psf = disk_psf(radius)
        assert psf.sum() == pytest.approx(1) and np.allclose(psf, psf.T) and np.allclose(psf, psf[::-1])
    radii, bank = psf_bank(parse_task("defocus"))
    assert radii[0] == 1 and radii[-1] == 4 and bank.shape == (13, 9, 9)
    np.testing.assert_allclose(bank[4], np.pad(disk_psf(2), 2), atol=1e-7)  # padded to one size, the same PSF


def test_fixed_seed_pairs_do_not_depend_on_what_else_is_degraded(hr_only):
    hr = np.load(hr_only / "train_hr.npy")
    task = parse_task("noise25")
    whole = degrade_patches(hr, task, seed=1)
    part = degrade_patches(hr[5:9], task, seed=1, first=5)
    np.testing.assert_array_equal(whole[5:9], part)
    assert not np.array_equal(whole, degrade_patches(hr, task, seed=2))
    noise = whole.astype(float) - hr
    unclipped = (hr > 80) & (hr < 175)
    assert noise[unclipped].std() == pytest.approx(25, rel=0.03)
    # the same image gets the same radius and sigma from the same generator
    _, first = degrade_image(hr[0], parse_task("defocus"), np.random.default_rng([0, 7]))
    _, again = degrade_image(hr[0], parse_task("defocus"), np.random.default_rng([0, 7]))
    assert first == again and 1 <= first["radius"] <= 4 and 1 <= first["sigma"] <= 2


def test_tf_noise_is_fresh_and_of_the_task_sigma():
    import tensorflow as tf

    grey = np.full((64, 64, 3), 128, np.uint8)
    degrade = tf_degrade(parse_task("noise25"))
    a, clean = (np.asarray(t) for t in degrade(tf.constant(grey)))
    b, _ = (np.asarray(t) for t in degrade(tf.constant(grey)))
    assert np.allclose(clean, 128 / 255) and not np.array_equal(a, b)
    assert (a * 255 - 128).std() == pytest.approx(25, rel=0.05)
    assert np.allclose(a * 255, np.round(a * 255), atol=1e-3)  # an 8-bit image, as at test time
    blind = tf_degrade(parse_task("noise"))
    sigmas = [float(np.std(np.asarray(blind(tf.constant(grey))[0]) * 255 - 128)) for _ in range(12)]
    assert max(sigmas) - min(sigmas) > 10 and max(sigmas) < 57  # sigma drawn per patch from 0-55


def test_tf_float_noise_is_neither_clipped_nor_rounded():
    import tensorflow as tf

    black = np.zeros((64, 64, 3), np.uint8)
    noisy = np.asarray(tf_degrade(parse_task("noise25"), as_float=True)(tf.constant(black))[0]) * 255
    assert (noisy < -10).mean() > 0.3  # half the noise is below black, kept as the papers keep it
    assert noisy.std() == pytest.approx(25, rel=0.05)
    assert not np.allclose(noisy, np.round(noisy), atol=1e-3)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--task", "noise25", "--noisy", "16bit"], "NOISY='16bit' is unknown; use 8bit or float"),
        (["--task", "sr4", "--noisy", "float"], "NOISY=float applies to the noise tasks"),
        (["--task", "noise64", "--noisy", "float"], "not to noise64; use NOISY=8bit"),
    ],
)
def test_bad_noisy_setting_is_a_one_line_error(flags, message):
    import edsr_lite

    with pytest.raises(util.UserError, match=message) as err:
        edsr_lite.main([*flags, "--out", "/nonexistent"])
    assert "\n" not in str(err.value)


def test_tf_defocus_matches_numpy_for_a_fixed_radius():
    import tensorflow as tf
    from skimage import data

    image = data.astronaut()[100:164, 200:264]
    task = parse_task("defocus3")
    ours = np.asarray(tf_degrade(task)(tf.constant(image))[0]) * 255
    reference, drawn = degrade_image(image, task, np.random.default_rng(0))
    assert drawn["radius"] == 3
    # the same blur; what differs is the independent noise of sigma 1-2 (and its rounding)
    difference = ours - reference.astype(float)
    assert np.abs(difference.mean()) < 0.2 and difference.std() < 3.5
    assert np.abs(ours - image).mean() > 4 * np.abs(difference).mean()  # the blur itself is far larger


@pytest.mark.parametrize("levels, multiple, shape", [(1, 2, "8 blocks x 32"), (3, 8, "3-level U-Net")])
def test_denoiser_starts_as_the_identity_and_keeps_any_size(levels, multiple, shape):
    import edsr_lite
    from util.inference.tiles import enhance_array
    from util.models.layers import model_info

    model = edsr_lite.build_model("noise25", blocks=8, levels=levels)
    info = model_info(model)
    assert info["size_multiple"] == multiple and "pixel-unshuffled /2" in info["architecture"]
    assert shape in info["architecture"]
    image = np.random.default_rng(0).integers(0, 256, (37, 51, 3), dtype=np.uint8)  # odd sizes
    np.testing.assert_array_equal(enhance_array(model, info, image), image)


@pytest.mark.parametrize("task, noisy", [("noise25", "8bit"), ("noise", "float"), ("defocus", "8bit")])
def test_synthetic_tasks_train_from_hr_patches_alone(hr_only, tmp_path, task, noisy):
    import edsr_lite

    edsr_lite.main(["--dataset", str(hr_only), "--task", task, "--noisy", noisy, "--out", str(tmp_path), *TINY])
    results = json.loads((tmp_path / f"edsr_lite-{task}-16-hronly" / "results.json").read_text())
    assert results["task"] == task and results["n_test"] == 6 and results["backprops"] == 32
    assert results["settings"]["noisy"] == noisy
    assert results["baseline_name"] == ("blurred input" if task == "defocus" else "noisy input")
    assert 10 < results["baseline"]["psnr"] < 45 and np.isfinite(results["model_scores"]["psnr"])


def test_evaluate_refuses_a_model_of_another_family(tmp_path, hr_only):
    import keras

    import edsr_lite
    import evaluate

    path = tmp_path / "denoiser.keras"
    keras.saving.save_model(edsr_lite.build_model("noise"), path)
    for task, family in (("sr4", "denoising"), ("defocus2", "denoising")):
        with pytest.raises(util.UserError, match=f"a model for noise \\({family}\\), not for {task}"):
            evaluate.main(["--model", str(path), "--task", task, "--data", str(tmp_path)])


@pytest.fixture(scope="module")
def clean_folder(tmp_path_factory):
    """Two small clean colour images (96x80), a stand-in for CBSD68 / Set14."""
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("clean")
    Image.fromarray(data.astronaut()[:80, 100:196]).save(folder / "a.png")
    Image.fromarray(data.coffee()[100:180, 200:296]).save(folder / "b.png")
    return folder


def test_benchmark_restoration_table_has_the_peers_and_the_model(clean_folder, tmp_path, capsys):
    import keras

    import benchmark
    import edsr_lite

    path = tmp_path / "denoise.keras"
    keras.saving.save_model(edsr_lite.build_model("noise"), path)  # untrained: the identity
    benchmark.main(["restoration", str(path), "--task", "noise25", "--data", str(clean_folder), "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "benchmark_noise25.json").read_text())["rows"]
    by = {r["method"].split(" (")[0]: r for r in rows}
    assert set(by) == {"noisy input", "CBM3D", "non-local means", "wavelet", str(path)}
    assert by[str(path)]["psnr"] == pytest.approx(by["noisy input"]["psnr"], abs=1e-9)  # the identity, exactly
    for name in ("CBM3D", "non-local means", "wavelet"):
        assert by[name]["psnr"] > by["noisy input"]["psnr"] + 3 and by[name]["s_per_mp"] > 0
    assert by["CBM3D"]["psnr"] > by["wavelet"]["psnr"]
    assert "| CBM3D (bm3d, sigma given) |" in (tmp_path / "benchmark_noise25.md").read_text()


def test_benchmark_deblurring_gives_the_peers_the_true_psf(clean_folder, tmp_path):
    import benchmark

    benchmark.main(["restoration", "--task", "defocus2", "--data", str(clean_folder), "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "benchmark_defocus2.json").read_text())["rows"]
    by = {r["method"]: r for r in rows}
    assert set(by) >= {"blurred input", "Wiener (true PSF)", "Richardson-Lucy (true PSF)"}
    assert by["Wiener (true PSF)"]["psnr"] > by["blurred input"]["psnr"] + 1
    assert by["Richardson-Lucy (true PSF)"]["psnr"] > by["blurred input"]["psnr"] + 1


def test_benchmark_refuses_a_model_of_another_family(clean_folder, tmp_path):
    import keras

    import benchmark
    import edsr_lite

    path = tmp_path / "sr4.keras"
    keras.saving.save_model(edsr_lite.build_model("sr4"), path)
    with pytest.raises(util.UserError, match="a model for sr4, not for denoising"):
        benchmark.main(
            ["restoration", str(path), "--task", "noise25", "--data", str(clean_folder), "--out", str(tmp_path)]
        )


def test_enhance_task_denoise_uses_the_shipped_model_or_says_how_to_train_one(tmp_path, monkeypatch):
    import keras
    from PIL import Image

    import edsr_lite
    import enhance

    photo = tmp_path / "noisy.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 65536, (30, 41), dtype=np.uint16)).save(photo)  # 16-bit grey
    monkeypatch.setattr(enhance, "MODELS", tmp_path / "models")
    with pytest.raises(util.UserError, match=r"denoise.keras: no such model file; train one \(python3 edsr_lite.py"):
        enhance.main(["--task", "denoise", str(photo)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noisy.png"]  # nothing written
    (tmp_path / "models").mkdir()
    keras.saving.save_model(edsr_lite.build_model("noise"), tmp_path / "models" / "denoise.keras")  # the identity
    enhance.main(["--task", "denoise", str(photo), "--quiet"])
    (out,) = [p for p in tmp_path.iterdir() if p.suffix == ".png" and p != photo]
    with Image.open(out) as img, Image.open(photo) as src:
        assert img.mode == src.mode and img.size == src.size  # 16-bit grey stays 16-bit grey
        difference = np.abs(np.asarray(img, np.int64) - np.asarray(src, np.int64))
    assert difference.max() <= 257  # the identity model, through an 8-bit-accurate float path
    with pytest.raises(util.UserError, match="--scale and --task: give one"):
        enhance.main(["--task", "denoise", "--scale", "2", str(photo)])


@pytest.mark.parametrize(
    "purpose, task, gain",
    [
        ("denoise", "noise25", 8.0),
        ("denoise", "noise50", 10.0),
        ("denoise", "noise5", 2.0),
        ("deblur", "defocus2", 1.0),
    ],
)
def test_shipped_restoration_models_work_out_of_the_box(tmp_path, purpose, task, gain):
    """`enhance.py --task denoise|deblur` with assets/models/ on a photo no shipped model trained on (coffee)."""
    import skimage.data
    from PIL import Image

    import enhance

    clean = skimage.data.coffee()[100:292, 150:406]  # in the built-in test split
    degraded, _ = degrade_image(clean, parse_task(task), np.random.default_rng(0))
    Image.fromarray(degraded).save(tmp_path / "photo.png")
    enhance.main(["--task", purpose, str(tmp_path / "photo.png"), "--quiet"])
    (out,) = [p for p in tmp_path.iterdir() if p.name != "photo.png"]
    with Image.open(out) as img:
        restored = np.asarray(img)
    assert restored.shape == clean.shape and restored.dtype == np.uint8
    before, after = util.psnr(clean, degraded), util.psnr(clean, restored)
    assert after > before + gain, (before, after)


def test_float_noisy_input_is_the_papers_protocol():
    """--noisy float: the same noise, neither clipped nor rounded; the 8-bit input is that, clipped and rounded."""
    from util.evaluation.protocols import degrade_known, measure

    image = np.zeros((64, 96, 3), np.uint8)
    image[:, 32:64], image[:, 64:] = 128, 255  # black, grey and white thirds
    for name in ("noise25", "noise", "defocus"):
        exact_target, exact, known = degrade_known(image, parse_task(name), "img", "float")
        target, eight, known_8bit = degrade_known(image, parse_task(name), "img", "8bit")
        assert exact.dtype == np.float64 and exact.min() < 0 and exact.max() > 255 and known == known_8bit
        np.testing.assert_array_equal(eight, np.clip(np.round(exact), 0, 255).astype(np.uint8))
        np.testing.assert_array_equal(exact_target, target)
    task = parse_task("noise25")
    target, exact, _ = degrade_known(image, task, "img", "float")
    _, eight, _ = degrade_known(image, task, "img", "8bit")
    assert measure(exact, target, task)["psnr"] == pytest.approx(20 * np.log10(255 / 25), abs=0.1)
    assert measure(eight, target, task)["psnr"] > 21.5  # clipping at black and white halves the noise there


def test_benchmark_and_evaluate_take_the_papers_float_input(clean_folder, tmp_path):
    import keras

    import benchmark
    import edsr_lite
    import evaluate

    path = tmp_path / "denoise.keras"
    keras.saving.save_model(edsr_lite.build_model("noise"), path)  # untrained: the identity
    args = ["--task", "noise25", "--data", str(clean_folder), "--out", str(tmp_path)]
    benchmark.main(["restoration", str(path), *args, "--noisy", "float"])
    result = json.loads((tmp_path / "benchmark_noise25_float.json").read_text())
    by = {r["method"].split(" (")[0]: r for r in result["rows"]}
    assert result["noisy"] == "float" and "neither clipped nor rounded" in result["protocol"]
    assert by["noisy input"]["psnr"] < by[str(path)]["psnr"] < by["noisy input"]["psnr"] + 1  # the identity, rounded
    assert by["CBM3D"]["psnr"] > by["noisy input"]["psnr"] + 3
    evaluate.main(["--model", str(path), *args, "--noisy", "float"])
    scores = json.loads((tmp_path / f"eval_{clean_folder.name}_noise25_float.json").read_text())
    assert scores["noisy"] == "float"
    assert scores["mean"]["model"]["psnr"] == pytest.approx(by[str(path)]["psnr"], abs=1e-6)
    with pytest.raises(util.UserError, match="--noisy float applies to the denoising tasks"):
        evaluate.main(["--model", "bicubic", "--scale", "4", "--data", str(clean_folder), "--noisy", "float"])
    with pytest.raises(util.UserError, match="--noisy float applies to the denoising tasks"):  # before loading M
        evaluate.main(
            ["--model", str(tmp_path / "none.keras"), "--task", "sr4", "--data", str(clean_folder), "--noisy", "float"]
        )


def test_noise_map_study_trains_both_models_and_writes_the_table(hr_only, clean_folder, tmp_path):
    from studies import noise_map

    out = noise_map.main(
        ["--backprops", "16", "--dataset", str(hr_only), "--data", str(clean_folder), "--out", str(tmp_path)]
    )
    rows = json.loads((out / "noise_map.json").read_text())["rows"]
    assert set(rows) == {"blind (no map)", "true-sigma map"}
    for row in rows.values():  # barely trained: about the noisy input, far from a failure
        assert 10 < row["psnr_50"] < row["psnr_25"] < row["psnr_15"] < 45
    assert "| true-sigma map |" in (out / "noise_map.md").read_text()
    with pytest.raises(util.UserError, match="no images there"):
        noise_map.main(["--data", str(tmp_path / "none"), "--out", str(tmp_path)])
