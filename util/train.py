"""One experiment, shared by every model script: constants -> train -> score -> report.

A model script holds its constants block, ``build_model(task)`` and a ``main`` that
calls ``run_script``; everything else lives here, so two model scripts never repeat
each other.

Roles (``--role``):
  * ``train`` (default): train on the first TRAIN_PATCHES training pairs for
    BACKPROPS samples, keep the best weights on validation, then score on the test
    pairs and write the report;
  * ``test``: score a saved model (``--model``, default the run folder's) on the
    test pairs and write the report again;
  * ``predict``: write the model's outputs for a folder of images (``--input``).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from util.files import UserError, atomic_path, write_json_atomic, write_text_atomic
from util.models import model_info, prepare_input, task_scale

REPO = Path(__file__).resolve().parent.parent

# Help for every constant a script may define; the flag is the lower-case name.
CONSTANT_HELP = {
    "DATASET": "data set under datasets/ written by download.py: builtin | div2k | mars | unsplash | a folder's name",
    "TASK": "sr2 | sr4 | sr8 (bicubic x2/x4/x8) | noise64 | noise64blur | x4noise64",
    "TRAIN_PATCHES": "train on the first N training pairs (the prototype's limit_data_size)",
    "BACKPROPS": "training samples shown to the model in all, whatever TRAIN_PATCHES is",
    "BATCH": "patches per gradient step",
    "LEARNING_RATE": "Adam's learning rate",
    "VAL_PATCHES": "validation pairs, taken from the END of the training split, for the best checkpoint",
    "TEST_PATCHES": "test pairs to score (0 = all)",
    "EPOCHS": "checkpoints/validations during training (BACKPROPS are split evenly among them)",
    "OUT": "folder that receives the run folder <script>-<task>-<n>; relative to the repository",
    "SEED": "random seed of weights, shuffling and dropout",
    "PRECISION": "auto (bfloat16 where the CPU has native bf16, else float32) | float32 | mixed_bfloat16",
    "LOSS": "mae (L1) | mse",
    "AUGMENT": "comma list of flips (the 8 flips/rotations), channels (RGB permutation), invert, shifts "
    "(sub-pixel phase, bicubic SR only); none",
    "SCHEDULE": "cosine (Adam's rate decayed to 0 over the run) | constant",
    "BICUBIC_SKIP": "1: the network adds to bicubic upsampling; 0: it predicts the whole image",
    "INPUT_KIND": "lr (layers at LR resolution, sub-pixel upsampling) | upsampled (bicubic input, HR resolution)",
    "NORM": "none | batch (batch normalization in each residual block)",
    "DROPOUT": "dropout rate in each residual block",
    "EMA": "momentum of the weights' exponential moving average, used for validation and saved (0 = off)",
    "OUTPUT_INIT": "initializer of the output convolution: zeros (the untrained model is bicubic) | glorot_uniform",
    "FILTERS": "feature channels",
    "BLOCKS": "residual blocks",
}

# What --ablation undoes, one choice at a time: constant -> (the value that undoes it, run name, what that means),
# or a tuple of those where the recipe may hold either value (the first one that differs from it is run).
# AUGMENT is undone one augmentation at a time (see ablation_variants).
ABLATIONS = {
    "LOSS": ("mse", "mse", "MSE loss instead of L1"),
    "SCHEDULE": (
        ("constant", "constant-lr", "constant learning rate instead of cosine"),
        ("cosine", "cosine-lr", "learning rate cosine-decayed to 0 instead of constant"),
    ),
    "BICUBIC_SKIP": (0, "no-skip", "no bicubic skip: the network predicts the whole image"),
    "INPUT_KIND": ("upsampled", "hr-space", "bicubic-upsampled input, layers at HR resolution (same training time)"),
    "NORM": ("batch", "batchnorm", "batch normalization in every residual block"),
    "DROPOUT": (0.2, "dropout", "dropout 0.2 in every residual block (the prototype's)"),
    "EMA": (0.0, "no-ema", "the raw weights validated and saved instead of their moving average"),
    "OUTPUT_INIT": ("glorot_uniform", "glorot-output", "output convolution initialised by Keras' default, not zeros"),
}
SAME_TIME = {"INPUT_KIND"}  # variants of another cost per sample get the recipe's training time, not its BACKPROPS
SPEED_SECONDS = 20.0  # how long each training speed is measured for SAME_TIME variants


def ablation_variants(args) -> dict[str, tuple[dict, str]]:
    """Run name -> (constants changed, what that means) for every choice of ``args`` that can be undone."""
    from util.data import AUGMENTATIONS, parse_augment

    variants = {}
    augment = parse_augment(getattr(args, "AUGMENT", ""))
    for name in augment:
        rest = ",".join(a for a in augment if a != name) or "none"
        variants[f"no-{name}"] = ({"AUGMENT": rest}, f"without {name}: {AUGMENTATIONS[name]}")
    for constant, options in ABLATIONS.items():
        if not hasattr(args, constant):
            continue
        options = options if isinstance(options[0], tuple) else (options,)
        for value, name, change in options:
            if getattr(args, constant) != value:
                variants[name] = ({constant: value}, change)
                break
    return variants


def parse_constants(constants: dict, argv, description: str) -> argparse.Namespace:
    """Command-line flags for a script's constants block; each default is the constant."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    roles = ("train", "test", "predict")
    parser.add_argument("--role", choices=roles, default="train", help="what to do (default train)")
    parser.add_argument("--model", help="role test/predict: a saved .keras model (default: this run's model.keras)")
    parser.add_argument("--input", help="role predict: an image or a folder of images")
    parser.add_argument("--output", help="role predict: output folder (default: <run>/predictions)")
    parser.add_argument(
        "--sweep",
        type=_sizes,
        metavar="N,N,...",
        help="role train: one run per training-set size with the same BACKPROPS, then the prototype's table "
        "and sweep.png (e.g. 100,1000,10000)",
    )
    parser.add_argument(
        "--ablation",
        nargs="?",
        const="all",
        metavar="NAME,NAME,...",
        help="role train: train the recipe as given and once more per choice undone ("
        + ", ".join(ABLATIONS)
        + "), same BACKPROPS; score each on Set5 and write ablation.md (default: all that apply)",
    )
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="roles train/test: also score the test pairs with the self-ensemble (EDSR+: the model averaged over "
        "the 8 flips/rotations, 8x the inference)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        metavar="M",
        help="role train: train each run for about M minutes on this machine: BACKPROPS is set from the "
        f"training speed measured first ({SPEED_SECONDS:g} s), instead of --backprops",
    )
    for name, default in constants.items():
        kind = type(default)
        parser.add_argument(
            "--" + name.lower().replace("_", "-"),
            dest=name,
            type=kind,
            default=default,
            metavar=kind.__name__.upper(),
            help=f"{CONSTANT_HELP.get(name, '')} (default {default!r})",
        )
    args = parser.parse_args(argv)
    for name in ("TRAIN_PATCHES", "BACKPROPS", "BATCH", "EPOCHS"):
        if name in constants and getattr(args, name) < 1:
            raise UserError(f"{name}={getattr(args, name)} must be at least 1 (--{name.lower().replace('_', '-')})")
    if args.minutes is not None and not args.minutes > 0:
        raise UserError(f"--minutes {args.minutes:g}: give a positive training time in minutes")
    task_scale(args.TASK)
    return args


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sweep {text!r}: give sizes like 100,1000,10000") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--sweep {text!r}: give positive sizes like 100,1000,10000")
    return sizes


