"""The storage estimate shown before launch: ProPETL against the ordinary module."""

from __future__ import annotations

from functools import lru_cache

from propetl.config import PropetlConfig
from propetl.storage import StorageReport, storage_report_for_config

from ..settings import get_settings
from .common import fmt_bytes


@lru_cache(maxsize=8)
def _config_path(backbone: str) -> str:
    """A folder or hub id with the backbone's config (tiny test models get one written)."""
    if backbone.startswith("tiny-"):
        from propetl.tiny import tiny_config

        folder = get_settings().data_dir / "cache" / backbone
        if not (folder / "config.json").is_file():
            tiny_config(backbone[5:], vocab_size=30522).save_pretrained(folder)
        return str(folder)
    from propetl.backbones import resolve_path

    from ..specs import check_named_backbone

    check_named_backbone(backbone)  # a path was allowed by `backbone_problem` (`storage`)
    return resolve_path(backbone)


def estimate(backbone: str, config: PropetlConfig, num_tasks: int) -> StorageReport:
    return storage_report_for_config(_config_path(backbone), config, max(1, num_tasks))


def estimate_md(report: StorageReport) -> str:
    """A short table: prototype, masks per task, totals, and the ordinary module."""
    n = report.num_tasks
    kind = {"adapter": "adapters", "lora": "LoRA modules", "prefix": "prefixes"}[report.petl]
    mask_bytes = report.mask_bits_per_task / 8
    rows = [
        (
            "Shared prototype (fp32)",
            f"{report.prototype_params:,} params",
            fmt_bytes(4 * report.prototype_params),
        ),
        ("Masks, per task", f"{report.mask_bits_per_task:,} bits", fmt_bytes(mask_bytes)),
        (
            f"**ProPETL, {n} task{'s' * (n > 1)}**",
            f"{report.propetl_fp32_eq:,.0f} fp32-eq",
            f"**{fmt_bytes(4 * report.propetl_fp32_eq)}**",
        ),
        (
            f"Ordinary {kind}, {n} task{'s' * (n > 1)}",
            f"{report.baseline_fp32_eq:,.0f} params",
            fmt_bytes(4 * report.baseline_fp32_eq),
        ),
    ]
    table = "| | size | on disk |\n|---|---:|---:|\n" + "\n".join(
        f"| {a} | {b} | {c} |" for a, b, c in rows
    )
    ratio = 100 * report.ratio_to_baseline
    return (
        f"{table}\n\n**ProPETL needs {ratio:.1f}% of the ordinary storage** "
        f"({report.percent_of_backbone:.3f}% of the backbone's "
        f"{report.backbone_params:,} parameters). Each extra task adds "
        f"{fmt_bytes(mask_bytes)} of masks, plus its small head."
    )


def safe_estimate_md(backbone: str, config: dict, num_tasks: int) -> str:
    """The estimate, or why it cannot be computed yet."""
    try:
        report = estimate(backbone, PropetlConfig.from_dict(config), num_tasks)
    except Exception as err:  # a half-typed form: say what is wrong
        return f"*No estimate yet: {err}*"
    return estimate_md(report)
