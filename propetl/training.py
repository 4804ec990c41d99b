"""The training engine: a job config in, a ProPETL model folder and its metrics out.

Built on the HF Trainer; what is ProPETL-specific is written here: the parameter groups
(mask scores at `mask_lr`), one-task-per-batch sampling over several tasks, per-task dev
evaluation with best-checkpoint selection, small resumable checkpoints (the frozen backbone
is never copied) and a progress / cancel interface for workers.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import ConcatDataset, DataLoader
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, TrainerState
from transformers.trainer_utils import set_seed

from . import run_report
from .backbones import load_backbone_model, load_tokenizer
from .checkpoint import CheckpointError
from .config import ConfigError, TaskHeadSpec, TrainConfig
from .continual import (
    build_onto_model,
    check_same_method,
    check_task_names,
    read_base,
    save_onto,
)
from .data import MultiTaskBatchSampler, MultiTaskCollator, TaskData, load_task, tokenize_task
from .data.text2text_collate import Text2TextCollator, tokenize_text2text
from .evaluation import evaluate_generative, evaluate_task
from .families import family_for
from .masks import density
from .model import ProPETLModel
from .storage import storage_report
from .tracking import TENSORBOARD_DIR, Tracker

TRAINABLE_FILE = "trainable.safetensors"


@dataclass
class Progress:
    """One progress event: a training log line, an evaluation, the test, or the end."""

    phase: str  # "train" | "eval" | "test" | "done"
    step: int
    total_steps: int
    epoch: float
    loss: float | None = None
    learning_rates: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    eta_seconds: float | None = None
    samples_per_second: float | None = None
    tokens_per_second: float | None = None
    task_losses: dict[str, float] = field(default_factory=dict)  # train: mean loss per task

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    status: str  # "succeeded" | "cancelled"
    run_dir: Path
    model_dir: Path | None
    steps: int
    total_steps: int
    best_step: int | None
    dev_metrics: dict[str, dict[str, float]]
    test_metrics: dict[str, dict[str, float]]
    storage: dict
    tasks: dict[str, dict]
    train_seconds: float = 0.0
    samples_per_second: float | None = None
    onto: str | None = None  # the model folder the tasks were added onto
    task_best: dict[str, dict] = field(default_factory=dict)  # task -> best dev step, score

    def to_dict(self) -> dict:
        out = asdict(self)
        out["run_dir"] = str(self.run_dir)
        out["model_dir"] = str(self.model_dir) if self.model_dir else None
        return out


ProgressFn = Callable[[Progress], None]
StopFn = Callable[[], bool]


def pick_device(config: TrainConfig) -> tuple[str, str]:
    """(device, precision) for a config; a clear error for an impossible request."""
    has_cuda = torch.cuda.is_available()
    device = config.device if config.device != "auto" else ("cuda" if has_cuda else "cpu")
    if device == "cuda" and not has_cuda:
        raise ConfigError("device 'cuda' was requested but no CUDA GPU is visible here")
    precision = config.precision
    if precision == "auto":
        precision = (
            ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if device == "cuda" else "fp32"
        )
    if precision in ("bf16", "fp16") and device != "cuda":
        raise ConfigError(f"precision {precision!r} needs a CUDA GPU; use fp32 on the CPU")
    return device, precision


# ------------------------------------------------------------------ data


@dataclass
class PreparedData:
    tasks: list[TaskData]
    train: list
    dev: list
    test: list
    collator: MultiTaskCollator | Text2TextCollator
    generative: str | None = None  # None (encoder), "seq2seq" or "causal"
    tokenizer: object = None


def prepare_data(
    config: TrainConfig, tokenizer, generative: str | None = None, task_offset: int = 0
) -> PreparedData:
    """Load and tokenise the job's tasks; for a generative backbone (`generative` = "seq2seq"
    or "causal") as text-to-text with teacher forcing. `task_offset`: the model's index of the
    job's first task (tasks added onto a prototype come after its old tasks)."""
    datasets.disable_progress_bars()
    tasks = [
        load_task(name, seed=config.data_seed, max_examples=config.max_examples)
        for name in config.tasks
    ]
    names = [t.info.name for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"tasks: two tasks share a name: {names}")
    if generative is None:
        text_tasks = [t.info.name for t in tasks if t.info.generative]
        if text_tasks:
            raise ConfigError(
                f"task(s) {text_tasks} are text-to-text; they need a generative "
                f"backbone (T5 or Llama family), not {config.backbone!r}"
            )
        tokenized = [
            tokenize_task(t, tokenizer, config.max_length, task_offset + i)
            for i, t in enumerate(tasks)
        ]
        collator: MultiTaskCollator | Text2TextCollator = MultiTaskCollator(tokenizer)
    else:
        causal = generative == "causal"
        try:
            tokenized = [
                tokenize_text2text(
                    t,
                    tokenizer,
                    config.max_length,
                    config.max_target_length,
                    task_offset + i,
                    causal,
                )
                for i, t in enumerate(tasks)
            ]
        except ValueError as err:
            raise ConfigError(str(err)) from err
        collator = Text2TextCollator(tokenizer, causal)
    return PreparedData(
        tasks,
        [t["train"] for t in tokenized],
        [t["dev"] for t in tokenized],
        [t["test"] for t in tokenized],
        collator,
        generative,
        tokenizer,
    )


