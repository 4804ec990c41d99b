"""The method's command line: storage, train, eval, predict, tasks, export.

The product's commands (serve, worker, jobs, db) extend this group in `app.cli`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from .config import ConfigError, PropetlConfig, TrainConfig


class CliError(click.ClickException):
    """An error shown as one clear line, without a traceback."""


def fail_cleanly(func):
    """Turn the library's validation errors into clean CLI errors."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (ValueError, KeyError, OSError, RuntimeError) as err:
            if isinstance(err, click.ClickException):
                raise
            raise CliError(error_text(err)) from err

    return wrapper


def error_text(err: Exception) -> str:
    """The message of an error for a user: the project's own errors (and the system's) as
    they are, one line per problem; the class name only for unexpected ones."""
    if isinstance(err, ConfigError) and len(err.problems) > 1:
        return problems_text("invalid config", err)
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    if isinstance(err, OSError) or type(err).__module__.split(".")[0] in ("propetl", "app"):
        return text
    return f"{err.__class__.__name__}: {text}"


@click.group()
@click.version_option(package_name="propetl-studio")
def cli() -> None:
    """ProPETL: one shared prototype, a binary mask per (layer, task)."""


@cli.command()
@click.option(
    "--backbone",
    required=True,
    help="bundled name (minilm-l6), tiny-<family>, hub id, or a folder (a config.json is enough)",
)
@click.option("--petl", type=click.Choice(["adapter", "lora", "prefix"]), default="adapter")
@click.option("--sharing", type=click.Choice(["propetl", "propetl-or", "none"]), default="propetl")
@click.option("--keep", type=float, default=None, help="fraction of each mask kept")
@click.option("--bottleneck", type=int, default=64)
@click.option("--lora-r", type=int, default=32)
@click.option("--lora-alpha", type=float, default=48.0)
@click.option("--prefix-len", type=int, default=64)
@click.option("--tasks", "num_tasks", type=int, default=1, help="number of tasks")
@click.option(
    "--model-dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="a saved ProPETL model folder: add its bytes on disk",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@fail_cleanly
def storage(
    backbone: str,
    petl: str,
    sharing: str,
    keep: float | None,
    bottleneck: int,
    lora_r: int,
    lora_alpha: float,
    prefix_len: int,
    num_tasks: int,
    model_dir: str | None,
    as_json: bool,
) -> None:
    """The paper's storage accounting for a backbone shape (no weights needed)."""
    from .storage import storage_report_for_config

    if num_tasks < 1:
        raise CliError("--tasks must be >= 1")
    try:
        config = PropetlConfig(
            petl=petl,
            sharing=sharing,
            keep=keep,
            bottleneck=bottleneck,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            prefix_len=prefix_len,
        )
    except ConfigError as err:
        raise CliError(str(err)) from err
    report = storage_report_for_config(backbone, config, num_tasks)
    if model_dir:
        from .checkpoint import file_sizes

        report.disk_bytes = file_sizes(Path(model_dir))
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.summary())


# ------------------------------------------------------------------ training and inference

PROPETL_FLAGS = (
    "petl",
    "sharing",
    "keep",
    "masks",
    "bottleneck",
    "lora_r",
    "lora_alpha",
    "prefix_len",
    "head",
    "pooling",
)
TRAIN_FLAGS = (
    "backbone",
    "lr",
    "mask_lr",
    "epochs",
    "max_steps",
    "batch_size",
    "max_length",
    "eval_every",
    "max_examples",
    "sampling",
    "seed",
    "data_seed",
    "device",
    "precision",
    "early_stopping_patience",
    "max_target_length",
    "label_smoothing",
    "num_beams",
)


def build_train_config(config_file: str | None, overrides: dict) -> TrainConfig:
    """A TrainConfig from an optional YAML file, with command-line flags on top."""
    data = train_fields(config_file, overrides)
    try:
        return TrainConfig.from_dict(data)
    except ConfigError as err:
        raise CliError(problems_text("invalid config", err)) from err


def problems_text(title: str, err: Exception) -> str:
    """`title:` and the error's problems (a `ConfigError`'s), one per line when several."""
    problems = getattr(err, "problems", None) or [str(err)]
    if len(problems) < 2:
        return f"{title}: {problems[0]}"
    return "\n".join([f"{title}:", *(f"  - {p}" for p in problems)])


