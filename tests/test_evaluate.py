"""The standard protocol of evaluate.py: published bicubic rows, tables, JSON, scale checks, denoising."""

import json
from pathlib import Path

import numpy as np
import pytest
import tiny_models

import evaluate
import util
from util.evaluation import PUBLISHED_BICUBIC, Protocol, degrade, evaluate_folder, measure, parse_protocol

BENCHMARK = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmark"  # never copied into the repo
SET5, SET14 = BENCHMARK / "Set5", BENCHMARK / "Set14"


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_reproduces_the_published_set5_row(scale):
    mean = evaluate_folder(SET5, Protocol(scale=scale))["mean"]["baseline"]
    psnr, ssim = PUBLISHED_BICUBIC[("Set5", scale)]
    assert mean["psnr"] == pytest.approx(psnr, abs=0.05)
    assert mean["ssim"] == pytest.approx(ssim, abs=0.002)


def test_bicubic_set14_measures_greyscale_files_on_their_grey_values():
    # Set14's bridge.png is greyscale: measured on Y of its replicated RGB it would read 1.3 dB
    # higher and the mean 30.33 dB; the published 30.24 dB measures it on its grey values.
    result = evaluate_folder(SET14, Protocol(scale=2))
    assert result["mean"]["baseline"]["psnr"] == pytest.approx(PUBLISHED_BICUBIC[("Set14", 2)][0], abs=0.05)
    assert len(result["images"]) == 14


def test_protocols_by_name():
    assert parse_protocol("sr4") == parse_protocol("x4") == Protocol(scale=4)
    assert parse_protocol("noise25") == Protocol(noise_sigma=25.0)
    assert parse_protocol("x4noise64") == Protocol(scale=4, noise_sigma=64.0)
    assert Protocol(scale=4, noise_sigma=64.0).name == "x4noise64"
    for name in ("noise64blur", "x1", "sr", "noise0"):
        with pytest.raises(util.UserError, match="no benchmark protocol"):
            parse_protocol(name)


def test_denoising_protocol_is_seeded_rounded_and_rgb():
    reference = np.full((40, 50, 3), 128, np.uint8)
    target, noisy = degrade(reference, Protocol(noise_sigma=25))
    assert noisy.dtype == np.uint8 and noisy.shape == reference.shape
    np.testing.assert_array_equal(target, reference)
    np.testing.assert_array_equal(noisy, degrade(reference, Protocol(noise_sigma=25))[1])  # seed 0, every time
    assert measure(noisy, target, Protocol(noise_sigma=25))["psnr"] == pytest.approx(20.17, abs=0.1)  # 255 / 25


@pytest.fixture(scope="module")
def sr4_model(tmp_path_factory):
    return tiny_models.save(tiny_models.upsampled_model(), tmp_path_factory.mktemp("run"))


def test_evaluate_prints_tables_and_writes_json_in_the_run_folder(sr4_model, capsys):
    evaluate.main(["--model", str(sr4_model), "--data", str(SET5)])
    printed = capsys.readouterr().out
    assert "| image | bicubic PSNR | bicubic SSIM | tiny (sr4) PSNR | tiny (sr4) SSIM |" in printed
    assert printed.count("| **mean** |") == 1 and "| butterfly |" in printed
    result = json.loads((sr4_model.parent / "eval_Set5_x4.json").read_text())
    assert result["protocol"] == "x4" and result["info"]["task"] == "sr4" and len(result["images"]) == 5
    assert result["mean"]["baseline"]["psnr"] == pytest.approx(PUBLISHED_BICUBIC[("Set5", 4)][0], abs=0.05)
    model_scores = result["mean"]["model"]
    assert 20 < model_scores["psnr"] < 40 and 0 < model_scores["ssim"] <= 1


def test_scale_mismatch_is_a_one_line_error(sr4_model, capsys):
    assert util.run_cli(evaluate.main, ["--model", str(sr4_model), "--data", str(SET5), "--scale", "2"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "the model's scale is 4" in lines[0]


def test_bicubic_writes_to_out(tmp_path, capsys):
    evaluate.main(["--model", "bicubic", "--scale", "3", "--data", str(SET5), "--out", str(tmp_path)])
    assert "| **mean** | 30.4" in capsys.readouterr().out
    assert json.loads((tmp_path / "eval_Set5_x3.json").read_text())["model"] == "bicubic"


def test_denoising_model_on_a_small_folder(tmp_path, capsys):
    model = tiny_models.save(tiny_models.upsampled_model("noise64", 1, 8), tmp_path / "run")
    folder = tmp_path / "Tiny"
    folder.mkdir()
    from PIL import Image

    Image.open(SET5 / "bird.png").crop((0, 0, 96, 80)).save(folder / "bird.png")
    evaluate.main(["--model", str(model), "--data", str(folder), "--task", "noise25"])
    assert "| image | noisy input PSNR |" in capsys.readouterr().out
    result = json.loads((model.parent / "eval_Tiny_noise25.json").read_text())
    assert result["images"][0]["baseline"]["psnr"] == pytest.approx(20.5, abs=1.0)


def test_self_ensemble_writes_its_own_json(tmp_path, capsys):
    model = tiny_models.save(tiny_models.lr_model(), tmp_path / "run")
    folder = tmp_path / "Tiny"
    folder.mkdir()
    from PIL import Image

    Image.open(SET5 / "bird.png").crop((0, 0, 96, 80)).save(folder / "bird.png")
    evaluate.main(["--model", str(model), "--data", str(folder)])
    evaluate.main(["--model", str(model), "--data", str(folder), "--ensemble"])
    assert "tiny-lr (sr4) + self-ensemble PSNR" in capsys.readouterr().out
    plain = json.loads((model.parent / "eval_Tiny_x4.json").read_text())
    ensembled = json.loads((model.parent / "eval_Tiny_x4_ensemble.json").read_text())
    assert ensembled["ensemble"] and not plain["ensemble"]
    assert ensembled["mean"]["model"]["psnr"] != plain["mean"]["model"]["psnr"]
    with pytest.raises(util.UserError, match="--ensemble applies to a model"):
        evaluate.main(["--model", "bicubic", "--data", str(folder), "--ensemble"])
