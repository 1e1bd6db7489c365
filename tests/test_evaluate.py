"""The standard protocol of evaluate.py: published bicubic rows, tables, JSON, scale checks, denoising."""

import json

import numpy as np
import pytest
import tiny_models

import evaluate
import util
from util.data.tasks import Task
from util.evaluation import protocols
from util.evaluation.protocols import PUBLISHED_BICUBIC, benchmark_task, degrade, evaluate_folder, measure


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_reproduces_the_published_set5_row(benchmark_root, scale):
    mean = evaluate_folder(benchmark_root / "Set5", benchmark_task(f"sr{scale}"))["mean"]["baseline"]
    psnr, ssim = PUBLISHED_BICUBIC[("Set5", scale)]
    assert mean["psnr"] == pytest.approx(psnr, abs=0.05)
    assert mean["ssim"] == pytest.approx(ssim, abs=0.002)


def test_bicubic_set14_measures_greyscale_files_on_their_grey_values(benchmark_root):
    # Set14's bridge.png is greyscale: measured on Y of its replicated RGB it would read 1.3 dB
    # higher and the mean 30.33 dB; the published 30.24 dB measures it on its grey values.
    result = evaluate_folder(benchmark_root / "Set14", benchmark_task("sr2"))
    assert result["mean"]["baseline"]["psnr"] == pytest.approx(PUBLISHED_BICUBIC[("Set14", 2)][0], abs=0.05)
    assert len(result["images"]) == 14


def test_protocols_by_task_name():
    assert benchmark_task("sr4") == Task("sr4", scale=4)
    assert benchmark_task("noise25") == Task("noise25", noise_sigma=25.0)
    assert benchmark_task("x4noise64") == Task("x4noise64", scale=4, noise_sigma=64.0)
    with pytest.raises(util.UserError, match="no benchmark protocol"):
        benchmark_task("noise64blur")
    for name in ("x4", "x1", "sr", "sr1", "noise25blur"):
        with pytest.raises(util.UserError, match=f"TASK={name!r} is unknown"):
            benchmark_task(name)
    with pytest.raises(util.UserError, match="TASK='noise0': sigma 0 adds no noise"):
        benchmark_task("noise0")


def test_denoising_protocol_is_seeded_rounded_and_rgb():
    reference = np.full((40, 50, 3), 128, np.uint8)
    target, noisy = degrade(reference, benchmark_task("noise25"))
    assert noisy.dtype == np.uint8 and noisy.shape == reference.shape
    np.testing.assert_array_equal(target, reference)
    np.testing.assert_array_equal(noisy, degrade(reference, benchmark_task("noise25"))[1])  # seed 0, every time
    assert measure(noisy, target, benchmark_task("noise25"))["psnr"] == pytest.approx(20.17, abs=0.1)  # 255 / 25


@pytest.fixture(scope="module")
def sr4_model(tmp_path_factory):
    return tiny_models.save(tiny_models.upsampled_model(), tmp_path_factory.mktemp("run"))


def test_evaluate_prints_tables_and_writes_json_in_the_run_folder(sr4_model, small_sets, capsys):
    evaluate.main(["--model", str(sr4_model), "--data", str(small_sets / "Tiny5"), str(small_sets / "Grey")])
    printed = capsys.readouterr().out
    assert "| image | bicubic PSNR | bicubic SSIM | tiny (sr4) PSNR | tiny (sr4) SSIM |" in printed
    assert printed.count("| **mean** |") == 2 and "| coffee |" in printed and "| camera |" in printed
    result = json.loads((sr4_model.parent / "eval_Tiny5_sr4.json").read_text())
    assert result["task"] == "sr4" and result["info"]["task"] == "sr4" and len(result["images"]) == 3
    bicubic = evaluate_folder(small_sets / "Tiny5", benchmark_task("sr4"))["mean"]["baseline"]
    assert result["mean"]["baseline"] == bicubic
    model_scores = result["mean"]["model"]
    assert 15 < model_scores["psnr"] < 40 and 0 < model_scores["ssim"] <= 1


def test_evaluate_on_set5_gives_the_published_bicubic_row(sr4_model, benchmark_root, capsys):
    evaluate.main(["--model", str(sr4_model), "--data", str(benchmark_root / "Set5")])
    assert "| butterfly |" in capsys.readouterr().out
    result = json.loads((sr4_model.parent / "eval_Set5_sr4.json").read_text())
    assert len(result["images"]) == 5
    assert result["mean"]["baseline"]["psnr"] == pytest.approx(PUBLISHED_BICUBIC[("Set5", 4)][0], abs=0.05)


