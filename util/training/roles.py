"""A model script's entry point: its constants -> Settings -> the role or study asked for.

Roles (``--role``):
  * ``train`` (default): train one run (util.training), or a study (``--sweep``,
    ``--ablation``; util.training.studies); ``--minutes`` sets BACKPROPS from a time budget;
  * ``test``: score a saved model (``--model``, default the run folder's) on the test
    pairs and write the report again;
  * ``predict``: enhance a folder of images with the run's model (util.inference.photos, as
    enhance.py does);
  * ``average``: write one model that averages the outputs of several saved models
    (``--model A.keras,B.keras --output AB.keras``; util.models.loading.average_models).

Model scripts register here with ``model_script``, so that benchmark.py finds them all.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

from util.data.pairs import open_pairs
from util.io.files import UserError, write_json_atomic
from util.training.folders import REPO, run_dir, saved_json
from util.training.run import train
from util.training.settings import Options, Settings, parse_settings

SHIPPED = REPO / "assets"  # the shipped models' folder: --role test writes its results under OUT instead


@dataclass(frozen=True)
class ModelScript:
    """A registered model script: its name (the file's stem), module, ``build_model`` and kind."""

    name: str
    module: str
    build_model: object
    prototype: bool  # one of the research prototypes (benchmark.py compares the suite's own models with them)

    def settings(self, argv=()) -> tuple[Settings, Options]:
        module = sys.modules[self.module]
        return parse_settings(module, self.build_model, list(argv), module.__doc__ or "")


MODEL_SCRIPTS: dict[str, ModelScript] = {}


def model_script(module_name: str, build_model, prototype: bool = False):
    """Register the script of ``module_name``; return its ``main(argv)``."""
    name = Path(sys.modules[module_name].__file__).stem
    script = ModelScript(name, module_name, build_model, prototype)
    MODEL_SCRIPTS[name] = script

    def main(argv=None) -> Path:
        return run_script(script, argv)

    return main


def run_script(script: ModelScript, argv=None) -> Path:
    """Parse the constants and flags, then run the role or study; return the folder written."""
    from util.training import studies

    settings, options = script.settings(sys.argv[1:] if argv is None else argv)
    if options.variant:
        settings = studies.with_variants(settings, options.variant)
    if options.role == "test":
        return test(script.name, settings, options)
    if options.role == "predict":
        return predict(script.name, settings, options)
    if options.role == "average":
        return average(options)
    from util.training import distribute

    distribute.placement(settings.distribute, settings.batch)  # checked and made before any TensorFlow op
    if options.minutes:
        backprops = studies.budget_backprops(script.build_model, settings, options.minutes)
        settings = dataclasses.replace(settings, backprops=backprops)
    if options.sweep:
        return studies.sweep(script.name, settings, script.build_model, options.sweep, options.ensemble)
    if options.ablation:
        return studies.ablation(script.name, settings, script.build_model, options.ablation, options.ensemble)
    settings = open_pairs(settings.dataset).with_available(settings)
    folder = run_dir(script.name, settings)
    return train(script.name, settings, script.build_model, folder, options.minutes, options.ensemble)


def test(script: str, settings: Settings, options: Options) -> Path:
    from util.evaluation import report
    from util.models.loading import load_model

    pairs = open_pairs(settings.dataset)
    settings = pairs.with_available(settings)
    model_path = Path(options.model) if options.model else run_dir(script, settings) / "model.keras"
    model, info = load_model(model_path)
    if info["task"] != settings.task:
        raise UserError(f"{model_path} was trained for TASK={info['task']!r}; pass --task {info['task']}")
    out_dir = model_path.parent
    if model_path.resolve().is_relative_to(SHIPPED.resolve()):  # never write beside the shipped models
        out_dir = (REPO / settings.out / f"test-{model_path.stem}-{Path(settings.dataset).name}").resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
    previous = out_dir / "results.json"
    meta = saved_json(previous) if previous.exists() else None
    if not isinstance(meta, dict):  # none, or unreadable: the test results carry what is known here
        meta = {"model": script, "task": settings.task}
    meta.update(dataset=settings.dataset)
    results = pairs.score(model, settings, out_dir, meta, options.ensemble)
    write_json_atomic(out_dir / "test_results.json", results)
    report.results_markdown(results, out_dir / "test_results.md")
    print(f"test of {model_path}: {report.summary_line(results)}")
    return out_dir


def average(options: Options) -> Path:
    """Write the average of the ``--model`` list as one model at ``--output`` (a .keras file)."""
    from util.io.files import atomic_path
    from util.models.loading import average_models, load_model

    paths = [Path(p.strip()) for p in (options.model or "").split(",") if p.strip()]
    if not options.output or Path(options.output).suffix != ".keras":
        raise UserError("--role average needs --output FILE.keras, the averaged model to write")
    out = Path(options.output)
    if out.resolve() in [p.resolve() for p in paths]:
        raise UserError(f"--output {out} is one of the models averaged; write the average to a new file")
    model = average_models([load_model(p)[0] for p in paths], [str(p) for p in paths])
    with atomic_path(out) as tmp:
        model.save(tmp)
    print(f"{out}: {model.name} of {len(paths)} models, {model.count_params():,} parameters")
    return out


def predict(script: str, settings: Settings, options: Options) -> Path:
    """Enhance an image or a folder with this run's model, as enhance.py does (util.inference.photos)."""
    from util.inference.photos import enhance_photos
    from util.inference.raster_enhance import enhance_raster_file, is_raster_file, output_path

    if not options.input:
        raise UserError("--role predict needs --input IMAGE_OR_FOLDER")
    folder = run_dir(script, settings)
    out_dir = Path(options.output) if options.output else folder / "predictions"
    model = Path(options.model) if options.model else folder / "model.keras"
    source = Path(options.input)
    if source.is_file() and is_raster_file(source):
        from util.io.provenance import model_provenance
        from util.models.loading import load_model

        loaded, info = load_model(model)
        target = output_path(source, info["scale"], out_dir)
        enhance_raster_file(source, loaded, info, target, provenance=model_provenance(model, info))
        print(f"{source} -> {target}")
        return out_dir
    enhance_photos([source], model, out=out_dir, overwrite=True)
    return out_dir
