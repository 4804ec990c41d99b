"""The method's command line: storage, train, eval, predict, tasks, export.

The product's commands (serve, worker, jobs, db) extend this group in `app.cli`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .config import ConfigError, PropetlConfig


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
            raise CliError(f"{err.__class__.__name__}: {err}") from err

    return wrapper


@click.group()
@click.version_option(package_name="propetl-studio")
def cli() -> None:
    """ProPETL: one shared prototype, a binary mask per (layer, task)."""


@cli.command()
@click.option("--backbone", required=True,
              help="bundled name (minilm-l6), hub id, or a folder (a config.json is enough)")
@click.option("--petl", type=click.Choice(["adapter", "lora", "prefix"]), default="adapter")
@click.option("--sharing", type=click.Choice(["propetl", "propetl-or", "none"]), default="propetl")
@click.option("--keep", type=float, default=None, help="fraction of each mask kept")
@click.option("--bottleneck", type=int, default=64)
@click.option("--lora-r", type=int, default=32)
@click.option("--lora-alpha", type=float, default=48.0)
@click.option("--prefix-len", type=int, default=64)
@click.option("--tasks", "num_tasks", type=int, default=1, help="number of tasks")
@click.option("--model-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="a saved ProPETL model folder: add its bytes on disk")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@fail_cleanly
def storage(backbone: str, petl: str, sharing: str, keep: float | None, bottleneck: int,
            lora_r: int, lora_alpha: float, prefix_len: int, num_tasks: int,
            model_dir: str | None, as_json: bool) -> None:
    """The paper's storage accounting for a backbone shape (no weights needed)."""
    from .backbones import resolve_path
    from .storage import storage_report_for_config

    if num_tasks < 1:
        raise CliError("--tasks must be >= 1")
    try:
        config = PropetlConfig(petl=petl, sharing=sharing, keep=keep, bottleneck=bottleneck,
                               lora_r=lora_r, lora_alpha=lora_alpha, prefix_len=prefix_len)
    except ConfigError as err:
        raise CliError(str(err)) from err
    report = storage_report_for_config(resolve_path(backbone), config, num_tasks)
    if model_dir:
        from .checkpoint import file_sizes

        report.disk_bytes = file_sizes(Path(model_dir))
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.summary())


def main() -> None:
    cli(prog_name="propetl")


if __name__ == "__main__":
    sys.exit(main())