def test_without_benchmark_sets_evaluate_says_how_to_fetch_them(sr4_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(protocols, "BENCHMARK_DIR", tmp_path / "none")
    assert util.run_cli(evaluate.main, ["--model", str(sr4_model)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "python3 download.py benchmarks" in lines[0] and "Set5" in lines[0]


def test_scale_mismatch_is_a_one_line_error(sr4_model, small_sets, capsys):
    args = ["--model", str(sr4_model), "--data", str(small_sets / "Tiny5"), "--scale", "2"]
    assert util.run_cli(evaluate.main, args) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "the model's scale is 4" in lines[0]


def test_bicubic_writes_to_out(tmp_path, small_sets, capsys):
    evaluate.main(["--model", "bicubic", "--scale", "3", "--data", str(small_sets / "Tiny5"), "--out", str(tmp_path)])
    mean = evaluate_folder(small_sets / "Tiny5", benchmark_task("sr3"))["mean"]["baseline"]
    assert f"| **mean** | {mean['psnr']:.2f} | {mean['ssim']:.4f} |" in capsys.readouterr().out
    assert json.loads((tmp_path / "eval_Tiny5_sr3.json").read_text())["model"] == "bicubic"


def test_bicubic_set5_x3_row(tmp_path, benchmark_root, capsys):
    evaluate.main(
        ["--model", "bicubic", "--scale", "3", "--data", str(benchmark_root / "Set5"), "--out", str(tmp_path)]
    )
    assert "| **mean** | 30.4" in capsys.readouterr().out


def test_denoising_model_on_a_small_folder(tmp_path, small_sets, capsys):
    model = tiny_models.save(tiny_models.upsampled_model("noise64", 1, 8), tmp_path / "run")
    folder = tmp_path / "Tiny"
    folder.mkdir()
    from PIL import Image

    Image.open(small_sets / "Tiny5" / "coffee.png").crop((0, 0, 96, 80)).save(folder / "bird.png")
    evaluate.main(["--model", str(model), "--data", str(folder), "--task", "noise25"])
    assert "| image | noisy input PSNR |" in capsys.readouterr().out
    result = json.loads((model.parent / "eval_Tiny_noise25.json").read_text())
    assert result["images"][0]["baseline"]["psnr"] == pytest.approx(20.5, abs=1.0)


def test_self_ensemble_writes_its_own_json(tmp_path, small_sets, capsys):
    model = tiny_models.save(tiny_models.lr_model(), tmp_path / "run")
    folder = tmp_path / "Tiny"
    folder.mkdir()
    from PIL import Image

    Image.open(small_sets / "Tiny5" / "coffee.png").crop((0, 0, 96, 80)).save(folder / "bird.png")
    evaluate.main(["--model", str(model), "--data", str(folder)])
    evaluate.main(["--model", str(model), "--data", str(folder), "--ensemble"])
    assert "tiny-lr (sr4) + self-ensemble PSNR" in capsys.readouterr().out
    plain = json.loads((model.parent / "eval_Tiny_sr4.json").read_text())
    ensembled = json.loads((model.parent / "eval_Tiny_sr4_ensemble.json").read_text())
    assert ensembled["ensemble"] and not plain["ensemble"]
    assert ensembled["mean"]["model"]["psnr"] != plain["mean"]["model"]["psnr"]
    with pytest.raises(util.UserError, match="--ensemble applies to a model"):
        evaluate.main(["--model", "bicubic", "--data", str(folder), "--ensemble"])


def test_hr_beside_lr_bicubic_scores_only_the_hr_images(small_sets, tmp_path):
    """The EDSR / BasicSR archives' layout: HR/ beside LR_bicubic/X4/ with the same file names."""
    from PIL import Image

    folder = tmp_path / "Set2"
    (folder / "HR").mkdir(parents=True)
    (folder / "LR_bicubic" / "X4").mkdir(parents=True)
    for path in sorted((small_sets / "Tiny5").glob("*.png"))[:2]:
        image = Image.open(path)
        image.save(folder / "HR" / path.name)
        image.resize((image.width // 4, image.height // 4), Image.BICUBIC).save(
            folder / "LR_bicubic" / "X4" / path.name
        )
    task = benchmark_task("sr4")
    result = evaluate_folder(folder, task)
    assert len(result["images"]) == 2
    assert result["mean"] == evaluate_folder(folder / "HR", task)["mean"]
    (folder / "HR").rename(folder / "GT")  # no HR/ folder: LR folders are still never references
    assert len(evaluate_folder(folder, task)["images"]) == 2


def test_images_too_small_for_the_protocol_are_a_one_line_error(tmp_path):
    from PIL import Image

    folder = tmp_path / "Small"
    folder.mkdir()
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(folder / "tiny.png")
    for name in ("sr4", "sr2", "noise25"):
        with pytest.raises(util.UserError, match=r"tiny.png: 10x10 px is too small for the .* protocol") as err:
            evaluate_folder(folder, benchmark_task(name))
        assert "\n" not in str(err.value)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(folder / "tiny.png")
    assert len(evaluate_folder(folder, benchmark_task("sr4"))["images"]) == 1  # 20 - 2 x 4 = 12 >= 11
