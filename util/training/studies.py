"""Studies over training runs: the prototype's sweep, the ablation, and time budgets.

Variants: each undoes one choice of the recipe, either a setting (``loss``, ``schedule``,
``ema``, ``augment``) or a keyword argument of the script's ``build_model``
(``bicubic_skip``, ``lr_space``, ``norm``, ``dropout``, ``output_init``). The ablation
runs every variant that applies to a script's recipe; ``--variant NAME`` trains one run
with named variants applied (how the commands of docs/experiments.md spell a recipe that
differs from the defaults in a model argument).
"""

from __future__ import annotations

import dataclasses
import json
from functools import partial
from pathlib import Path

from util.data.pairs import open_pairs
from util.data.pipelines import AUGMENTATIONS
from util.io.files import UserError, write_json_atomic, write_text_atomic
from util.training.folders import REPO, run_dir, run_folder
from util.training.run import train
from util.training.settings import Settings

# name -> (setting or model argument, the value that undoes the recipe's choice, what that means).
# Two names for one key (constant-lr, cosine-lr): the ablation runs the one whose value differs.
VARIANTS = {
    "mse": ("loss", "mse", "MSE loss instead of L1"),
    "constant-lr": ("schedule", "constant", "constant learning rate instead of cosine"),
    "cosine-lr": ("schedule", "cosine", "learning rate cosine-decayed to 0 instead of constant"),
    "no-skip": ("bicubic_skip", False, "no bicubic skip: the network predicts the whole image"),
    "hr-space": ("lr_space", False, "bicubic-upsampled input, layers at HR resolution (same training time)"),
    "batchnorm": ("norm", "batch", "batch normalization in every residual block"),
    "dropout": ("dropout", 0.2, "dropout 0.2 in every residual block (the prototype's)"),
    "no-ema": ("ema", 0.0, "the raw weights validated and saved instead of their moving average"),
    "glorot-output": ("output_init", "glorot_uniform", "output convolution initialised by Keras' default, not zeros"),
}
SAME_TIME = {"lr_space"}  # variants of another cost per sample get the recipe's training time, not its BACKPROPS
SPEED_SECONDS = 20.0  # how long each training speed is measured for SAME_TIME variants and --minutes


def with_variants(settings: Settings, names) -> Settings:
    """``settings`` with the named VARIANTS (or ``no-<augmentation>``) applied; a UserError names unknown ones."""
    values, model_args = {}, settings.model_kwargs
    augment = list(settings.augment)
    for name in names:
        if name.startswith("no-") and name[3:] in augment:
            augment.remove(name[3:])
            continue
        if name not in VARIANTS or not _applies(settings, VARIANTS[name][0]):
            known = [n for n, (key, _, _) in VARIANTS.items() if _applies(settings, key)]
            known += [f"no-{a}" for a in settings.augment]
            raise UserError(f"--variant {name!r} is unknown for this script; use some of {', '.join(known)}")
        key, value, _ = VARIANTS[name]
        if key in model_args:
            model_args[key] = value
        else:
            values[key] = value
    return dataclasses.replace(
        settings,
        **values,
        augment=tuple(augment),
        model_args=tuple(model_args.items()),
        variants=settings.variants + tuple(names),
    )


def _applies(settings: Settings, key: str) -> bool:
    return key in settings.model_kwargs or key in {f.name for f in dataclasses.fields(Settings)}


def ablation_variants(settings: Settings) -> dict[str, str]:
    """Run name -> what it changes, for every choice of ``settings`` that can be undone."""
    variants = {}
    for name in settings.augment:
        variants[f"no-{name}"] = f"without {name}: {AUGMENTATIONS[name]}"
    current = {**dataclasses.asdict(settings), **settings.model_kwargs}
    undone = set()
    for name, (key, value, change) in VARIANTS.items():
        if _applies(settings, key) and key not in undone and current[key] != value:
            variants[name] = change
            undone.add(key)
    return variants


def sweep(script: str, settings: Settings, build_model, sizes, ensemble=False) -> Path:
    """The prototype's study: one run per training-set size, same BACKPROPS; table and plot."""
    import keras

    from util.evaluation import report

    runs, pairs = [], open_pairs(settings.dataset)
    for size in sorted(sizes, reverse=True):
        run_settings = pairs.with_available(dataclasses.replace(settings, train_patches=size))
        folder = run_dir(script, run_settings)
        keras.backend.clear_session()
        train(script, run_settings, build_model, folder, ensemble=ensemble)
        runs.append(json.loads((folder / "results.json").read_text()))
    out_dir = (REPO / settings.out / f"sweep-{settings.task}-{Path(settings.dataset).name}").resolve()
    table = report.sweep_table(script, runs)
    write_json_atomic(out_dir / f"{script}.json", {"model": script, "runs": runs})
    write_text_atomic(out_dir / f"{script}.md", table)
    report.sweep_plot(out_dir, out_dir / "sweep.png")
    print(table)
    print(f"sweep of {script}: {out_dir}")
    return out_dir


def ablation_set() -> Path:
    """The benchmark folder the ablation scores on: Set5 of datasets/benchmark."""
    from util.evaluation import protocols

    return protocols.standard_sets()[0]


