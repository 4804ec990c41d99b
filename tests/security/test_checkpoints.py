"""Model folders: only safetensors and JSON are read; tampering is refused with CheckpointError."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from propetl import ProPETLModel, TaskHeadSpec
from propetl.checkpoint import CheckpointError, delete_task, load_model
from propetl.tiny import tiny_backbone
from tests.core.helpers import build

REPO = Path(__file__).resolve().parents[2]
MARKER = Path("/tmp/propetl-pickle-ran")


class _Payload:
    """Unpickling this would create MARKER: proof that a pickle was executed."""

    def __reduce__(self):
        return (Path.touch, (MARKER,))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "m"
    build(tasks=(TaskHeadSpec("a", 2, ("neg", "pos")),)).save_pretrained(folder)
    return folder


@pytest.fixture
def model_dir(saved, tmp_path):
    target = tmp_path / "m"
    shutil.copytree(saved, target)
    return target


def _load(folder: Path):
    return load_model(folder, backbone=tiny_backbone("bert"))


TAMPERING = {
    "config: not JSON": lambda d: (d / "propetl_config.json").write_text("{not json"),
    "config: not an object": lambda d: (d / "propetl_config.json").write_text("[1, 2]"),
    "config: bad field": lambda d: _edit(
        d / "propetl_config.json", lambda m: m["config"].update(bottleneck="many")
    ),
    "config: unknown field": lambda d: _edit(
        d / "propetl_config.json", lambda m: m["config"].update(evil=1)
    ),
    "config: other format": lambda d: _edit(
        d / "propetl_config.json", lambda m: m.update(format="pickle")
    ),
    "config: binary": lambda d: (d / "propetl_config.json").write_bytes(b"\xff\xfe\x00"),
    "prototype: truncated": lambda d: _truncate(d / "prototype.safetensors"),
    "prototype: empty": lambda d: (d / "prototype.safetensors").write_bytes(b""),
    "prototype: pickle": lambda d: (d / "prototype.safetensors").write_bytes(
        pickle.dumps(_Payload())
    ),
    "prototype: torch.save": lambda d: torch.save(
        {"x": torch.zeros(2), "p": _Payload()}, d / "prototype.safetensors"
    ),
    "prototype: wrong shapes": lambda d: _reshape(d / "prototype.safetensors"),
    "masks: truncated": lambda d: _truncate(d / "tasks/a/masks.safetensors"),
    "masks: pickle": lambda d: (d / "tasks/a/masks.safetensors").write_bytes(
        pickle.dumps(_Payload())
    ),
    "masks: wrong shapes": lambda d: _reshape(d / "tasks/a/masks.safetensors"),
    "masks: bad shape metadata": lambda d: _remeta(d / "tasks/a/masks.safetensors", "[oops"),
    "masks: shape metadata not a list": lambda d: _remeta(d / "tasks/a/masks.safetensors", "7"),
    "head: wrong shapes": lambda d: _reshape(d / "tasks/a/head.safetensors"),
    "head: missing": lambda d: (d / "tasks/a/head.safetensors").unlink(),
    "task.json: bad": lambda d: (d / "tasks/a/task.json").write_text('{"task": {"name": 5}}'),
    "task.json: renamed task": lambda d: _edit(
        d / "tasks/a/task.json", lambda m: m["task"].update(name="b")
    ),
    "task.json: labels mismatch": lambda d: _edit(
        d / "tasks/a/task.json", lambda m: m["task"].update(num_labels=3)
    ),
    "head: symlink outside": lambda d: _link(d / "tasks/a/head.safetensors"),
    "config: symlink outside": lambda d: _link(d / "propetl_config.json"),
    "task folder: symlink outside": lambda d: _link(d / "tasks/a"),
}


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _tensors(path: Path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}, handle.metadata() or {}  # noqa: SIM118


def _reshape(path: Path) -> None:
    tensors, metadata = _tensors(path)
    save_file(
        {k: torch.zeros(v.numel() + 3, dtype=v.dtype) for k, v in tensors.items()},
        str(path),
        metadata=metadata,
    )


def _remeta(path: Path, shape: str) -> None:
    tensors, metadata = _tensors(path)
    save_file(
        tensors,
        str(path),
        metadata={k: (shape if k != "format" else v) for k, v in metadata.items()},
    )


def _link(path: Path) -> None:
    """Replace `path` by a link to an identical copy outside the model folder."""
    outside = path.parent.parent.parent.parent / f"outside-{path.name}"
    shutil.move(str(path), str(outside))
    path.symlink_to(outside.resolve())


class TestTamperedCheckpoints:
    """Each kind of damage is refused with a CheckpointError naming the file; no pickle runs."""

    @pytest.mark.parametrize("damage", sorted(TAMPERING))
    def test_refused(self, model_dir, damage):
        MARKER.unlink(missing_ok=True)
        TAMPERING[damage](model_dir)
        with pytest.raises(CheckpointError) as info:
            _load(model_dir)
        assert str(model_dir) in str(info.value) or "task name" in str(info.value)
        assert not MARKER.exists(), "a pickle was executed"

    def test_intact_copy_loads(self, model_dir):
        assert _load(model_dir).task_names == ["a"]

    @pytest.mark.parametrize("task", ["../a", "..", ".", "a/../../x", "", ".hidden"])
    def test_task_names_cannot_leave_the_folder(self, model_dir, task):
        model = ProPETLModel.from_pretrained(model_dir, backbone=tiny_backbone("bert"), tasks=[])
        from propetl.checkpoint import load_task

        with pytest.raises(CheckpointError):
            load_task(model, model_dir, task)
        with pytest.raises(CheckpointError):
            delete_task(model_dir, task)
        assert (model_dir / "tasks" / "a" / "task.json").is_file()

    def test_manifest_task_list_of_any_type(self, model_dir):
        _edit(model_dir / "propetl_config.json", lambda m: m.update(tasks=5))
        assert _load(model_dir).task_names == ["a"]


class TestNoUnsafeLoading:
    """No code path unpickles a file or trusts remote code."""

    def sources(self):
        return [p for d in ("app", "propetl", "worker") for p in (REPO / d).rglob("*.py")]

    def test_no_torch_load_pickle_or_remote_code(self):
        pattern = re.compile(
            r"torch\.load\(|pickle\.loads?\(|trust_remote_code\s*=\s*True|"
            r"allow_pickle\s*=\s*True|joblib\.load|dill\."
        )
        found = [
            f"{p}: {m.group()}" for p in self.sources() for m in pattern.finditer(p.read_text())
        ]
        assert found == []

    def test_transformers_loads_trainer_state_with_weights_only(self):
        """The HF Trainer's own optimizer.pt / rng_state.pth (resume) use weights_only=True."""
        import transformers.trainer as trainer

        source = Path(trainer.__file__).read_text()
        loads = re.findall(r"torch\.load\((?:[^()]|\([^()]*\))*\)", source)
        assert loads and all("weights_only=True" in call for call in loads), loads

    def test_zip_bundles_skip_links(self, tmp_path):
        from app.bundles import _zip

        root = tmp_path / "model"
        root.mkdir()
        (root / "ok.json").write_text("{}")
        secret = tmp_path / "secret.txt"
        secret.write_text("nope")
        (root / "leak.json").symlink_to(secret)
        import zipfile

        with zipfile.ZipFile(_zip([(root, "m")], tmp_path / "out.zip")) as archive:
            assert archive.namelist() == ["m/ok.json"]
