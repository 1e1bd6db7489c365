"""Short real trainings of the two prototype models, and their reports."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import photo_pairs

import util
from util.models.loading import load_model

REPO = Path(__file__).resolve().parents[1]
TINY = ["--train-patches", "16", "--backprops", "32", "--batch", "8", "--epochs", "2", "--val-patches", "8"]


@pytest.fixture(scope="module")
def tiny_pairs(tmp_path_factory):
    """A data set in download.py's layout: 24 train / 8 test patches of scikit-image photos."""
    return photo_pairs(tmp_path_factory.mktemp("datasets") / "tiny", train=24, test=8)


def check_run(run_dir: Path, task: str, n_test: int):
    for name in ("model.keras", "results.json", "results.md", "comparison.png", "training_curve.png", "training.csv"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "backup").exists(), "BackupAndRestore leaves nothing behind after a finished run"
    if shutil.which("dot"):
        assert (run_dir / "model.png").stat().st_size > 0, "the diagram is drawn where Graphviz is installed"
    results = json.loads((run_dir / "results.json").read_text())
    for key in ("model", "dataset", "task", "train_patches", "backprops", "wall_seconds", "n_test"):
        assert key in results
    assert results["task"] == task and results["n_test"] == n_test and results["train_patches"] == 16
    assert results["backprops"] == 32
    for scores in (results["baseline"], results["model_scores"]):
        assert np.isfinite(scores["psnr"]) and 5 < scores["psnr"] < 60
        assert 0 < scores["ssim"] <= 1
    model, info = load_model(run_dir / "model.keras")
    assert info["task"] == task
    out = np.asarray(model(np.zeros((1, 32, 48, 3), np.float32)))
    assert out.shape == (1, 32, 48, 3) and np.isfinite(out).all()
    return results


def test_inception2_trains_scores_and_test_role_reproduces(tiny_pairs, tmp_path):
    import inception2

    args = ["--dataset", str(tiny_pairs), "--out", str(tmp_path), *TINY]
    inception2.main(args)
    run_dir = tmp_path / "inception2-sr4-16-tiny"
    results = check_run(run_dir, "sr4", 8)
    # The baseline of the test pairs is bicubic, recomputed independently here.
    lr, hr = np.load(tiny_pairs / "test_sr4.npy"), np.load(tiny_pairs / "test_hr.npy")
    bicubic = util.bicubic_upscale(lr, 4, batch=True)
    expected = np.mean([util.psnr(b, h) for b, h in zip(bicubic, hr, strict=True)])
    assert results["baseline"]["psnr"] == pytest.approx(expected, abs=1e-9)

    inception2.main([*args, "--role", "test"])
    again = json.loads((run_dir / "test_results.json").read_text())
    assert again["model_scores"]["psnr"] == pytest.approx(results["model_scores"]["psnr"], abs=1e-6)
    assert again["model_scores"]["ssim"] == pytest.approx(results["model_scores"]["ssim"], abs=1e-6)


def test_unet_autoencoder_trains_for_denoising(tiny_pairs, tmp_path):
    import unet_autoencoder

    unet_autoencoder.main(["--dataset", str(tiny_pairs), "--out", str(tmp_path), "--task", "noise64", *TINY])
    results = check_run(tmp_path / "unet_autoencoder-noise64-16-tiny", "noise64", 8)
    assert results["baseline_name"] == "noisy input"


def test_missing_dataset_is_one_line_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "inception2.py", "--dataset", "nowhere", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: DATASET='nowhere'") and "download.py" in lines[-1]
    assert "Traceback" not in proc.stderr


def test_bad_constant_is_one_line_error(tiny_pairs, tmp_path):
    import inception2

    with pytest.raises(util.UserError, match="TASK='sr3'"):
        inception2.main(["--dataset", str(tiny_pairs), "--task", "sr3"])
    with pytest.raises(util.UserError, match="BACKPROPS=0"):
        inception2.main(["--dataset", str(tiny_pairs), "--backprops", "0"])