def configure_precision(precision: str) -> str:
    """Set Keras's global dtype policy; return the one in force.

    ``auto`` picks bfloat16 compute only where the CPU has native bf16 (AMX or
    AVX512-BF16: twice the training speed measured on such a Xeon); elsewhere bf16 is
    emulated and slower than float32. Variables and the model output stay float32.
    """
    import keras

    if precision == "auto":
        flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
        precision = "mixed_bfloat16" if ("amx_bf16" in flags or "avx512_bf16" in flags) else "float32"
    if precision not in ("float32", "mixed_bfloat16"):
        raise UserError(f"PRECISION={precision!r} is unknown; use auto, float32 or mixed_bfloat16")
    keras.mixed_precision.set_global_policy(precision)
    return precision


def run_name(script: str, args) -> str:
    name = f"{script}-{args.TASK}-{args.TRAIN_PATCHES}"
    return name if args.DATASET == "builtin" else f"{name}-{Path(args.DATASET).name}"


# ---- scoring -----------------------------------------------------------------


def predict_patches(model, info: dict, degraded: np.ndarray, batch: int = 32, ensemble: bool = False) -> np.ndarray:
    """Model outputs for uint8 NHWC degraded patches, as uint8 (rounded, clipped).

    ``ensemble``: the mean over the eight flips/rotations of each patch, each turned back
    (EDSR+), as ``enhance.py --ensemble`` does for a photo; 8x the inference.
    """
    from util.inference import batch_self_ensemble

    outputs = []
    for start in range(0, len(degraded), batch):
        x = prepare_input(degraded[start : start + batch], info, batch=True)
        y = batch_self_ensemble(model, x) if ensemble else model(x, training=False)
        outputs.append(np.clip(np.floor(np.asarray(y, dtype=np.float32) * 255.0 + 0.5), 0, 255).astype(np.uint8))
    return np.concatenate(outputs)


