"""benchmark.py on a tiny model: the subcommands, the table and JSON, and the isolated peak-memory measurement."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tiny_models
from PIL import Image

import benchmark
import util
from util.benchmarks import measure, models

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sr4_model(tmp_path_factory):
    return tiny_models.save(tiny_models.upsampled_model(), tmp_path_factory.mktemp("run"))


def test_table_and_json_for_bicubic_and_a_model(sr4_model, small_sets, tmp_path, capsys):
    from util.evaluation.protocols import benchmark_task, evaluate_folder

    folder = small_sets / "Tiny5"
    benchmark.main(
        ["models", str(sr4_model), "--data", str(folder), "--repeats", "2", "--skip-memory", "--out", str(tmp_path)]
    )
    printed = capsys.readouterr().out
    assert "| method | task | parameters | Tiny5 PSNR / SSIM | ms / output MP |" in printed
    bicubic_mean = evaluate_folder(folder, benchmark_task("sr4"))["mean"]["baseline"]
    assert f"| bicubic | sr4 | 0 | {bicubic_mean['psnr']:.2f} / {bicubic_mean['ssim']:.4f} |" in printed
    assert f"| {sr4_model} | sr4 | 443 |" in printed
    result = json.loads((tmp_path / "benchmark.json").read_text())
    bicubic, model = result["rows"]
    assert model["parameters"] == 443 and model["info"]["task"] == "sr4"
    assert 15 < model["quality"]["Tiny5"]["psnr"] < 40
    assert model["ms_per_mp"] > 0 and bicubic["ms_per_mp"] > 0
    assert model["peak_rss_mb"] is None and result["memory_photo"] is None
    assert (tmp_path / "benchmark.md").read_text().count("| bicubic |") == 1


def test_set5_row_of_bicubic_is_the_published_one(sr4_model, benchmark_root, tmp_path, capsys):
    args = ["models", str(sr4_model), "--data", str(benchmark_root / "Set5"), "--repeats", "1", "--skip-memory"]
    benchmark.main([*args, "--out", str(tmp_path)])
    assert "| bicubic | sr4 | 0 | 28.43 / 0.8113 |" in capsys.readouterr().out


def test_without_benchmark_sets_it_says_how_to_fetch_them(sr4_model, tmp_path, monkeypatch):

    from util.evaluation import protocols

    monkeypatch.setattr(protocols, "BENCHMARK_DIR", tmp_path / "none")
    with pytest.raises(util.UserError, match="python3 download.py benchmarks"):
        benchmark.main(["models", str(sr4_model), "--skip-memory", "--out", str(tmp_path)])


def test_peak_memory_of_enhance_on_a_small_photo(sr4_model, tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(models.synthetic_photo(48, 64)).save(photo)
    peak = measure.enhance_peak_rss_mb(sr4_model, photo, tmp_path)
    assert 50 < peak < 4000  # TensorFlow alone takes a few hundred MB
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"], "the output is removed afterwards"


def test_peak_memory_is_the_childs_own_and_failures_are_one_line():
    small = measure.peak_rss_mb([sys.executable, "-c", "pass"])
    big = measure.peak_rss_mb([sys.executable, "-c", "import numpy; a = numpy.ones(200_000_000, numpy.uint8)"])
    assert small < 100 and big > small + 150  # not this process's size, which holds TensorFlow
    again = measure.peak_rss_mb([sys.executable, "-c", "pass"])
    assert again < big - 150  # each number on its own, not the largest child so far
    with pytest.raises(util.UserError, match="failed: SystemExit: boom") as err:
        measure.peak_rss_mb([sys.executable, "-c", "raise SystemExit('SystemExit: boom')"])
    assert "\n" not in str(err.value)


def test_synthetic_photo():
    photo = models.synthetic_photo(30, 40)
    assert photo.shape == (30, 40, 3) and photo.dtype == np.uint8 and photo.std() > 20


def test_training_speed_of_the_model_scripts(tmp_path, monkeypatch, capsys):
    from util.benchmarks import training

    scripts = benchmark.model_scripts()  # benchmark.py names them; none is named in util/benchmarks
    assert set(scripts) == {"edsr_lite", "inception2", "unet_autoencoder"}
    assert [name for name, s in scripts.items() if not s.prototype] == ["edsr_lite"]
    monkeypatch.setattr(training, "TRAINING_SCRIPTS", ("edsr_lite", "inception2"))
    with pytest.raises(util.UserError, match="--rounds 0: give at least 1"):
        benchmark.main(["training", "--rounds", "0", "--out", str(tmp_path)])
    benchmark.main(["training", "--seconds", "0.9", "--rounds", "3", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "training_speed.json").read_text())["rows"]
    assert [r["script"] for r in rows] == ["edsr_lite", "inception2"]
    for r in rows:
        assert r["steps"] >= 3 and r["samples_per_second"] > 0 and r["task"] == "sr4"
        assert len(r["rounds"]) == 3 and r["samples_per_second"] == sorted(r["rounds"])[1]  # the median round
    assert (rows[0]["batch"], rows[1]["batch"]) == (8, 16) and "EDSR-lite" in rows[0]["architecture"]
    ratio = rows[0]["samples_per_second"] / rows[1]["samples_per_second"]
    assert f"| {ratio:.1f}x |" in (tmp_path / "training_speed.md").read_text()
    benchmark.main(["training", "--seconds", "0.3", "--rounds", "1", "--batch", "4", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "training_speed.json").read_text())["rows"]
    assert [r["batch"] for r in rows] == [4, 4]  # one batch size for every script


# ---- The command line: one subcommand a run, each with only its own flags ----------------


def test_help_lists_the_six_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_:
        benchmark.parse_args(["--help"])
    printed = capsys.readouterr().out
    assert exit_.value.code == 0
    for name in ("models", "restoration", "raster", "training", "scaling", "data-sizes"):
        assert f"\n    {name} " in printed, name


def test_a_subcommands_help_lists_only_its_own_flags(capsys):
    with pytest.raises(SystemExit):
        benchmark.parse_args(["raster", "--help"])
    printed = capsys.readouterr().out
    assert "--skip-memory" in printed and "--repeats" in printed
    assert "--task" not in printed and "--rounds" not in printed


def test_a_flag_of_another_subcommand_is_a_one_line_error_with_exit_2():
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmark.py"), "training", "--raster"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and not result.stdout
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == [result.stderr.strip().splitlines()[-1]] and "unrecognized arguments: --raster" in errors[0]
    assert "Traceback" not in result.stderr


def test_restoration_refuses_a_super_resolution_task(tmp_path):
    with pytest.raises(util.UserError, match="--task sr4: a super-resolution task; .*benchmark.py models") as err:
        benchmark.main(["restoration", "--task", "sr4", "--out", str(tmp_path)])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "argv, named",
    [
        (["training", "--seconds", "0"], "--seconds 0.0"),
        (["training", "--rounds", "0"], "--rounds 0"),
        (["raster", "--repeats", "0"], "--repeats 0"),
        (["restoration", "--task", "noise25", "--images", "-1"], "--images -1"),
        (["data-sizes", "10,x"], "data-sizes '10,x'"),
        (["data-sizes", "0"], "data-sizes '0'"),
    ],
)
def test_bad_values_are_one_line_errors(argv, named, tmp_path, capsys):
    data = ["--data", str(tmp_path)] if argv[0] == "restoration" else []
    assert util.run_cli(benchmark.main, [*argv, *data, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {named}"), err
    assert not (tmp_path / "out").exists()