def test_bad_recipe_constant_is_one_line_error(tiny_pairs, tmp_path):
    import edsr_lite

    args = ["--dataset", str(tiny_pairs), "--out", str(tmp_path), *TINY]
    for flag, value, named, *more in (
        ("--augment", "flips,rotate", "AUGMENT='flips,rotate': unknown rotate"),
        ("--variant", "layer-norm", "--variant 'layer-norm' is unknown for this script; use some of mse,"),
        ("--variant", "no-invert", "--variant 'no-invert' is unknown"),
        ("--ema", "1.5", "EMA=1.5 is not a momentum"),
        ("--augment", "flips,shifts", "AUGMENT=shifts applies to the bicubic SR tasks", "--task", "noise64"),
        ("--task", "x2noise25", "TASK='x2noise25': download.py writes no training pairs for it"),
        ("--task", "noise300", "TASK='noise300': sigma 300 is outside 0-255"),
        ("--task", "defocus20", "TASK='defocus20': a defocus radius must be above 0 and at most 16"),
        ("--blocks", "0", "BLOCKS=0 must be at least 1"),
        ("--val-patches", "0", "VAL_PATCHES=0 must be at least 1"),
        ("--precision", "float16", "PRECISION='float16' is unknown"),
    ):
        with pytest.raises(util.UserError, match=named) as err:
            edsr_lite.main([*args, flag, value, *more])
        assert "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())  # nothing written


def test_auto_augment_suits_the_task_and_the_data():
    from util.data.pairs import PhotoPairs, RasterPairs

    assert PhotoPairs.resolve_augment(("auto",), "sr4") == ("flips", "channels", "shifts")
    assert PhotoPairs.resolve_augment(("auto",), "noise64") == ("flips", "channels")
    assert RasterPairs.resolve_augment(("auto",), "sr4") == ("flips", "invert", "amplitude")
    with pytest.raises(util.UserError, match="channels do.*not apply to rasters"):
        RasterPairs.resolve_augment(("flips", "channels"), "sr4")


def test_edsr_lite_starts_as_exactly_bicubic():
    """output_init="zeros": before training the network adds nothing to its bicubic skip."""
    import edsr_lite
    from util.models.layers import BicubicUpsample

    x = np.random.default_rng(0).random((2, 16, 24, 3)).astype(np.float32)
    for task, scale in (("sr2", 2), ("sr4", 4), ("sr8", 8)):
        for init, exact in (("zeros", True), ("glorot_uniform", False)):
            for luma in (False, True):
                model = edsr_lite.build_model(task, output_init=init, luma=luma)
                bicubic = np.asarray(BicubicUpsample(scale)(x))
                assert np.array_equal(np.asarray(model(x)), bicubic) == exact, (task, init, luma)


def test_luma_detail_changes_the_luma_and_leaves_the_chroma_bicubic():
    """--luma: one detail channel added to R, G and B alike, in phase space before the one depth_to_space."""
    import edsr_lite
    from util.models.layers import BicubicUpsample, keras, model_info

    x = np.random.default_rng(1).random((2, 12, 20, 3)).astype(np.float32)
    model = edsr_lite.build_model("sr4", filters=8, blocks=1, output_init="glorot_uniform", luma=True)
    assert "luma detail" in model_info(model)["architecture"]
    assert model.layers[-2].output.shape[-1] == 16  # the last convolution: one channel per sub-pixel phase
    detail = np.asarray(model(x)) - np.asarray(BicubicUpsample(4)(x))
    assert np.abs(detail).max() > 1e-3
    np.testing.assert_allclose(detail[..., 1], detail[..., 0], atol=1e-6)
    np.testing.assert_allclose(detail[..., 2], detail[..., 0], atol=1e-6)
    # The detail is the last convolution's phases rearranged, as depth_to_space places them.
    tail = keras.Model(model.input, model.layers[-2].output)
    expected = np.asarray(keras.ops.depth_to_space(tail(x), 4))[..., 0]
    np.testing.assert_allclose(detail[..., 0], expected, atol=1e-6)
    # Rasters and denoising have no chroma: the option does not apply there.
    assert "luma" not in model_info(edsr_lite.build_model("sr4", channels=1, luma=True))["architecture"]


