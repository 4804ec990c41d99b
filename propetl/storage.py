"""Storage accounting, the paper's way and on disk.

Paper: a ProPETL model stores `|theta_proto| + mask_bits / 32` fp32-parameter equivalents
(task heads not counted, reported apart). The baseline is the ordinary PETL module of the same
shape in every layer, per task.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .checkpoint import file_sizes
from .config import PropetlConfig, TaskHeadSpec


@dataclass
class StorageReport:
    petl: str
    sharing: str
    keep: float
    num_layers: int
    num_tasks: int
    backbone_params: int
    prototype_params: int
    mask_bits_per_task: int
    shared_mask_bits: int
    task_own_params: int  # fp32 numbers each task owns outright (sharing 'none')
    head_params_per_task: dict[str, int]
    propetl_fp32_eq: float  # all tasks, heads excluded
    per_task_fp32_eq: float  # the marginal cost of one more task, heads excluded
    baseline_fp32_eq: float  # ordinary per-layer modules of the same shape, all tasks
    ratio_to_baseline: float
    percent_of_backbone: float
    baseline_percent_of_backbone: float
    disk_bytes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"PETL {self.petl} (sharing {self.sharing}, keep {self.keep:g}), "
            f"{self.num_layers} layers, {self.num_tasks} task(s)",
            f"  backbone parameters        {self.backbone_params:>14,}",
            f"  shared prototype (fp32)    {self.prototype_params:>14,}",
            f"  mask bits per task         {self.mask_bits_per_task:>14,}"
            f"  ({self.mask_bits_per_task / 8 / 1024:.1f} KiB packed)",
            f"  ProPETL total (fp32-eq)    {self.propetl_fp32_eq:>14,.0f}"
            f"  = {self.percent_of_backbone:.3f} % of the backbone",
            f"  one more task (fp32-eq)    {self.per_task_fp32_eq:>14,.0f}",
            f"  ordinary PETL (fp32)       {self.baseline_fp32_eq:>14,.0f}"
            f"  = {self.baseline_percent_of_backbone:.3f} % of the backbone",
            f"  ProPETL / ordinary         {100 * self.ratio_to_baseline:>13.1f} %",
            f"  task heads (not counted)   {sum(self.head_params_per_task.values()):>14,}",
        ]
        if self.disk_bytes:
            lines.append("  on disk (bytes):")
            lines += [f"    {name:<32} {size:>10,}" for name, size in self.disk_bytes.items()]
        return "\n".join(lines)


def storage_report(model, directory: str | Path | None = None) -> StorageReport:
    """Account for a built ProPETLModel (and its saved folder, if given)."""
    banks = list(model.banks.values())
    num_tasks = max(len(model.task_names), 1)
    proto = sum(b.prototype_numel() for b in banks)
    bits = sum(b.mask_bits_per_task() for b in banks)
    shared_bits = sum(b.shared_mask_bits() for b in banks)
    own = sum(b.task_param_numel() for b in banks)
    per_task = bits / 32 + own
    total = proto + shared_bits / 32 + num_tasks * per_task
    baseline = num_tasks * model.num_layers * sum(b.module_numel() for b in banks)
    backbone = sum(p.numel() for p in model.backbone.parameters())
    heads = {name: sum(p.numel() for p in head.parameters()) for name, head in model.heads.items()}
    return StorageReport(
        petl=model.config.petl,
        sharing=model.config.sharing,
        keep=model.config.keep_ratio,
        num_layers=model.num_layers,
        num_tasks=num_tasks,
        backbone_params=backbone,
        prototype_params=proto,
        mask_bits_per_task=bits,
        shared_mask_bits=shared_bits,
        task_own_params=own,
        head_params_per_task=heads,
        propetl_fp32_eq=total,
        per_task_fp32_eq=per_task,
        baseline_fp32_eq=baseline,
        ratio_to_baseline=total / baseline if baseline else float("nan"),
        percent_of_backbone=100 * total / backbone,
        baseline_percent_of_backbone=100 * baseline / backbone,
        disk_bytes=file_sizes(Path(directory)) if directory else {},
    )


def storage_report_for_config(
    backbone: str, config: PropetlConfig, num_tasks: int = 1
) -> StorageReport:
    """Account from a backbone's config alone (no weights: built on the meta device);
    `backbone` is any name training accepts (tiny-<family>, bundled, a folder, a hub name)."""
    from .backbones import backbone_config
    from .model import ProPETLModel, auto_class

    shape = backbone_config(backbone)
    with torch.device("meta"):
        model = ProPETLModel(
            auto_class(shape.model_type).from_config(shape),
            config,
            [TaskHeadSpec(f"task{i}", 2) for i in range(num_tasks)],
            backbone_name=backbone,
        )
    return storage_report(model)