def ablation(script: str, settings: Settings, build_model, asked: str, ensemble=False) -> Path:
    """Train the recipe, then one run per choice undone; score each on Set5; write the table.

    Every run gets the same BACKPROPS, except variants that change the cost per sample
    (SAME_TIME), which get the recipe's training time: BACKPROPS scaled by the two models'
    training speed, measured here. Runs go to ``<OUT>/ablation-<task>-<dataset>/<script>-<variant>/``.
    A variant whose results.json already holds the same settings is not trained again, so
    the study resumes after an interruption and can be split over processes by name.
    """
    import keras

    from util.evaluation import protocols, report
    from util.inference.tiles import enhance_array
    from util.models.loading import load_model

    variants = {"recipe": "the recipe as given", **ablation_variants(settings)}
    names = list(variants)
    if asked != "all":
        wanted = [n.strip() for n in asked.split(",") if n.strip()]
        if not wanted or any(n not in variants for n in wanted):
            raise UserError(f"--ablation {asked!r}: {script} can run {', '.join(names)}; give some of them")
        names = wanted
    folder = ablation_set()
    task = protocols.benchmark_task(settings.task)
    if not protocols.reference_images(folder):
        raise UserError(f"{folder}: no images; the ablation scores on Set5 ({protocols.FETCH_HINT})")
    out_dir = (REPO / settings.out / f"ablation-{settings.task}-{Path(settings.dataset).name}").resolve()
    for name in names:
        change = variants[name]
        key = {**settings.to_json(), "out": None, "variant": name}
        done = [p for p in out_dir.glob(f"{script}-{name}*/results.json") if _ablation_key(p) == key]
        if done:
            print(f"ablation {name}: already trained with these settings ({done[0]})")
            continue
        run_settings = settings if name == "recipe" else with_variants(settings, [name])
        same_time = name in VARIANTS and VARIANTS[name][0] in SAME_TIME
        if same_time:
            run_settings = dataclasses.replace(
                run_settings, backprops=same_time_backprops(build_model, settings, run_settings)
            )
        folder_out = run_folder(out_dir / f"{script}-{name}", run_settings)
        done = folder_out / "results.json"
        keras.backend.clear_session()
        train(script, run_settings, build_model, folder_out, ensemble=ensemble)
        model, info = load_model(folder_out / "model.keras")
        scores = protocols.evaluate_folder(folder, task, partial(enhance_array, model, info, progress=False))
        results = json.loads(done.read_text())
        if same_time:  # what train() ran: whole steps per epoch
            change += f", {results['backprops']} backprops"
        results["ablation"] = {"name": name, "change": change, "key": key, "set5": scores["mean"]}
        write_json_atomic(done, results)
    runs = [json.loads(p.read_text()) for p in sorted(out_dir.glob(f"{script}-*/results.json"))]
    recipe_key = {**settings.to_json(), "out": None, "variant": None}
    runs = [r for r in runs if "ablation" in r and {**r["ablation"]["key"], "variant": None} == recipe_key]
    table = report.ablation_table(script, runs)
    write_text_atomic(out_dir / f"{script}.md", table)
    print(table)
    print(f"ablation of {script}: {out_dir}")
    return out_dir


def _ablation_key(results_path: Path):
    return json.loads(results_path.read_text()).get("ablation", {}).get("key")


def budget_backprops(build_model, settings: Settings, minutes: float) -> int:
    """BACKPROPS that ``minutes`` of training buy on this machine (the speed measured here, whole epochs).

    The minutes are those of ``model.fit`` as the run reports them (``train_seconds``): the
    training steps and the EPOCHS validations of VAL_PATCHES pairs, which cost a slow model
    a good part of a short budget. Machines differ (the same 2-core budget ran up to 1.8x
    faster on a CPU with native bfloat16), so a time budget is the portable way to say
    "30 minutes of training".
    """
    from util.training import speed

    measured = speed.training_speed(build_model, settings, SPEED_SECONDS, validation_patches=settings.val_patches)
    rate, validation = measured["samples_per_second"], measured["validation_seconds"] * settings.epochs
    if validation >= minutes * 60 / 2:
        raise UserError(
            f"--minutes {minutes:g}: the {settings.epochs} validations alone take {validation:.0f} s here; "
            "give more minutes or fewer EPOCHS / VAL_PATCHES"
        )
    whole = settings.batch * settings.epochs  # what train() runs: whole steps in every epoch
    backprops = max(whole, int(rate * (minutes * 60 - validation)) // whole * whole)
    print(
        f"--minutes {minutes:g}: {rate:.1f} samples/s and {validation:.1f} s of validation measured here "
        f"-> BACKPROPS {backprops}"
    )
    return backprops


def same_time_backprops(build_model, settings: Settings, variant: Settings) -> int:
    """BACKPROPS that give ``variant`` the training time of ``settings``'s BACKPROPS (speeds measured)."""
    from util.training import speed

    recipe_speed = speed.training_speed(build_model, settings, SPEED_SECONDS)["samples_per_second"]
    variant_speed = speed.training_speed(build_model, variant, SPEED_SECONDS)["samples_per_second"]
    backprops = round(settings.backprops * variant_speed / recipe_speed)
    return max(settings.batch, backprops // settings.batch * settings.batch)