def test_an_rgb_model_becomes_a_luma_model_with_the_same_luma(tmp_path):
    """studies/luma_detail.py: the RGB model's luma, to float rounding, with bicubic chroma; non-RGB refused."""
    import edsr_lite
    from studies import luma_detail
    from util.models.layers import BicubicUpsample, model_info

    rgb = edsr_lite.build_model("sr4", filters=8, blocks=2, output_init="glorot_uniform")
    rgb.save(tmp_path / "rgb.keras")
    luma_detail.main([str(tmp_path / "rgb.keras"), "--out", str(tmp_path / "luma.keras")])
    luma, info = load_model(tmp_path / "luma.keras")
    assert "luma detail" in info["architecture"] and info["task"] == "sr4"
    x = np.random.default_rng(2).random((1, 16, 12, 3)).astype(np.float32)
    ours, theirs, bicubic = (np.asarray(m(x)) for m in (luma, rgb, BicubicUpsample(4)))
    assert np.abs((theirs - bicubic) @ luma_detail.LUMA).max() > 1e-2  # the RGB model's detail is not nothing
    np.testing.assert_allclose(ours @ luma_detail.LUMA, theirs @ luma_detail.LUMA, atol=1e-5)
    chroma = ours - (ours @ luma_detail.LUMA)[..., None]
    np.testing.assert_allclose(chroma, bicubic - (bicubic @ luma_detail.LUMA)[..., None], atol=1e-5)
    grey = edsr_lite.build_model("sr4", filters=8, blocks=2, channels=1)
    with pytest.raises(util.UserError, match="not an RGB super-resolution model"):
        luma_detail.luma_model(grey, model_info(grey))


def test_ema_weights_are_the_ones_validated_and_saved(tiny_pairs, tmp_path):
    """The saved model (best checkpoint) scores on the validation pairs the val_loss logged for it."""
    import keras

    import edsr_lite
    from util.data import pipelines

    # float32: the logged val_loss is computed in the training precision, the saved model runs in float32.
    base = [
        "--dataset",
        str(tiny_pairs),
        *TINY,
        "--filters",
        "8",
        "--blocks",
        "1",
        "--epochs",
        "2",
        "--precision",
        "float32",
    ]
    saved = {}
    for ema in ("0.5", "0"):
        out = tmp_path / ema
        edsr_lite.main([*base, "--out", str(out), "--ema", ema, "--backprops", "64"])
        run_dir = out / "edsr_lite-sr4-16-tiny"
        logged = min(float(row.split(",")[-1]) for row in (run_dir / "training.csv").read_text().splitlines()[1:])
        model, _ = load_model(run_dir / "model.keras")
        val_lr, val_hr = pipelines.load_split(tiny_pairs, "sr4", "train", 8, start=16)
        x, y = pipelines._to_float(val_lr, val_hr)
        assert float(keras.losses.MeanAbsoluteError()(y, model(x))) == pytest.approx(logged, rel=1e-4), ema
        saved[ema] = model.get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(saved["0.5"], saved["0"], strict=True))
    with pytest.raises(util.UserError, match="EMA=1 is not a momentum"):
        edsr_lite.main([*base, "--out", str(tmp_path), "--ema", "1"])


