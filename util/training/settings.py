"""A model script's constants block -> command-line flags -> one frozen, typed ``Settings``.

The constants block at the top of a script (between ``# ---- Constants`` and the next
``# ----`` line) is the user's interface. Each constant is described once, by the
comment on its line, which is also its ``--help`` text. A constant is either a field of
``Settings`` (what every script trains with) or a keyword argument of the script's
``build_model`` (FILTERS -> ``filters``); anything else, or a missing field, is an error at
start-up. ``Settings`` validates itself when made, and is never changed afterwards: a
study makes new ones with ``dataclasses.replace``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import tokenize
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from util.data.pipelines import AUGMENTATIONS
from util.data.tasks import NOISY_INPUTS, stored_task
from util.io.files import UserError
from util.training.distribute import DISTRIBUTES

BLOCK_START = "# ---- Constants"
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
LOSSES = ("mae", "mse")
SCHEDULES = ("constant", "cosine")


def parse_augment(text: str) -> tuple[str, ...]:
    """``"flips,channels"`` -> ``("flips", "channels")``; ``""``, ``"none"`` -> ``()``; ``"auto"`` -> ``("auto",)``."""
    names = tuple(n.strip() for n in str(text).split(",") if n.strip() and n.strip() != "none")
    if "auto" in names:
        if names != ("auto",):
            raise UserError(f"AUGMENT={text!r}: auto picks the augmentations itself; give auto alone or a list")
        return names
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise UserError(
            f"AUGMENT={text!r}: unknown {', '.join(unknown)}; use auto or a comma list of {', '.join(AUGMENTATIONS)}"
        )
    return names


@dataclass(frozen=True)
class Settings:
    """Everything one training run depends on; ``model_args`` are ``build_model``'s keyword arguments."""

    dataset: str
    task: str
    train_patches: int
    backprops: int
    batch: int
    learning_rate: float
    epochs: int
    val_patches: int
    test_patches: int
    out: str
    seed: int
    precision: str
    loss: str
    augment: tuple[str, ...]
    schedule: str
    ema: float
    init_from: str
    distribute: str
    noisy: str = "8bit"  # synthetic noise in training: clipped and rounded as 8 bits, or left in float
    conserve: bool = False  # rasters and stacks: the output's block means equal the LR (ConserveBlockMean)
    aux: str = ""  # a stack's static predictors, comma-separated (util.data.static): latitude, raster files
    model_args: tuple[tuple[str, Any], ...] = ()
    variants: tuple[str, ...] = ()  # named study variants applied (util.training.studies.VARIANTS)

    def __post_init__(self):
        task = stored_task(self.task)
        for name in ("train_patches", "backprops", "batch", "epochs", "val_patches"):
            if getattr(self, name) < 1:
                raise UserError(f"{name.upper()}={getattr(self, name)} must be at least 1 ({flag(name)})")
        if self.test_patches < 0:
            raise UserError(f"TEST_PATCHES={self.test_patches}: give 0 (all test pairs) or a positive count")
        if not self.learning_rate > 0:
            raise UserError(f"LEARNING_RATE={self.learning_rate:g}: give a positive learning rate such as 0.001")
        for name, allowed in (
            ("precision", PRECISIONS),
            ("loss", LOSSES),
            ("schedule", SCHEDULES),
            ("distribute", DISTRIBUTES),
        ):
            if getattr(self, name) not in allowed:
                raise UserError(f"{name.upper()}={getattr(self, name)!r} is unknown; use {' or '.join(allowed)}")
        if self.noisy not in NOISY_INPUTS:
            raise UserError(f"NOISY={self.noisy!r} is unknown; use {' or '.join(NOISY_INPUTS)} (--noisy)")
        if self.noisy == "float" and not (task.synthetic and (task.noise_sigma or task.sigma_range)):
            raise UserError(
                f"NOISY=float applies to the noise tasks degraded in training (noiseS, noise, defocus), "
                f"not to {self.task}; use NOISY=8bit"
            )
        if not isinstance(self.conserve, bool):
            raise UserError(f"CONSERVE={self.conserve!r}: give True or False (--conserve, --no-conserve)")
        if not 0 <= self.ema < 1:
            raise UserError(f"EMA={self.ema:g} is not a momentum; use 0 (off) or a value below 1 such as 0.99")
        if "auto" in parse_augment(",".join(self.augment)):
            raise UserError("AUGMENT=auto must be resolved for the data first (util.data.pairs: Pairs.resolve_augment)")
        if self.init_from and not Path(self.init_from).expanduser().is_file():
            raise UserError(f"INIT_FROM={self.init_from!r}: no such model file; give a saved model.keras or ''")
        if "shifts" in self.augment and not task.is_bicubic_sr:
            raise UserError("AUGMENT=shifts applies to the bicubic SR tasks (sr2, sr4, sr8) only; drop shifts")
        if self.aux:
            from util.data.static import check_aux, parse_aux

            check_aux(parse_aux(self.aux))
        for name, value in self.model_args:
            if isinstance(value, int) and not isinstance(value, bool) and value < 1:
                raise UserError(f"{name.upper()}={value} must be at least 1 ({flag(name)})")

    @property
    def model_kwargs(self) -> dict:
        return dict(self.model_args)

    def to_json(self) -> dict:
        """JSON-ready: every field, ``model_args`` as a dict."""
        data = dataclasses.asdict(self)
        data.update(augment=list(self.augment), model_args=self.model_kwargs, variants=list(self.variants))
        if not self.aux:  # runs without static predictors keep the settings.json of runs from before AUX
            del data["aux"]
        return data