def head_specs(tasks: list[TaskData]) -> list[TaskHeadSpec]:
    # generative backbones have no task head: one output (unused) stands for the LM head
    return [
        TaskHeadSpec(t.info.name, 1)
        if t.info.generative
        else TaskHeadSpec(t.info.name, t.info.num_labels, t.info.label_names)
        for t in tasks
    ]


# ------------------------------------------------------------------ trainer


class ProPETLTrainer(Trainer):
    """HF Trainer with ProPETL's parameter groups, task sampling and small checkpoints."""

    def __init__(
        self,
        *args,
        job: TrainConfig,
        data: PreparedData,
        run_dir: Path,
        report: Callable[[Progress], None],
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.job, self.data, self.run_dir, self.report = job, data, run_dir, report
        self.tokens_seen = 0
        self.best = _read_json(run_dir / "best" / "best.json") or {}
        self.evals_without_gain = int(self.best.get("evals_without_gain", 0))
        self.eval_seconds = 0.0
        self.last_eval: tuple[int, dict] | None = None
        self.task_losses = run_report.TaskLossMeter()
        self.task_best = run_report.read_task_best(run_dir)

    # --- data: one task per batch
    def get_train_dataloader(self) -> DataLoader:
        sampler = MultiTaskBatchSampler(
            [len(d) for d in self.data.train],
            self.job.batch_size,
            strategy=self.job.sampling,
            temperature=self.job.temperature,
            seed=self.job.seed,
        )
        loader = DataLoader(
            ConcatDataset(self.data.train),
            batch_sampler=sampler,
            collate_fn=self.data.collator,
            num_workers=0,
        )
        return self.accelerator.prepare(loader)

    # --- optimiser: scores at mask_lr; weight decay on weights and scores only
    def create_optimizer(self, model=None):
        if self.optimizer is None:
            groups = self.model.parameter_groups()
            decay = self.job.weight_decay
            self.optimizer = torch.optim.AdamW(
                [
                    {
                        "params": groups["scores"],
                        "lr": self.job.mask_lr,
                        "weight_decay": decay,
                        "name": "mask_lr",
                    },
                    {
                        "params": groups["weights"],
                        "lr": self.job.lr,
                        "weight_decay": decay,
                        "name": "lr",
                    },
                    {
                        "params": groups["no_decay"],
                        "lr": self.job.lr,
                        "weight_decay": 0.0,
                        "name": "lr_no_decay",
                    },
                ]
            )
        return self.optimizer

    def training_step(self, model, inputs, *args, **kwargs):
        mask = inputs.get("attention_mask")
        if mask is not None:
            self.tokens_seen += int(mask.sum())
        task = run_report.batch_task(inputs, self.model.task_names)
        loss = super().training_step(model, inputs, *args, **kwargs)
        self.task_losses.add(task, loss)
        return loss

    # --- checkpoints hold only what trains (never the frozen backbone)
    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        folder = Path(output_dir or self.args.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {
            k: v.detach().cpu().contiguous() for k, v in self.model.trainable_state_dict().items()
        }
        save_file(tensors, str(folder / TRAINABLE_FILE), metadata={"format": "pt"})
        (folder / "job.json").write_text(self.job.to_json())

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None) -> None:
        load_trainable(self.model, Path(resume_from_checkpoint) / TRAINABLE_FILE)

    def _load_best_model(self) -> None:  # best model is handled by `evaluate`
        return None

    # --- evaluation: every task's dev split; best state kept aside
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        if self.last_eval is not None and self.last_eval[0] == self.state.global_step:
            return self.last_eval[1]  # already evaluated at this step
        started = time.monotonic()
        metrics = evaluate_all(self.model, self.data, self.data.dev, self.job, self.args.device)
        self.eval_seconds += time.monotonic() - started
        mean_main = sum(m["main"] for m in metrics.values()) / len(metrics)
        step = self.state.global_step
        self.report(
            Progress(
                "eval", step, self.state.max_steps, float(self.state.epoch or 0), metrics=metrics
            )
        )
        self.task_best = run_report.update_task_best(self.run_dir, self.task_best, step, metrics)
        if self.best.get("step") != step:
            if mean_main > self.best.get("score", -math.inf):
                self.best = {
                    "step": step,
                    "score": mean_main,
                    "metrics": metrics,
                    "evals_without_gain": 0,
                }
                self.evals_without_gain = 0
                best_dir = self.run_dir / "best"
                best_dir.mkdir(parents=True, exist_ok=True)
                save_file(
                    {
                        k: v.detach().cpu().contiguous()
                        for k, v in self.model.trainable_state_dict().items()
                    },
                    str(best_dir / TRAINABLE_FILE),
                    metadata={"format": "pt"},
                )
            else:
                self.evals_without_gain += 1
                self.best["evals_without_gain"] = self.evals_without_gain
            _write_json(self.run_dir / "best" / "best.json", self.best)
        patience = self.job.early_stopping_patience
        if patience and self.evals_without_gain >= patience:
            self.control.should_training_stop = True
        out = {f"{metric_key_prefix}_main": mean_main}
        for task, values in metrics.items():
            out.update({f"{metric_key_prefix}_{task}_{k}": v for k, v in values.items()})
        self.last_eval = (step, out)
        return out


def evaluate_all(
    model, data: PreparedData, splits: list, job: TrainConfig, device
) -> dict[str, dict[str, float]]:
    if data.generative:
        return {
            t.info.name: evaluate_generative(
                model,
                split,
                data.collator,
                t.info,
                data.tokenizer,
                job.eval_batch_size,
                device,
                job.num_beams,
                job.max_target_length,
            )
            for t, split in zip(data.tasks, splits, strict=True)
        }
    return {
        t.info.name: evaluate_task(model, split, data.collator, t.info, job.eval_batch_size, device)
        for t, split in zip(data.tasks, splits, strict=True)
    }


def load_trainable(model: ProPETLModel, path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        tensors = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from err
    expected = model.trainable_state_dict()
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise CheckpointError(f"{path} does not fit this model (missing {missing[:3]})")
    model.load_state_dict(tensors, strict=False)


class _Reporter(TrainerCallback):
    """Turns the Trainer's logs into Progress events; stops cleanly when asked to."""

    def __init__(self, report: Callable[[Progress], None], should_stop: StopFn | None) -> None:
        self.report, self.should_stop = report, should_stop
        self.trainer: ProPETLTrainer | None = None
        self.cancelled = False
        self.started = time.monotonic()
        self.start_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started, self.start_step = time.monotonic(), state.global_step
        self.eval_at_start = self.trainer.eval_seconds if self.trainer is not None else 0.0

    def on_step_end(self, args, state, control, **kwargs):
        if self.should_stop is not None and self.should_stop():
            self.cancelled = True
            control.should_save = True
            control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs or self.trainer is None:
            return
        # training time alone: evaluations would make the time left jump after each one
        evals = self.trainer.eval_seconds - getattr(self, "eval_at_start", 0.0)
        elapsed = max(time.monotonic() - self.started - evals, 1e-6)
        done = max(state.global_step - self.start_step, 1)
        rates = {
            g.get("name", str(i)): g["lr"]
            for i, g in enumerate(self.trainer.optimizer.param_groups)
        }
        rates.pop("lr_no_decay", None)
        self.report(
            Progress(
                "train",
                state.global_step,
                state.max_steps,
                float(state.epoch or 0),
                loss=float(logs["loss"]),
                learning_rates=rates,
                eta_seconds=elapsed / done * (state.max_steps - state.global_step),
                samples_per_second=done * args.per_device_train_batch_size / elapsed,
                tokens_per_second=self.trainer.tokens_seen / elapsed,
                task_losses=self.trainer.task_losses.pop(),
            )
        )


class _Bar(TrainerCallback):
    """A tqdm bar on stderr with the loss and the latest dev metric (stdout stays clean)."""

    def __init__(self) -> None:
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=state.max_steps,
            initial=state.global_step,
            desc="train",
            file=sys.stderr,
            dynamic_ncols=True,
        )

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.bar is not None and metrics and "eval_main" in metrics:
            self.bar.write(
                f"step {state.global_step}: dev main metric {metrics['eval_main']:.4f}",
                file=sys.stderr,
            )

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------ the engine


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    resume: bool = True,
    show_progress: bool = False,
    onto: str | Path | None = None,
    replace: Sequence[str] = (),
) -> TrainResult:
    """Train a ProPETL model for `config` in `run_dir` (resuming from its last checkpoint).

    `onto`: a saved model folder to add the job's tasks onto (see `propetl.continual`): its
    prototype and old tasks are frozen, only the new tasks train, and `run_dir/model` holds
    the old files copied byte for byte plus the new tasks. `replace`: old tasks to retrain."""
    config.validate()
    base = read_base(onto) if onto is not None else None
    if base is not None:
        check_same_method(base, config)
    elif replace:
        raise ConfigError("replace names tasks of a prototype: give the model folder (onto)")
    # every refusal comes before anything is written in the run folder
    check_names(config)
    run_dir = Path(run_dir)
    _check_resumable(run_dir, config, resume)
    device, precision = pick_device(config)
    set_seed(config.seed)
    tokenizer = load_tokenizer(config.backbone)
    backbone = load_backbone_model(config.backbone)
    limit = max_tokens(backbone.config)
    if limit and config.max_length > limit:
        raise ConfigError(
            f"max_length {config.max_length} is more than backbone "
            f"{config.backbone!r} supports ({limit} tokens)"
        )
    family = family_for(backbone.config.model_type)
    kept = [t for t in base.tasks if t not in replace] if base is not None else []
    data = prepare_data(
        config, tokenizer, family.kind if family.generative else None, task_offset=len(kept)
    )
    if base is not None:
        check_task_names(base.tasks, [t.info.name for t in data.tasks], replace)

    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        clear_run(run_dir)
    (run_dir / "config.json").write_text(config.to_json())
    log_path = run_dir / "metrics.jsonl"
    tracker = Tracker(config, run_dir)  # TensorBoard files; MLflow when configured

    def report(progress: Progress) -> None:
        with log_path.open("a") as handle:
            handle.write(json.dumps(progress.to_dict()) + "\n")
        tracker(progress)
        if on_progress is not None:
            on_progress(progress)

    if base is not None:
        _write_json(
            run_dir / "onto.json",
            {"base": str(base.directory), "base_tasks": base.tasks, "replace": list(replace)},
        )
        model = build_onto_model(base, backbone, head_specs(data.tasks), replace)
    else:
        model = ProPETLModel(
            backbone, config.propetl, head_specs(data.tasks), backbone_name=config.backbone
        )
    model.label_smoothing = config.label_smoothing
    batches_per_epoch = len(
        MultiTaskBatchSampler(
            [len(d) for d in data.train],
            config.batch_size,
            strategy=config.sampling,
            temperature=config.temperature,
            seed=config.seed,
        )
    )
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * batches_per_epoch))
    eval_every = config.eval_every or max(1, total_steps // 4)
    save_every = config.save_every or eval_every
    args = TrainingArguments(
        output_dir=str(run_dir / "checkpoints"),
        max_steps=total_steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.lr,
        weight_decay=config.weight_decay,
        warmup_steps=math.ceil(config.warmup_ratio * total_steps),
        lr_scheduler_type="linear",
        max_grad_norm=config.grad_clip or 1e9,
        logging_steps=max(1, min(10, total_steps // 50)),
        eval_strategy="steps",
        eval_steps=eval_every,
        save_strategy="steps",
        save_steps=save_every,
        save_total_limit=2,
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        remove_unused_columns=False,
        disable_tqdm=True,
        use_cpu=device == "cpu",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        dataloader_num_workers=0,
        save_only_model=False,
        log_level="warning",
    )
    reporter = _Reporter(report, should_stop)
    trainer = ProPETLTrainer(
        model=model,
        args=args,
        train_dataset=data.train[0],
        eval_dataset=data.dev[0],
        data_collator=data.collator,
        callbacks=[reporter],
        job=config,
        data=data,
        run_dir=run_dir,
        report=report,
    )
    reporter.trainer = trainer
    trainer.remove_callback(PrinterCallback)
    if show_progress:
        trainer.add_callback(_Bar())
    last = last_complete_checkpoint(run_dir / "checkpoints") if resume else None
    started = time.monotonic()
    if last is not None and checkpoint_step(last) >= total_steps:
        # every planned step is done: the Trainer would still take one more step when the
        # last one falls inside an epoch, so the checkpoint is only loaded, never trained on
        trainer._load_from_checkpoint(last)
        trainer.state = TrainerState.load_from_json(str(Path(last) / "trainer_state.json"))
        reporter.start_step = trainer.state.global_step  # no step trained in this run
    else:
        trainer.train(resume_from_checkpoint=last)
    seconds = time.monotonic() - started - trainer.eval_seconds  # training time alone
    step = trainer.state.global_step
    storage = storage_report(model).to_dict()
    if reporter.cancelled:
        report(Progress("done", step, total_steps, float(trainer.state.epoch or 0)))
        return TrainResult(
            "cancelled",
            run_dir,
            None,
            step,
            total_steps,
            trainer.best.get("step"),
            trainer.best.get("metrics", {}),
            {},
            storage,
            {},
            seconds,
        )
    trainer.evaluate()  # the final step's dev metrics (no-op if just evaluated)
    best_file = run_dir / "best" / TRAINABLE_FILE
    if best_file.is_file():
        load_trainable(model, best_file)
    model.to(device)
    model.eval()
    kept: run_report.Kept = {}
    if data.generative:
        test = evaluate_all(model, data, data.test, config, device)
    else:  # the same metrics, and each example's probabilities for the run page
        test, kept = run_report.test_with_predictions(model, data, config, device)
    run_report.write_predictions(kept, data, run_dir)
    report(Progress("test", step, total_steps, float(trainer.state.epoch or 0), metrics=test))
    if base is not None:
        model_dir = save_onto(model, base, [t.info.name for t in data.tasks], run_dir / "model")
    else:
        model_dir = _save_final(model, run_dir)
    storage = storage_report(model, model_dir).to_dict()
    tasks = _task_summaries(model, data, storage)
    samples = (step - reporter.start_step) * config.batch_size
    result = TrainResult(
        "succeeded",
        run_dir,
        model_dir,
        step,
        total_steps,
        trainer.best.get("step"),
        trainer.best.get("metrics", {}),
        test,
        storage,
        tasks,
        seconds,
        samples / seconds if seconds > 0 else None,
        str(base.directory) if base is not None else None,
        trainer.task_best,
    )
    _write_json(run_dir / "result.json", result.to_dict())
    report(Progress("done", step, total_steps, float(trainer.state.epoch or 0), metrics=test))
    return result


def max_tokens(backbone_config) -> int | None:
    """Longest input the backbone's position embeddings allow (RoBERTa reserves 2 + padding)."""
    positions = getattr(backbone_config, "max_position_embeddings", None)
    if not positions:
        return None
    offset = 2 if backbone_config.model_type in ("roberta", "xlm-roberta", "camembert") else 0
    return positions - offset


def checkpoint_step(checkpoint: str | Path) -> int:
    """The global step a checkpoint folder (`checkpoint-<step>`) was saved at."""
    return int(Path(checkpoint).name.split("-")[-1])


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest checkpoint that was fully written (the Trainer writes its state file last,
    so a process killed while saving leaves a folder without it, which is skipped)."""
    if not folder.is_dir():
        return None
    complete = [
        p
        for p in folder.glob("checkpoint-*")
        if p.name.split("-")[-1].isdigit()
        and (p / "trainer_state.json").is_file()
        and (p / TRAINABLE_FILE).is_file()
    ]
    if not complete:
        return None
    return str(max(complete, key=lambda p: int(p.name.split("-")[-1])))


def check_names(config: TrainConfig) -> None:
    """Refuse an unknown backbone and every unknown task name at once (one `ConfigError`
    naming each), before anything is loaded."""
    from .backbones import BackboneError, check_backbone
    from .data.catalog import unknown_tasks_message

    problems = []
    try:
        check_backbone(config.backbone)
    except BackboneError as err:
        problems.append(str(err))
    unknown = unknown_tasks_message(config.tasks)
    if unknown:
        problems.append(unknown)
    if problems:
        raise ConfigError(*problems)


#: What the engine writes in a run folder (besides config.json), all removed by a fresh start.
RUN_ARTIFACTS = (
    "checkpoints",
    "best",
    "model",
    "predictions",
    TENSORBOARD_DIR,
    "metrics.jsonl",
    "result.json",
    "onto.json",
    "mlflow_run_id",
    "result.tmp",
    "onto.tmp",
)


def clear_run(run_dir: Path) -> None:
    """Remove every artifact of an earlier run in `run_dir` (only the engine's own names:
    other files of the folder stay)."""
    staging = [p.name for p in run_dir.glob(".model-*")]
    for name in (*RUN_ARTIFACTS, *staging):
        target = run_dir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def _check_resumable(run_dir: Path, config: TrainConfig, resume: bool) -> None:
    """Refuse to resume a run folder that holds a run of another config (reads only)."""
    previous = run_dir / "config.json"
    if not resume or not previous.is_file():
        return
    try:
        before = TrainConfig.from_saved_json(previous.read_text())
    except (ConfigError, ValueError, TypeError):
        before = None
    if before is not None and before != config:
        raise ConfigError(
            f"{run_dir} holds a run of another config ({config_changes(before, config)}); "
            "resume with the same config, or start afresh (resume=False / --fresh)"
        )


def config_changes(before: TrainConfig, after: TrainConfig) -> str:
    """The fields two configs differ in, as "field: saved X, given Y" (nested as propetl.x)."""

    def flat(config: TrainConfig) -> dict[str, object]:
        data = config.to_dict()
        return {
            **{k: v for k, v in data.items() if k != "propetl"},
            **{f"propetl.{k}": v for k, v in data["propetl"].items()},
        }

    old, new = flat(before), flat(after)
    return "; ".join(
        f"{k}: saved {old.get(k)!r}, given {new.get(k)!r}"
        for k in sorted(old.keys() | new.keys())
        if old.get(k) != new.get(k)
    )


def _save_final(model: ProPETLModel, run_dir: Path) -> Path:
    """Write the final model folder atomically (temporary folder, then rename)."""
    final = run_dir / "model"
    staging = run_dir / f".model-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    model.save_pretrained(staging)
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    return final


def _task_summaries(model: ProPETLModel, data: PreparedData, storage: dict) -> dict[str, dict]:
    out = {}
    disk = storage.get("disk_bytes", {})
    for task in data.tasks:
        name = task.info.name
        layer_density: list[float] = []
        with torch.no_grad():
            for bank in model.banks.values():
                masks = bank.masks(name)
                if masks:
                    stacked = torch.stack([density(m) for m in masks.values()])
                    layer_density = stacked.mean(dim=0).tolist()
                    break
        out[name] = {
            "info": task.info.to_dict(),
            "mask_bytes": disk.get(f"task:{name}:masks", 0),
            "mask_bits": storage.get("mask_bits_per_task", 0),
            "density": layer_density,
            "sizes": {split: len(task.splits[split]) for split in ("train", "dev", "test")},
        }
    return out


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)