def test_sweep_writes_the_prototype_table_and_plot(tiny_pairs, tmp_path):
    import edsr_lite

    args = ["--dataset", str(tiny_pairs), "--out", str(tmp_path), *TINY, "--filters", "8", "--blocks", "1"]
    edsr_lite.main([*args, "--sweep", "8,16", "--ensemble"])
    sweep_dir = tmp_path / "sweep-sr4-tiny"
    table = (sweep_dir / "edsr_lite.md").read_text()
    assert "| | HR | LR (bicubic) | 16 patches | 8 patches |" in table
    assert table.count("\n| PSNR | ∞ |") == 1 and "| SSIM | 1.0000 |" in table and "| training (s) |" in table
    assert "| PSNR, self-ensemble | | |" in table and "| SSIM, self-ensemble | | |" in table
    runs = json.loads((sweep_dir / "edsr_lite.json").read_text())["runs"]
    assert [r["train_patches"] for r in runs] == [16, 8]
    assert runs[0]["backprops"] == runs[1]["backprops"] == 32  # same budget whatever the size
    assert (sweep_dir / "sweep.png").stat().st_size > 0

    # The batched self-ensemble of the scoring is enhance.py's, patch by patch.
    # (Batches of other sizes may round a pixel the other way: float sums in another order.)
    from util.evaluation.protocols import score_patches
    from util.inference.tiles import predict_patches, self_ensemble
    from util.models.loading import prepare_input

    model, info = load_model(tmp_path / "edsr_lite-sr4-16-tiny" / "model.keras")
    lr, hr = np.load(tiny_pairs / "test_sr4.npy"), np.load(tiny_pairs / "test_hr.npy")
    means = np.stack([self_ensemble(model, prepare_input(patch, info)) for patch in lr])
    expected = np.clip(np.floor(means * 255.0 + 0.5), 0, 255).astype(np.uint8)
    batched = predict_patches(model, info, lr, ensemble=True)
    differ = np.abs(batched.astype(int) - expected.astype(int))
    assert differ.max() <= 1 and differ.mean() < 1e-3
    assert not np.array_equal(batched, predict_patches(model, info, lr))  # the ensemble is not one pass
    assert runs[0]["ensemble_scores"]["psnr"] == pytest.approx(score_patches(expected, hr)["psnr"], abs=1e-3)


@pytest.fixture
def ablation_on_small_set(small_sets, monkeypatch):
    """The ablation scores on a folder every clone has instead of Set5."""
    from util.training import studies

    monkeypatch.setattr(studies, "ablation_set", lambda: small_sets / "Tiny5")
    return small_sets / "Tiny5"