@dataclass(frozen=True)
class Options:
    """What to do with the settings: the flags that are not constants."""

    role: str = "train"
    model: str | None = None
    input: str | None = None
    output: str | None = None
    sweep: tuple[int, ...] = ()
    ablation: str | None = None
    ensemble: bool = False
    minutes: float | None = None
    variant: tuple[str, ...] = ()


SETTING_FIELDS = {f.name: f.type for f in fields(Settings) if f.name not in ("model_args", "variants")}
FLAG_TYPES = {"int": int, "float": float, "str": str, "tuple[str, ...]": str, "bool": bool}


def flag(name: str) -> str:
    """``TRAIN_PATCHES`` or ``train_patches`` -> ``--train-patches``."""
    return "--" + name.lower().replace("_", "-")


def constants_block(path: Path) -> dict[str, str]:
    """Constant name -> its comment, in the order of the block of the script at ``path``."""
    lines = Path(path).read_text().splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith(BLOCK_START))
    except StopIteration:
        raise UserError(f"{path}: no constants block (a line starting with {BLOCK_START!r})") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("# ----")), len(lines))
    block = "".join(lines[start + 1 : end])
    comments = {
        token.start[0]: token.string.lstrip("#").strip()
        for token in tokenize.generate_tokens(io.StringIO(block).readline)
        if token.type == tokenize.COMMENT
    }
    described = {}
    for node in ast.parse(block).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if not comments.get(node.lineno):
                raise UserError(f"{path}: constant {name} has no comment; describe it on its line")
            described[name] = comments[node.lineno]
    return described


def parse_settings(module, build_model, argv, description: str) -> tuple[Settings, Options]:
    """Flags for the constants block of ``module`` (defaults: the constants), parsed into Settings and Options."""
    described = constants_block(module.__file__)
    # ``channels`` and ``extra_channels`` are not settings: the data decide them (3 for photos, 1 for rasters,
    # a stack's static predictors).
    model_params = {
        name: p.default
        for name, p in inspect.signature(build_model).parameters.items()
        if name not in ("task", "channels", "extra_channels")
    }
    for name in described:
        if name.lower() not in SETTING_FIELDS and name.lower() not in model_params:
            raise UserError(
                f"{module.__file__}: constant {name} is neither a setting ({', '.join(SETTING_FIELDS)}) nor an "
                "argument of build_model; remove it or add the argument"
            )
    missing = [name.upper() for name in SETTING_FIELDS if name.upper() not in described]
    if missing:
        raise UserError(f"{module.__file__}: the constants block lacks {', '.join(missing)}; add them")

    parser = _option_parser(description)
    for name, text in described.items():
        value = getattr(module, name)
        kind = FLAG_TYPES[SETTING_FIELDS[name.lower()]] if name.lower() in SETTING_FIELDS else type(value)
        # A yes/no constant is a switch: --conserve, --no-conserve.
        typed = {"action": argparse.BooleanOptionalAction} if kind is bool else {"type": kind}
        parser.add_argument(
            flag(name),
            dest=name,
            default=value,
            metavar=None if kind is bool else kind.__name__.upper(),
            help=text.replace("%", "%%") + " (%(default)r)",
            **typed,
        )
    args = parser.parse_args(argv)
    values = {name: getattr(args, name.upper()) for name in SETTING_FIELDS}
    from util.data.pairs import resolve_augment

    values["augment"] = resolve_augment(values["dataset"], parse_augment(values["augment"]), values["task"])
    model_args = {**model_params, **{n.lower(): getattr(args, n) for n in described if n.lower() in model_params}}
    settings = Settings(**values, model_args=tuple(model_args.items()))
    if settings.conserve:
        from util.data.pairs import check_conserve

        check_conserve(settings.dataset)
    if args.minutes is not None and not args.minutes > 0:
        raise UserError(f"--minutes {args.minutes:g}: give a positive training time in minutes")
    if args.sweep and args.ablation:
        raise UserError("--sweep and --ablation are separate studies; give one of them")
    options = Options(
        role=args.role,
        model=args.model,
        input=args.input,
        output=args.output,
        sweep=tuple(args.sweep or ()),
        ablation=args.ablation,
        ensemble=args.ensemble,
        minutes=args.minutes,
        variant=tuple(n.strip() for n in (args.variant or "").split(",") if n.strip()),
    )
    return settings, options


def _option_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--role", choices=("train", "test", "predict", "average"), default="train", help="what to do (train)"
    )
    parser.add_argument(
        "--model",
        help="role test/predict: a saved .keras model (default: this run's model.keras); role average: "
        "the models to average, A.keras,B.keras,...",
    )
    parser.add_argument("--input", help="role predict: an image or a folder of images")
    parser.add_argument(
        "--output", help="role predict: output folder (default: <run>/predictions); role average: the .keras file"
    )
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
        help="role train: train the recipe as given and once more per choice undone (util/training/studies.py), same "
        "BACKPROPS; score each on Set5 and write ablation.md (default: all that apply)",
    )
    parser.add_argument(
        "--variant",
        metavar="NAME,NAME,...",
        help="train with these ablation variants (glorot-output, no-skip, hr-space ...; util/training/studies.py)",
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
        "training speed measured first, instead of --backprops",
    )
    return parser


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sweep {text!r}: give sizes like 100,1000,10000") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--sweep {text!r}: give positive sizes like 100,1000,10000")
    return sizes