def read_yaml_file(path: str) -> object:
    """A YAML file's content (YAML 1.2 numbers); a file that is not YAML is one clear error."""
    import yaml

    from .config import load_yaml

    try:
        return load_yaml(Path(path).read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise CliError(f"{path}: not valid YAML: {problem}{where}") from err


def train_fields(config_file: str | None, overrides: dict) -> dict:
    """The job's fields as given (YAML file, then flags on top), not yet validated; the
    ProPETL options under "propetl" (only those given)."""
    data: dict = {}
    if config_file:
        loaded = read_yaml_file(config_file)
        if not isinstance(loaded, dict):
            raise CliError(f"{config_file}: expected a mapping of config fields")
        data = loaded
    propetl = dict(data.pop("propetl", None) or {})
    for key in PROPETL_FLAGS:
        if overrides.get(key) is not None:
            propetl[key] = overrides[key]
    for key in TRAIN_FLAGS:
        if overrides.get(key) is not None:
            data[key] = overrides[key]
    if overrides.get("tasks"):
        data["tasks"] = [t.strip() for t in overrides["tasks"].split(",") if t.strip()]
    return {**data, "propetl": propetl}


def build_onto_config(
    onto: str, config_file: str | None, overrides: dict, replace: tuple[str, ...]
):
    """(base, TrainConfig) for adding the given tasks onto the prototype in folder `onto`."""
    from .continual import check_task_names, onto_config, read_base

    base = read_base(onto)
    data = train_fields(config_file, overrides)
    if not data.get("tasks"):
        raise CliError("--onto: name the new task(s) with --tasks")
    names = [
        Path(t).stem if Path(t).suffix.lower() in (".csv", ".tsv", ".jsonl") else t
        for t in data["tasks"]
    ]
    try:
        check_task_names(base.tasks, names, replace, option="--replace TASK")
        return base, onto_config(base, data)
    except (ConfigError, TypeError) as err:
        raise CliError(problems_text("cannot add onto this prototype", err)) from err


@cli.command()
@click.argument("config_file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--backbone", help="bundled name (minilm-l6), tiny-<family>, hub id or folder")
@click.option("--tasks", help="comma-separated task names or data files")
@click.option("--petl", type=click.Choice(["adapter", "lora", "prefix"]))
@click.option("--sharing", type=click.Choice(["propetl", "propetl-or", "none"]))
@click.option("--keep", type=float)
@click.option(
    "--masks",
    type=click.Choice(["learned", "random"]),
    help="random: masks drawn once and never trained (ablation)",
)
@click.option("--bottleneck", type=int)
@click.option("--lora-r", type=int)
@click.option("--lora-alpha", type=float)
@click.option("--prefix-len", type=int)
@click.option("--head", type=click.Choice(["linear", "roberta"]))
@click.option("--pooling", type=click.Choice(["cls", "mean"]))
@click.option("--lr", type=float)
@click.option("--mask-lr", type=float)
@click.option("--epochs", type=float)
@click.option("--max-steps", type=int)
@click.option("--batch-size", type=int)
@click.option("--max-length", type=int)
@click.option("--eval-every", type=int)
@click.option("--early-stopping-patience", type=int)
@click.option("--max-examples", type=int, help="cap each split (quick runs)")
@click.option("--max-target-length", type=int, help="generative backbones: target tokens")
@click.option("--label-smoothing", type=float, help="generative backbones: LM label smoothing")
@click.option("--num-beams", type=int, help="generative backbones: beams when evaluating")
@click.option("--sampling", type=click.Choice(["temperature", "proportional", "uniform"]))
@click.option("--seed", type=int, help="training seed (init, masks, batch order)")
@click.option("--data-seed", type=int, help="seed of the train / dev / test split (default 42)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]))
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="run folder (default runs/<backbone>-<petl>-<tasks>)",
)
@click.option("--fresh", is_flag=True, help="ignore checkpoints in the run folder")
@click.option(
    "--onto",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="a saved model folder: add --tasks onto its frozen prototype (backbone and "
    "method come from it; its files are never changed)",
)
@click.option(
    "--replace",
    "replace",
    multiple=True,
    help="with --onto: retrain this existing task (repeatable; list it in --tasks)",
)
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@fail_cleanly
def train(
    config_file: str | None,
    run_dir: str | None,
    fresh: bool,
    onto: str | None,
    replace: tuple[str, ...],
    as_json: bool,
    **overrides,
) -> None:
    """Train ProPETL (resumes from the run folder's last checkpoint); with --onto, add tasks
    to a trained prototype, writing a new model folder."""
    from .training import train as run_training

    if onto is None and replace:
        raise CliError("--replace retrains a task of a prototype: give --onto MODEL_DIR")
    if onto is not None:
        _, config = build_onto_config(onto, config_file, overrides, replace)
    else:
        config = build_train_config(config_file, overrides)
    if run_dir is None:
        label = "-".join(Path(t).stem for t in config.tasks)
        run_dir = f"runs/{Path(config.backbone).name}-{config.propetl.petl}-{label}"
        if onto is not None:
            run_dir = f"runs/{Path(onto).resolve().parent.name}-plus-{label}"
    result = run_training(
        config, Path(run_dir), resume=not fresh, show_progress=True, onto=onto, replace=replace
    )
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(
        f"{result.status} after {result.steps}/{result.total_steps} steps "
        f"in {result.train_seconds:.0f} s; run folder {result.run_dir}"
    )
    for task, metrics in result.test_metrics.items():
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        click.echo(f"  test {task}: {shown}")
    if result.model_dir:
        click.echo(f"model: {result.model_dir}")


def _load_for_inference(model_dir: str):
    from .checkpoint import read_manifest
    from .model import ProPETLModel

    manifest = read_manifest(Path(model_dir))
    return ProPETLModel.from_pretrained(model_dir), manifest["backbone"]


@cli.command(name="eval")
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--task", required=True, help="a task of the model (catalog name or data file)")
@click.option("--split", type=click.Choice(["dev", "test"]), default="test")
@click.option("--max-length", type=int, default=64)
@click.option("--max-examples", type=int, default=None)
@click.option(
    "--data-seed",
    "--seed",
    "seed",
    type=int,
    default=42,
    help="the split seed (data_seed) used in training",
)
@click.option("--json", "as_json", is_flag=True)
@fail_cleanly
def evaluate(
    model_dir: str,
    task: str,
    split: str,
    max_length: int,
    max_examples: int | None,
    seed: int,
    as_json: bool,
) -> None:
    """Evaluate a trained task on its dev or test split."""
    from .backbones import load_tokenizer
    from .data import MultiTaskCollator, load_task, tokenize_task
    from .evaluation import evaluate_task

    model, backbone = _load_for_inference(model_dir)
    data = load_task(task, seed=seed, max_examples=max_examples)
    model._check_task(data.info.name)
    tokenizer = load_tokenizer(backbone)
    index = model.task_index(data.info.name)
    if model.family.generative:
        from .data.text2text_collate import Text2TextCollator, tokenize_text2text
        from .evaluation import evaluate_generative

        causal = model.family.kind == "causal"
        dataset = tokenize_text2text(data, tokenizer, max_length, 64, index, causal)[split]
        metrics = evaluate_generative(
            model, dataset, Text2TextCollator(tokenizer, causal), data.info, tokenizer
        )
    else:
        dataset = tokenize_task(data, tokenizer, max_length, index)[split]
        metrics = evaluate_task(model, dataset, MultiTaskCollator(tokenizer), data.info)
    click.echo(
        json.dumps(metrics, indent=2)
        if as_json
        else ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    )


@cli.command()
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--task", required=True)
@click.argument("text")
@click.argument("text_pair", required=False)
@click.option("--json", "as_json", is_flag=True)
@fail_cleanly
def predict(model_dir: str, task: str, text: str, text_pair: str | None, as_json: bool) -> None:
    """Predict the label of TEXT (or TEXT TEXT_PAIR) for one task."""
    from .backbones import load_tokenizer
    from .inference import Predictor

    model, backbone = _load_for_inference(model_dir)
    if model.family.generative:
        from .inference import Generator

        result = Generator(model, load_tokenizer(backbone)).generate(task, [text])[0]
        click.echo(json.dumps(result, indent=2) if as_json else f"{task}: {result['text']}")
        return
    predictor = Predictor(model, load_tokenizer(backbone))
    result = predictor.predict(task, [(text, text_pair)])[0]
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{task}: {result['label']}")
    for label, prob in sorted(result["scores"].items(), key=lambda kv: -kv[1]):
        click.echo(f"  {label:<20} {prob:.3f}")


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@fail_cleanly
def tasks(as_json: bool) -> None:
    """The task catalog, with split sizes where known."""
    from .data import list_tasks

    infos = list_tasks()
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    for info in infos:
        sizes = info.sizes or {}
        size = (
            "/".join(str(sizes.get(k, "?")) for k in ("train", "dev", "test")) if sizes else "hub"
        )
        labels = (
            "text2text"
            if info.generative
            else "regression"
            if info.is_regression
            else f"{info.num_labels} labels"
        )
        click.echo(
            f"{info.name:<18} {info.source:<8} {labels:<11} {size:<18} {', '.join(info.metrics)}"
        )


@cli.command()
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--task",
    "task_names",
    multiple=True,
    help="task to export (propetl: repeatable, default all; peft / merged: one)",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["propetl", "peft", "merged"]),
    default="propetl",
    help="propetl: model folder; peft: PEFT LoRA adapter; merged: plain HF model",
)
@click.option("--out", required=True, type=click.Path(file_okay=False))
@fail_cleanly
def export(model_dir: str, task_names: tuple[str, ...], fmt: str, out: str) -> None:
    """Export tasks: a ProPETL folder, a PEFT LoRA adapter or a merged HF model."""
    from .checkpoint import export_tasks, read_manifest, saved_tasks

    source, target = Path(model_dir), Path(out)
    manifest = read_manifest(source)
    available = saved_tasks(source)
    chosen = list(task_names) or available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise CliError(f"unknown task(s) {unknown}; the model has: {', '.join(available)}")
    if fmt != "propetl":
        from .export import check_config, export_task
        from .families import family_for
        from .model import ProPETLModel

        if len(chosen) != 1:
            raise CliError(
                f"--format {fmt} exports one task: pass --task NAME (the model has: "
                f"{', '.join(available) or 'none'})"
            )
        try:  # refuse what the format cannot hold before loading the backbone
            config = PropetlConfig.from_dict(manifest["config"])
            family = family_for(str(manifest.get("model_type"))).name
        except (ConfigError, KeyError, TypeError, ValueError):
            pass  # loading below reports a damaged folder
        else:
            check_config(config, chosen[0], fmt, family)
        model = ProPETLModel.from_pretrained(source, tasks=chosen)
        export_task(model, chosen[0], target, fmt)
        click.echo(f"exported task {chosen[0]!r} as {fmt} to {target}")
        return
    export_tasks(source, chosen, target)
    click.echo(f"exported {len(chosen)} task(s) to {target}")