def score_pairs(outputs: np.ndarray, targets: np.ndarray) -> dict:
    """The prototype's protocol: RGB PSNR / SSIM, data range 255, per patch, mean and std."""
    from util.metrics import psnr, ssim

    psnrs = np.array([psnr(o, t) for o, t in zip(outputs, targets, strict=True)])
    ssims = np.array([ssim(o, t) for o, t in zip(outputs, targets, strict=True)])
    finite = psnrs[np.isfinite(psnrs)]
    return {
        "psnr": float(finite.mean()),
        "psnr_std": float(finite.std()),
        "ssim": float(ssims.mean()),
        "ssim_std": float(ssims.std()),
        "per_patch_psnr": [round(float(v), 4) for v in psnrs],
    }


# ---- the roles -----------------------------------------------------------------


def recipe_of(args) -> dict:
    """How to train: a script's LOSS / AUGMENT / SCHEDULE constants, else the prototypes' way."""
    from util import data

    recipe = {
        "loss": getattr(args, "LOSS", "mse"),
        "augment": list(data.parse_augment(getattr(args, "AUGMENT", ""))),
        "schedule": getattr(args, "SCHEDULE", "constant"),
        "ema": float(getattr(args, "EMA", 0.0)),
    }
    if recipe["loss"] not in ("mse", "mae"):
        raise UserError(f"LOSS={recipe['loss']!r} is unknown; use mse or mae")
    if recipe["schedule"] not in ("constant", "cosine"):
        raise UserError(f"SCHEDULE={recipe['schedule']!r} is unknown; use constant or cosine")
    if not 0 <= recipe["ema"] < 1:
        raise UserError(f"EMA={recipe['ema']:g} is not a momentum; use 0 (off) or a value below 1 such as 0.99")
    return recipe


def run_script(script: str, constants: dict, build_model, argv, description: str) -> Path:
    """Parse the constants and run the chosen role; return the run folder.

    ``build_model(task, args)`` returns an uncompiled model with a SuiteInfo layer;
    ``args`` holds every constant, for scripts whose architecture has knobs.
    """
    args = parse_constants(constants, argv, description)
    if args.sweep and args.ablation:
        raise UserError("--sweep and --ablation are separate studies; give one of them")
    if args.minutes and args.role == "train":
        args.BACKPROPS = budget_backprops(build_model, args, args.minutes)
    if args.sweep and args.role == "train":
        return sweep(script, args, build_model)
    if args.ablation and args.role == "train":
        return ablation(script, args, build_model)
    run_dir = (REPO / args.OUT / run_name(script, args)).resolve()
    if args.role == "train":
        return train(script, args, build_model, run_dir, recipe_of(args))
    if args.role == "test":
        return test(script, args, run_dir)
    return predict(args, run_dir)