def test_ablation_undoes_one_choice_per_run_and_resumes(tiny_pairs, tmp_path, capsys, ablation_on_small_set):
    import edsr_lite
    from util.evaluation.protocols import benchmark_task, evaluate_folder

    args = ["--dataset", str(tiny_pairs), "--out", str(tmp_path), *TINY, "--filters", "8", "--blocks", "1"]
    edsr_lite.main([*args, "--ablation", "recipe,no-skip"])
    out_dir = tmp_path / "ablation-sr4-tiny"
    recipe = json.loads((out_dir / "edsr_lite-recipe" / "results.json").read_text())
    no_skip = json.loads((out_dir / "edsr_lite-no-skip" / "results.json").read_text())
    assert recipe["settings"]["model_args"]["bicubic_skip"] is True
    assert no_skip["settings"]["model_args"]["bicubic_skip"] is False and no_skip["settings"]["variants"] == ["no-skip"]
    assert "bicubic skip" in recipe["architecture"] and "bicubic skip" not in no_skip["architecture"]
    assert recipe["backprops"] == no_skip["backprops"] == 32
    set5 = recipe["ablation"]["set5"]
    bicubic = evaluate_folder(ablation_on_small_set, benchmark_task("sr4"))["mean"]["baseline"]
    assert set5["baseline"] == bicubic  # bicubic by the standard protocol
    assert 10 < set5["model"]["psnr"] < 40
    table = (out_dir / "edsr_lite.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[0] for row in rows] == ["| recipe", "| no-skip", "| bicubic"]
    delta = no_skip["ablation"]["set5"]["model"]["psnr"] - set5["model"]["psnr"]
    assert f"| {delta:+.2f} |" in rows[1]

    capsys.readouterr()
    edsr_lite.main([*args, "--ablation", "no-skip,mse"])  # no-skip is done: only mse trains
    out = capsys.readouterr().out
    assert "ablation no-skip: already trained" in out and (out_dir / "edsr_lite-mse" / "results.json").exists()
    names = "recipe, no-flips, no-channels, no-shifts, mse, cosine-lr, no-skip, hr-space, batchnorm, dropout, "
    names += "no-ema, glorot-output"
    with pytest.raises(util.UserError, match=f"can run {names};"):
        edsr_lite.main([*args, "--ablation", "weight-decay"])


def test_ablation_gives_a_costlier_variant_the_same_training_time(
    tiny_pairs, tmp_path, monkeypatch, ablation_on_small_set
):
    import edsr_lite
    from util.training import speed, studies

    monkeypatch.setattr(studies, "SPEED_SECONDS", 0.3)
    measure = speed.training_speed

    def four_times_slower_in_hr_space(build_model, settings, seconds, validation_patches=0):
        """The speed measured (the code runs), then fixed: a busy machine's timing must not decide the test."""
        measured = measure(build_model, settings, seconds, validation_patches)
        return {**measured, "samples_per_second": 100.0 if settings.model_kwargs.get("lr_space", True) else 25.0}

    monkeypatch.setattr(speed, "training_speed", four_times_slower_in_hr_space)
    args = ["--dataset", str(tiny_pairs), "--out", str(tmp_path), *TINY, "--filters", "8", "--blocks", "1"]
    edsr_lite.main([*args, "--backprops", "320", "--ablation", "hr-space,batchnorm,dropout"])
    out_dir = tmp_path / "ablation-sr4-tiny"
    hr_space = json.loads((out_dir / "edsr_lite-hr-space" / "results.json").read_text())
    assert "HR-space input" in hr_space["architecture"]
    assert hr_space["settings"]["model_args"]["lr_space"] is False
    assert hr_space["backprops"] == 80 and "80 backprops" in hr_space["ablation"]["change"]  # 320 x 25 / 100
    for name, note in (("batchnorm", "batch norm"), ("dropout", "dropout 0.2")):
        results = json.loads((out_dir / f"edsr_lite-{name}" / "results.json").read_text())
        assert note in results["architecture"] and results["backprops"] == 320


def test_minutes_sets_backprops_from_the_speed_measured_here(tiny_pairs, tmp_path, monkeypatch, capsys):
    import edsr_lite
    from util.training import speed, studies

    monkeypatch.setattr(studies, "SPEED_SECONDS", 0.3)
    args = ["--dataset", str(tiny_pairs), "--out", str(tmp_path), *TINY, "--filters", "8", "--blocks", "1"]
    with pytest.raises(util.UserError, match="--minutes 0: give a positive"):
        edsr_lite.main([*args, "--minutes", "0"])
    assert not list(tmp_path.iterdir())
    measured = {"samples_per_second": 50.0, "validation_seconds": 10.0}
    monkeypatch.setattr(speed, "training_speed", lambda *a, **k: measured)
    with pytest.raises(util.UserError, match="--minutes 0.5: the 2 validations alone take 20 s here"):
        edsr_lite.main([*args, "--minutes", "0.5"])  # TINY: 2 epochs, each validated in 10 s of the 30
    measured["validation_seconds"] = 1.0
    edsr_lite.main([*args, "--minutes", "0.5"])  # 50 samples/s x (30 - 2 x 1) s = 1400 -> 2 epochs of batch 8
    out = capsys.readouterr().out
    assert "--minutes 0.5: 50.0 samples/s and 2.0 s of validation measured here -> BACKPROPS 1392" in out
    results = json.loads((tmp_path / "edsr_lite-sr4-16-tiny" / "results.json").read_text())
    assert results["backprops"] == 1392 and results["minutes_asked"] == 0.5


def test_predict_role_enhances_a_folder_with_the_runs_model(tiny_pairs, tmp_path):
    from PIL import Image

    import inception2

    args = ["--dataset", str(tiny_pairs), "--out", str(tmp_path), *TINY]
    inception2.main(args)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.load(tiny_pairs / "test_sr4.npy")[0]).save(photos / "a.png")
    Image.fromarray(np.load(tiny_pairs / "test_sr4.npy")[1][..., 0]).convert("L").save(photos / "grey.png")
    inception2.main([*args, "--role", "predict", "--input", str(photos)])
    out = tmp_path / "inception2-sr4-16-tiny" / "predictions"
    with Image.open(out / "a_x4.png") as colour, Image.open(out / "grey_x4.png") as grey:
        assert colour.size == (128, 128) and colour.mode == "RGB"
        assert grey.size == (128, 128) and grey.mode == "L"