#: `propetl demo`: sized to show the method working in about a minute on 2 CPU cores.
DEMO_STEPS = 100
DEMO_TEXTS = ("a warm, funny and beautifully acted film", "a dull, lifeless mess")


def demo_config(steps: int = DEMO_STEPS) -> TrainConfig:
    """The demo's job: batch 32 of reviews cut at 48 tokens, one evaluation at the end."""
    return TrainConfig(
        backbone="minilm-l6",
        tasks=["rotten_tomatoes"],
        propetl=PropetlConfig(petl="adapter", bottleneck=64, keep=0.5),
        lr=2e-3,
        max_steps=steps,
        batch_size=32,
        max_length=48,
        max_examples=3200,
        eval_every=steps,
    )


@cli.command()
@click.option("--steps", type=int, default=DEMO_STEPS, show_default=True)
@click.option("--run-dir", type=click.Path(file_okay=False), default="runs/demo")
@fail_cleanly
def demo(steps: int, run_dir: str) -> None:
    """A short real run (about a minute on 2 CPU cores): bundled MiniLM + ProPETL adapter on
    3,200 rotten_tomatoes reviews, scored on the whole test split against the majority class,
    then two predictions and the storage report."""
    from .backbones import load_tokenizer
    from .inference import Predictor
    from .model import ProPETLModel
    from .storage import storage_report
    from .training import train as run_training

    config = demo_config(steps)
    click.echo(
        f"training a ProPETL adapter for {steps} steps of {config.batch_size} on "
        f"{config.max_examples:,} rotten_tomatoes reviews ..."
    )
    started = time.monotonic()
    result = run_training(config, Path(run_dir), resume=False, show_progress=True)
    counts = json.loads((Path(run_dir) / "predictions" / "class_counts.json").read_text())
    test = counts["rotten_tomatoes"]["test"]
    click.echo(
        f"test accuracy: {result.test_metrics['rotten_tomatoes']['accuracy']:.3f} on "
        f"{sum(test.values()):,} reviews (always answering the majority class: "
        f"{max(test.values()) / sum(test.values()):.3f}); "
        f"{time.monotonic() - started:.0f} s"
    )
    model = ProPETLModel.from_pretrained(result.model_dir)
    predictor = Predictor(model, load_tokenizer("minilm-l6"))
    for text in DEMO_TEXTS:
        answer = predictor.predict("rotten_tomatoes", [(text, None)])[0]
        click.echo(f"  {text!r}: {answer['label']} ({answer['scores'][answer['label']]:.2f})")
    click.echo(storage_report(model, result.model_dir).summary())


def main() -> None:
    import datasets

    datasets.disable_progress_bars()
    cli(prog_name="propetl")


if __name__ == "__main__":
    sys.exit(main())