def sweep(script: str, args, build_model) -> Path:
    """The prototype's study: one run per training-set size, same BACKPROPS; table and plot."""
    import copy
    import json

    import keras

    from util import report

    runs = []
    for size in sorted(args.sweep, reverse=True):
        run_args = copy.copy(args)
        run_args.TRAIN_PATCHES = size
        run_dir = (REPO / args.OUT / run_name(script, run_args)).resolve()
        keras.backend.clear_session()
        train(script, run_args, build_model, run_dir, recipe_of(run_args))
        runs.append(json.loads((run_dir / "results.json").read_text()))
    out_dir = (REPO / args.OUT / f"sweep-{args.TASK}-{Path(args.DATASET).name}").resolve()
    table = report.sweep_table(script, runs)
    write_json_atomic(out_dir / f"{script}.json", {"model": script, "runs": runs})
    write_text_atomic(out_dir / f"{script}.md", table)
    report.sweep_plot(out_dir, out_dir / "sweep.png")
    print(table)
    print(f"sweep of {script}: {out_dir}")
    return out_dir


def ablation(script: str, args, build_model) -> Path:
    """Train the recipe, then one run per choice undone; score each on Set5; write the table.

    Every run gets the same BACKPROPS, except variants that change the cost per
    sample (SAME_TIME), which get the recipe's training time: BACKPROPS scaled by
    the two models' training speed, measured here. Runs go to
    ``<OUT>/ablation-<task>-<dataset>/<script>-<variant>/``. A variant whose
    results.json already holds the same settings is not trained again, so the study
    resumes after an interruption and can be split over processes by name.
    """
    import copy
    import json
    from functools import partial

    import keras

    from util import evaluation, report
    from util.inference import enhance_array
    from util.models import load_model

    variants = {"recipe": ({}, "the recipe as given"), **ablation_variants(args)}
    names = list(variants)
    if args.ablation != "all":
        asked = [n.strip() for n in args.ablation.split(",") if n.strip()]
        unknown = [n for n in asked if n not in variants]
        if unknown or not asked:
            raise UserError(f"--ablation {args.ablation!r}: {script} can run {', '.join(names)}; give some of them")
        names = asked
    set5 = evaluation.BENCHMARK_DIR / "Set5"
    protocol = evaluation.parse_protocol(args.TASK)
    if not evaluation.list_images(set5):
        raise UserError(f"{set5}: no Set5 images; the ablation scores on Set5 (see README.md, Data)")
    out_dir = (REPO / args.OUT / f"ablation-{args.TASK}-{Path(args.DATASET).name}").resolve()
    for name in names:
        changes, change = variants[name]
        run_args = copy.copy(args)
        for constant, value in changes.items():
            setattr(run_args, constant, value)
        if SAME_TIME & changes.keys():
            run_args.BACKPROPS = same_time_backprops(build_model, args, run_args)
        settings = {k: v for k, v in vars(args).items() if k.isupper() and k != "OUT"}
        settings.update(changes)
        run_dir = out_dir / f"{script}-{name}"
        done = run_dir / "results.json"
        if done.exists() and json.loads(done.read_text()).get("ablation", {}).get("settings") == settings:
            print(f"ablation {name}: already trained with these settings ({done})")
            continue
        keras.backend.clear_session()
        train(script, run_args, build_model, run_dir, recipe_of(run_args))
        model, info = load_model(run_dir / "model.keras")
        scores = evaluation.evaluate_folder(set5, protocol, partial(enhance_array, model, info, progress=False))
        results = json.loads(done.read_text())
        if SAME_TIME & changes.keys():  # what train() ran: whole steps per epoch
            change += f", {results['backprops']} backprops"
        results["ablation"] = {"name": name, "change": change, "settings": settings, "set5": scores["mean"]}
        write_json_atomic(done, results)
    runs = [json.loads(p.read_text()) for p in sorted(out_dir.glob(f"{script}-*/results.json"))]
    runs = [r for r in runs if "ablation" in r]
    table = report.ablation_table(script, runs)
    write_text_atomic(out_dir / f"{script}.md", table)
    print(table)
    print(f"ablation of {script}: {out_dir}")
    return out_dir