def test_help_describes_each_constant_once_from_its_comment(capsys):
    import edsr_lite
    from util.training.settings import constants_block

    described = constants_block(Path(edsr_lite.__file__))
    assert list(described)[:3] == ["DATASET", "TASK", "TRAIN_PATCHES"] and "FILTERS" in described
    for ablation_only in ("INPUT_KIND", "NORM", "DROPOUT", "BICUBIC_SKIP", "OUTPUT_INIT"):
        assert ablation_only not in described
    with pytest.raises(SystemExit):
        edsr_lite.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name, comment in described.items():
        assert f"--{name.lower().replace('_', '-')}" in text
        assert " ".join(comment.split()) in text, name


def test_settings_are_frozen_typed_and_complete(tmp_path):
    import dataclasses

    import edsr_lite
    import inception2
    from util.training.roles import MODEL_SCRIPTS
    from util.training.settings import parse_settings

    settings, options = MODEL_SCRIPTS["edsr_lite"].settings(["--blocks", "2", "--learning-rate", "0.002"])
    assert settings.model_kwargs["blocks"] == 2 and settings.model_kwargs["output_init"] == "zeros"
    assert settings.learning_rate == 0.002 and settings.augment == ("flips", "channels", "shifts")
    assert options.role == "train" and options.variant == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.batch = 4
    with pytest.raises(util.UserError, match="BATCH=0 must be at least 1"):
        dataclasses.replace(settings, batch=0)  # a replaced setting is validated again
    prototype, _ = MODEL_SCRIPTS["inception2"].settings([])
    assert prototype.loss == "mse" and prototype.augment == () and prototype.model_args == ()

    # A script whose block lacks a setting, or holds one nobody reads, fails at start-up.
    script = tmp_path / "lacking.py"
    block = inception2.__file__
    text = Path(block).read_text()
    script.write_text(text.replace("EMA = 0.0  #", "WEIGHT_DECAY = 0.0  #"))
    module = type(sys)("lacking")
    module.__file__ = str(script)
    vars(module).update({k: v for k, v in vars(inception2).items() if k.isupper()}, WEIGHT_DECAY=0.0)
    with pytest.raises(util.UserError, match="constant WEIGHT_DECAY is neither a setting"):
        parse_settings(module, inception2.build_model, [], "")
    script.write_text(text.replace("EMA = 0.0  #", "# EMA"))
    with pytest.raises(util.UserError, match="the constants block lacks EMA"):
        parse_settings(module, inception2.build_model, [], "")
    assert edsr_lite.build_model  # imported for the registry


def test_variant_trains_the_recipe_with_a_model_argument_changed(tiny_pairs, tmp_path):
    import edsr_lite

    args = ["--dataset", str(tiny_pairs), "--out", str(tmp_path), *TINY, "--filters", "8", "--blocks", "1"]
    edsr_lite.main([*args, "--variant", "glorot-output,no-ema,no-shifts"])
    results = json.loads((tmp_path / "edsr_lite-sr4-16-tiny" / "results.json").read_text())
    settings = results["settings"]
    assert settings["model_args"]["output_init"] == "glorot_uniform" and settings["ema"] == 0.0
    assert settings["augment"] == ["flips", "channels"] and settings["variants"] == [
        "glorot-output",
        "no-ema",
        "no-shifts",
    ]


