"""Training speed of the model scripts, each with its own default constants.

    python3 benchmark.py training                                 # every model script, x4
    python3 benchmark.py training --batch 16                      # every script at the same batch of 16

Each model script with its own default constants (BATCH, PRECISION, loss, augmentation;
--batch sets one BATCH for all) at --task, on random patches through the same tf.data
pipeline (util/training/speed.py), for about --seconds after two warm-up steps, split into --rounds
that take the scripts in turn: a shared 2-core machine drifts by 20% and more within
minutes, and interleaving lets the drift hit every script alike; the median round is kept.
Samples/s on training_speed.md and training_speed.json in --out.
"""

from __future__ import annotations

import sys

import util
from util.benchmarks import measure

# ---- Constants: edit these -------------------------------------------------
TRAINING_SCRIPTS = None  # scripts timed; None: every model script (benchmark.py's MODEL_SCRIPTS)
TRAINING_TASK = "sr4"  # the task trained (--task)
TRAINING_SECONDS = 60.0  # seconds of training timed per script, over all rounds (--seconds)
TRAINING_ROUNDS = 3  # interleaved rounds (--rounds); the median is kept


def add_arguments(parser) -> None:
    parser.add_argument("--task", default=TRAINING_TASK, help=f"the task trained (default: {TRAINING_TASK})")
    parser.add_argument("--seconds", type=float, default=TRAINING_SECONDS, help="seconds per script")
    parser.add_argument("--batch", type=int, help="one batch size for every script (default: each script's BATCH)")
    parser.add_argument("--rounds", type=int, default=TRAINING_ROUNDS, help="interleaved rounds (the median is kept)")
    measure.add_out_argument(parser, "training_speed.md and training_speed.json")


def script_speed(script, task: str, seconds: float, batch: int | None = None) -> dict:
    """Samples/s of one model script's training step with its default constants (see the module doc)."""
    from util.training import speed

    settings, _ = script.settings(["--task", task, *(["--batch", str(batch)] if batch else [])])
    return {
        "script": script.name,
        "prototype": script.prototype,
        **speed.training_speed(script.build_model, settings, seconds),
    }


def training_markdown(rows: list[dict]) -> str:
    fastest_prototype = max(r["samples_per_second"] for r in rows if r["prototype"]) if rows else 0
    lines = [
        "| script | architecture | parameters | batch | precision | samples / s (median) | rounds | "
        "vs fastest prototype |",
        "|---|---|---:|---:|---|---:|---|---:|",
    ]
    for r in rows:
        ratio = f"{r['samples_per_second'] / fastest_prototype:.1f}x" if fastest_prototype else "—"
        rounds = ", ".join(f"{v:.1f}" for v in r["rounds"])
        lines.append(
            f"| {r['script']} | {r['architecture']} | {r['parameters']:,} | {r['batch']} | {r['precision']} | "
            f"{r['samples_per_second']:.1f} | {rounds} | {ratio} |"
        )
    return "\n".join(lines)


def main(args) -> None:
    """``benchmark.py training``: the scripts timed in interleaved rounds (module doc)."""
    measure.check_batch(args.batch)
    if args.seconds <= 0:
        raise util.UserError(f"--seconds {args.seconds}: give a positive number of seconds")
    if args.rounds < 1:
        raise util.UserError(f"--rounds {args.rounds}: give at least 1")
    from util.data.tasks import stored_task

    stored_task(args.task)
    scripts = args.model_scripts()  # benchmark.py's explicit list
    scripts = [scripts[name] for name in TRAINING_SCRIPTS or scripts]
    timings = {script.name: [] for script in scripts}
    for round_ in range(args.rounds):
        for script in scripts:
            print(f"round {round_ + 1}/{args.rounds}: timing {script.name} ({args.task}) ...", file=sys.stderr)
            timings[script.name].append(script_speed(script, args.task, args.seconds / args.rounds, args.batch))
    rows = []
    for runs in timings.values():
        speeds = [r["samples_per_second"] for r in runs]
        median = sorted(runs, key=lambda r: r["samples_per_second"])[len(runs) // 2]  # even counts: the upper middle
        rows.append({**median, "rounds": speeds})
    table = training_markdown(rows)
    print(table)
    machine = measure.machine_name()
    measure.write_tables(
        args.out, "training_speed", f"Training speed on {machine}", table, {"machine": machine, "rows": rows}
    )