def budget_backprops(build_model, args, minutes: float) -> int:
    """BACKPROPS that ``minutes`` of training buy on this machine (the speed measured here, whole epochs).

    The minutes are those of ``model.fit`` as the run reports them (``train_seconds``): the
    training steps and the EPOCHS validations of VAL_PATCHES pairs, which cost a slow model
    a good part of a short budget. Machines differ (the same 2-core budget ran up to 1.8x
    faster on a CPU with native bfloat16), so a time budget is the portable way to say
    "30 minutes of training".
    """
    measured = training_speed(build_model, args, SPEED_SECONDS, validation_patches=args.VAL_PATCHES)
    speed, validation = measured["samples_per_second"], measured["validation_seconds"] * args.EPOCHS
    if validation >= minutes * 60 / 2:
        raise UserError(
            f"--minutes {minutes:g}: the {args.EPOCHS} validations alone take {validation:.0f} s here; "
            "give more minutes or fewer EPOCHS / VAL_PATCHES"
        )
    whole = args.BATCH * args.EPOCHS  # what train() runs: whole steps in every epoch
    backprops = max(whole, int(speed * (minutes * 60 - validation)) // whole * whole)
    print(
        f"--minutes {minutes:g}: {speed:.1f} samples/s and {validation:.1f} s of validation measured here "
        f"-> BACKPROPS {backprops}"
    )
    return backprops


def same_time_backprops(build_model, args, variant_args) -> int:
    """BACKPROPS that give ``variant_args`` the training time of ``args``'s BACKPROPS (speeds measured)."""
    recipe_speed = training_speed(build_model, args, SPEED_SECONDS)["samples_per_second"]
    variant_speed = training_speed(build_model, variant_args, SPEED_SECONDS)["samples_per_second"]
    backprops = round(args.BACKPROPS * variant_speed / recipe_speed)
    return max(args.BATCH, backprops // args.BATCH * args.BATCH)


def training_speed(build_model, args, seconds: float, validation_patches: int = 0) -> dict:
    """Samples/s of training ``build_model(args.TASK, args)`` with its recipe, on random patches.

    The steps run as in train(): ``model.fit`` on the training's own tf.data pipeline and
    precision, timed from the end of the second step (tracing, oneDNN's first calls) for at
    least ``seconds`` and 3 steps. ``validation_patches``: also time one validation pass
    over that many pairs (after a first, warm-up pass), as ``validation_seconds``.
    """
    import keras

    from util import data

    precision = configure_precision(args.PRECISION)
    keras.utils.set_random_seed(0)
    model = build_model(args.TASK, args)
    info = model_info(model)
    recipe = recipe_of(args)
    model.compile(optimizer=make_optimizer(args, recipe, 10_000), loss=recipe["loss"])
    rng = np.random.default_rng(0)
    size = 128 // info["scale"]
    lr = _stored_input(info)(rng.integers(0, 256, (4 * args.BATCH, size, size, 3), dtype=np.uint8))
    hr = rng.integers(0, 256, (4 * args.BATCH, 128, 128, 3), dtype=np.uint8)

    class StepTimer(keras.callbacks.Callback):
        """Stops ``fit`` once ``seconds`` and 3 steps have passed after two warm-up steps."""

        seen, steps, start, elapsed = 0, 0, 0.0, 0.0

        def on_train_batch_end(self, batch, logs=None):
            self.seen += 1
            now = time.perf_counter()
            if self.seen == 2:
                self.start = now
            elif self.seen > 2:
                self.steps, self.elapsed = self.seen - 2, now - self.start
                if self.steps >= 3 and self.elapsed >= seconds:
                    self.model.stop_training = True

    timer = StepTimer()
    model.fit(
        _training_dataset(lr, hr, args, info, recipe, seed=0),
        epochs=1,
        steps_per_epoch=10**9,  # until the timer stops it
        callbacks=[timer],
        shuffle=False,  # tf.data already shuffles
        verbose=0,
    )
    result = {
        "architecture": info["architecture"],
        "parameters": int(model.count_params()),
        "task": args.TASK,
        "batch": args.BATCH,
        "precision": precision,
        "steps": timer.steps,
        "seconds": round(timer.elapsed, 1),
        "samples_per_second": round(timer.steps * args.BATCH / timer.elapsed, 2),
    }
    if validation_patches:
        index = rng.integers(0, len(lr), validation_patches)
        val_ds = data.validation_dataset(lr[index], hr[index])
        model.evaluate(val_ds, verbose=0)
        start = time.perf_counter()
        model.evaluate(val_ds, verbose=0)
        result["validation_seconds"] = round(time.perf_counter() - start, 2)
    keras.backend.clear_session()
    return result


def make_optimizer(args, recipe: dict, total_steps: int):
    """Adam at LEARNING_RATE, constant (the prototypes) or cosine-decayed to zero; EMA of the weights if asked."""
    import keras

    rate = args.LEARNING_RATE
    if recipe["schedule"] == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=total_steps)
    if recipe["ema"]:
        return keras.optimizers.Adam(learning_rate=rate, use_ema=True, ema_momentum=recipe["ema"])
    return keras.optimizers.Adam(learning_rate=rate)


def train(script: str, args, build_model, run_dir: Path, recipe: dict) -> Path:
    import keras

    from util import data, report

    started = time.time()
    folder = data.dataset_dir(args.DATASET)
    precision = configure_precision(args.PRECISION)
    keras.utils.set_random_seed(args.SEED)

    model = build_model(args.TASK, args)
    info = model_info(model)
    train_lr, train_hr = data.load_split(folder, args.TASK, "train", args.TRAIN_PATCHES)
    n_train_total = len(np.load(folder / "train_hr.npy", mmap_mode="r"))
    val_start = max(0, n_train_total - args.VAL_PATCHES)
    if val_start < len(train_hr):
        print(f"note: the {args.VAL_PATCHES} validation pairs overlap the {len(train_hr)} training pairs")
    val_lr, val_hr = data.load_split(folder, args.TASK, "train", args.VAL_PATCHES, start=val_start)
    prepare = _stored_input(info)
    train_x, val_x = prepare(train_lr), prepare(val_lr)

    steps_total = max(1, args.BACKPROPS // args.BATCH)
    epochs = min(args.EPOCHS, steps_total)
    steps_per_epoch = math.ceil(steps_total / epochs)
    train_ds = _training_dataset(train_x, train_hr, args, info, recipe, seed=args.SEED)
    val_ds = data.validation_dataset(val_x, val_hr)

    run_dir.mkdir(parents=True, exist_ok=True)
    best = run_dir / "best.weights.h5"
    # With EMA, SwapEMAWeights puts the averaged weights in the model for validation and for
    # ModelCheckpoint (after it in the list); the backup before it keeps the raw ones to resume.
    swap = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if recipe["ema"] else []
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        *swap,
        keras.callbacks.ModelCheckpoint(str(best), monitor="val_loss", save_best_only=True, save_weights_only=True),
        keras.callbacks.CSVLogger(str(run_dir / "training.csv"), append=True),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False),
        keras.callbacks.TerminateOnNaN(),
    ]
    model.compile(optimizer=make_optimizer(args, recipe, steps_per_epoch * epochs), loss=recipe["loss"])
    print(
        f"{script}: {info['architecture']}, {model.count_params():,} parameters, {precision}; "
        f"{len(train_hr)} training pairs from {folder}, {epochs} epochs x {steps_per_epoch} steps x batch {args.BATCH}"
    )
    fit_started = time.time()
    model.fit(
        train_ds,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=val_ds,
        callbacks=callbacks,
        shuffle=False,  # tf.data already shuffles
        verbose=2,
    )
    train_seconds = time.time() - fit_started
    if not np.isfinite(model.evaluate(val_ds, verbose=0)):
        raise UserError(f"training diverged (loss is not finite); lower LEARNING_RATE={args.LEARNING_RATE}")
    if best.exists():
        model.load_weights(best)

    # Save in float32 whatever the training precision, so that the model runs fast
    # on any CPU: rebuild the same architecture under the float32 policy.
    keras.mixed_precision.set_global_policy("float32")
    saved = build_model(args.TASK, args)
    saved.set_weights(model.get_weights())
    with atomic_path(run_dir / "model.keras") as tmp:
        keras.saving.save_model(saved, tmp)
    best.unlink(missing_ok=True)

    meta = {
        "model": script,
        "architecture": info["architecture"],
        "parameters": int(saved.count_params()),
        "dataset": args.DATASET,
        "task": args.TASK,
        "train_patches": len(train_hr),
        "backprops": steps_per_epoch * epochs * args.BATCH,
        "batch": args.BATCH,
        "learning_rate": args.LEARNING_RATE,
        "recipe": recipe,
        "seed": args.SEED,
        "precision": precision,
        "train_seconds": round(train_seconds, 1),
        "train_samples_per_second": round(steps_per_epoch * epochs * args.BATCH / train_seconds, 2),
    }
    if args.minutes:
        meta["minutes_asked"] = args.minutes
    results = evaluate_run(saved, args, folder, run_dir, meta)
    report.training_curve(run_dir / "training.csv", run_dir / "training_curve.png")
    report.model_diagram(saved, run_dir / "model.png")
    results["wall_seconds"] = round(time.time() - started, 1)
    write_json_atomic(run_dir / "results.json", results)
    report.results_markdown(results, run_dir / "results.md")
    print(f"{report.summary_line(results)}; wall time {results['wall_seconds']:.0f} s; outputs in {run_dir}")
    return run_dir