def test_an_sr_unet_with_luma_detail_trains_with_the_sub_pixel_shifts(tiny_pairs, tmp_path):
    """A 3-level U-Net takes inputs whose sides are multiples of 4: the shifted pairs are cropped to that."""
    import edsr_lite
    from util.data.pipelines import _shift

    hr = np.zeros((128, 128, 3), np.uint8)
    for multiple, side in ((1, 124), (4, 112)):
        lr, crop = _shift(hr, 4, size_multiple=multiple)
        assert crop.shape[:2] == (side, side) and lr.shape[:2] == (side // 4, side // 4)
    args = ["--dataset", str(tiny_pairs), "--out", str(tmp_path), *TINY, "--filters", "4", "--luma"]
    edsr_lite.main([*args, "--sr-levels", "3", "--level-blocks", "1"])
    results = json.loads((tmp_path / "edsr_lite-sr4-16-tiny" / "results.json").read_text())
    assert results["settings"]["augment"] == ["flips", "channels", "shifts"] and results["backprops"] == 32
    assert np.isfinite(results["model_scores"]["psnr"])
    model, info = load_model(tmp_path / "edsr_lite-sr4-16-tiny" / "model.keras")
    assert info["size_multiple"] == 4 and "3-level U-Net" in info["architecture"] and "luma" in info["architecture"]
    assert np.asarray(model(np.zeros((1, 8, 12, 3), np.float32))).shape == (1, 32, 48, 3)


def test_runs_with_other_settings_get_their_own_folder_and_the_same_are_reused(tiny_pairs, tmp_path, capsys):
    import edsr_lite

    args = ["--dataset", str(tiny_pairs), "--out", str(tmp_path), *TINY, "--filters", "8", "--blocks", "1"]
    edsr_lite.main([*args, "--learning-rate", "0.001"])
    edsr_lite.main([*args, "--learning-rate", "0.01"])
    first, second = tmp_path / "edsr_lite-sr4-16-tiny", tmp_path / "edsr_lite-sr4-16-tiny-2"
    for folder, rate in ((first, 0.001), (second, 0.01)):
        assert json.loads((folder / "settings.json").read_text())["learning_rate"] == rate
        assert json.loads((folder / "results.json").read_text())["learning_rate"] == rate
        assert len((folder / "training.csv").read_text().splitlines()) == 1 + 2  # header and its own 2 epochs
    assert "holds a run with other settings; this one is edsr_lite-sr4-16-tiny-2" in capsys.readouterr().out
    before = (first / "results.json").stat().st_mtime_ns
    edsr_lite.main([*args, "--learning-rate", "0.001"])  # the same settings: reused, not trained again
    assert "already trained with these settings" in capsys.readouterr().out
    assert (first / "results.json").stat().st_mtime_ns == before
    assert len((first / "training.csv").read_text().splitlines()) == 3
    edsr_lite.main([*args, "--learning-rate", "0.01", "--role", "test"])  # finds the run of its settings
    assert (second / "test_results.json").exists() and not (first / "test_results.json").exists()


def test_a_resumed_run_keeps_its_best_checkpoint_and_its_training_time(tiny_pairs, tmp_path, monkeypatch):
    import keras

    import edsr_lite

    class Killed(keras.callbacks.Callback):
        """Stands for a kill after the first epoch (its backup and logs are written)."""

        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    args = ["--dataset", str(tiny_pairs), "--out", str(tmp_path), *TINY, "--filters", "8", "--blocks", "1"]
    monkeypatch.setattr(keras.callbacks, "TerminateOnNaN", Killed)
    with pytest.raises(KeyboardInterrupt):
        edsr_lite.main(args)
    monkeypatch.undo()
    folder = tmp_path / "edsr_lite-sr4-16-tiny"
    first_part = json.loads((folder / "train_seconds.json").read_text())["seconds"]
    first_loss = float((folder / "training.csv").read_text().splitlines()[1].split(",")[-1])
    thresholds = []

    class Checkpoint(keras.callbacks.ModelCheckpoint):
        def __init__(self, *a, initial_value_threshold=None, **k):
            thresholds.append(initial_value_threshold)
            super().__init__(*a, initial_value_threshold=initial_value_threshold, **k)

    monkeypatch.setattr(keras.callbacks, "ModelCheckpoint", Checkpoint)
    edsr_lite.main(args)
    assert thresholds == [pytest.approx(first_loss)]  # the best of the first part, not None
    results = json.loads((folder / "results.json").read_text())
    assert results["train_seconds"] >= round(first_part, 1) > 0  # both parts counted
    assert len((folder / "training.csv").read_text().splitlines()) == 1 + 2
    assert not (folder / "train_seconds.json").exists() and not (folder / "backup").exists()


def test_train_patches_beyond_the_data_name_the_run_after_the_real_count(tiny_pairs, tmp_path, capsys):
    import edsr_lite

    args = ["--dataset", str(tiny_pairs), "--out", str(tmp_path), *TINY, "--filters", "8", "--blocks", "1"]
    edsr_lite.main([*args, "--train-patches", "100"])
    out = capsys.readouterr().out
    assert "TRAIN_PATCHES=100, but" in out and "has 24 training pairs: all are used" in out
    results = json.loads((tmp_path / "edsr_lite-sr4-24-tiny" / "results.json").read_text())
    assert results["train_patches"] == 24 and results["settings"]["train_patches"] == 24
    assert not (tmp_path / "edsr_lite-sr4-100-tiny").exists()


def test_role_test_of_a_shipped_model_writes_under_out_not_beside_it(tiny_pairs, tmp_path, monkeypatch):
    import shutil

    import edsr_lite
    from util.training import roles

    shipped = tmp_path / "assets" / "models"
    shipped.mkdir(parents=True)
    shutil.copy(REPO / "assets" / "models" / "sr4.keras", shipped / "sr4.keras")
    monkeypatch.setattr(roles, "SHIPPED", tmp_path / "assets")
    out = tmp_path / "runs"
    edsr_lite.main(
        ["--dataset", str(tiny_pairs), "--out", str(out), "--role", "test", "--model", str(shipped / "sr4.keras")]
    )
    assert sorted(p.name for p in shipped.iterdir()) == ["sr4.keras"]
    results = json.loads((out / "test-sr4-tiny" / "test_results.json").read_text())
    assert results["n_test"] == 8 and results["model_scores"]["psnr"] > results["baseline"]["psnr"]


# ---- Data larger than memory: pairs read from disk as training runs ----------------------------------------


def test_patch_file_reads_the_npy_patches_by_index_and_views_share_the_file(tiny_pairs):
    from util.data.pipelines import PatchFile, patch_files

    hr = np.load(tiny_pairs / "train_hr.npy")
    whole = PatchFile(tiny_pairs / "train_hr.npy")
    assert len(whole) == len(hr) and whole.nbytes == hr.nbytes
    np.testing.assert_array_equal(whole.read(5), hr[5])
    odd = whole[1::2]  # a worker's share
    assert len(odd) == len(hr) // 2
    np.testing.assert_array_equal(odd.read(2), hr[5])
    lr, target = patch_files(tiny_pairs, "sr4", "train", 10)
    assert (len(lr), len(target), lr.read(0).shape) == (10, 10, (32, 32, 3))
    assert patch_files(tiny_pairs, "noise25", "train")[0] is None  # synthetic: HR only


@pytest.mark.parametrize(("script", "task"), [("inception2", "sr4"), ("edsr_lite", "noise25")])
def test_training_streams_pairs_larger_than_memory(tiny_pairs, tmp_path, monkeypatch, capsys, script, task):
    """Above util.data.pipelines.IN_MEMORY_BYTES the pairs are read from disk: same run, same kind of results."""
    import importlib

    from util.data import pipelines

    monkeypatch.setattr(pipelines, "IN_MEMORY_BYTES", 0)
    importlib.import_module(script).main(["--dataset", str(tiny_pairs), "--out", str(tmp_path), "--task", task, *TINY])
    assert "training pairs are read from disk" in capsys.readouterr().out
    results = json.loads(next(tmp_path.glob("*/results.json")).read_text())
    assert results["train_patches"] == 16 and results["backprops"] == 32
    assert np.isfinite(results["model_scores"]["psnr"]) and results["model_scores"]["psnr"] > 10