def _training_dataset(inputs, targets, args, info: dict, recipe: dict, seed: int):
    """The training's tf.data pipeline; ``shifts`` gets the task's scale where its input is a plain bicubic LR."""
    from util import data
    from util.models import TASKS

    plain = TASKS[args.TASK][1] == f"x{info['scale']}" and info["scale"] > 1
    return data.make_dataset(
        inputs,
        targets,
        args.BATCH,
        seed,
        augment=recipe["augment"],
        shift_scale=info["scale"] if plain else 0,
        upsampled=info["input_kind"] == "upsampled",
    )


def _stored_input(info: dict):
    """uint8 degraded patches -> uint8 patches in the model's input kind (upsampled once, up front)."""
    if info["input_kind"] == "upsampled" and info["scale"] > 1:
        from util.resize import bicubic_upscale

        return lambda lr: bicubic_upscale(lr, info["scale"], batch=True)
    return lambda lr: lr


def evaluate_run(model, args, folder: Path, run_dir: Path, meta: dict) -> dict:
    """Score ``model`` and the baseline on the test pairs; write comparison.png; return results."""
    from util import data, report

    info = model_info(model)
    test_lr, test_hr = data.load_split(folder, args.TASK, "test", args.TEST_PATCHES or None)
    started = time.time()
    outputs = predict_patches(model, info, test_lr)
    infer_seconds = time.time() - started
    base = data.baseline(test_lr, args.TASK)
    results = dict(meta)
    results.update(
        n_test=len(test_hr),
        protocol="RGB PSNR/SSIM, data range 255, no border crop, scikit-image SSIM (the prototype's)",
        baseline_name="bicubic" if info["scale"] > 1 else "noisy input",
        baseline=score_pairs(base, test_hr),
        model_scores=score_pairs(outputs, test_hr),
        test_patches_per_second=round(len(test_hr) / infer_seconds, 2),
    )
    if getattr(args, "ensemble", False):
        started = time.time()
        results["ensemble_scores"] = score_pairs(predict_patches(model, info, test_lr, ensemble=True), test_hr)
        results["ensemble_patches_per_second"] = round(len(test_hr) / (time.time() - started), 2)
    report.comparison_figure(test_lr, base, outputs, test_hr, results, run_dir / "comparison.png")
    return results


def test(script: str, args, run_dir: Path) -> Path:
    import json

    from util import data, report
    from util.models import load_model

    model_path = Path(args.model) if args.model else run_dir / "model.keras"
    model, info = load_model(model_path)
    if info["task"] != args.TASK:
        raise UserError(f"{model_path} was trained for TASK={info['task']!r}; pass --task {info['task']}")
    out_dir = model_path.parent
    previous = out_dir / "results.json"
    meta = json.loads(previous.read_text()) if previous.exists() else {"model": script, "task": args.TASK}
    meta.update(dataset=args.DATASET)
    results = evaluate_run(model, args, data.dataset_dir(args.DATASET), out_dir, meta)
    write_json_atomic(out_dir / "test_results.json", results)
    report.results_markdown(results, out_dir / "test_results.md")
    print(f"test of {model_path}: {report.summary_line(results)}")
    return out_dir


def predict(args, run_dir: Path) -> Path:
    """Enhance an image or a folder with this run's model: ``enhance.py``'s code, so that
    grey, alpha, 16-bit, EXIF and ICC are handled alike."""
    import enhance

    if not args.input:
        raise UserError("--role predict needs --input IMAGE_OR_FOLDER")
    out_dir = Path(args.output) if args.output else run_dir / "predictions"
    model = Path(args.model) if args.model else run_dir / "model.keras"
    enhance.main([args.input, "--model", str(model), "--out", str(out_dir), "--overwrite"])
    return out_dir
