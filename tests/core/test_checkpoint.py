import json
import math

import pytest
import torch

from propetl import ProPETLModel, TaskHeadSpec
from propetl.checkpoint import CheckpointError, delete_task, load_task, saved_tasks
from propetl.tiny import TINY_FAMILIES, tiny_backbone

from .helpers import batch, build, nudge

TASKS = (TaskHeadSpec("a", 2, ("neg", "pos")), TaskHeadSpec("b", 3), TaskHeadSpec("c", 1))


def reload(model: ProPETLModel, path, family: str = "bert") -> ProPETLModel:
    model.save_pretrained(path)
    return ProPETLModel.from_pretrained(path, backbone=tiny_backbone(family))


@pytest.mark.parametrize("family", TINY_FAMILIES)
@pytest.mark.parametrize("petl", ["adapter", "lora", "prefix"])
@pytest.mark.parametrize("sharing", ["propetl", "propetl-or", "none"])
def test_save_then_load_gives_identical_logits(tmp_path, family, petl, sharing):
    model = build(family, petl, sharing, tasks=TASKS)
    nudge(model)
    model.eval()
    ids, mask = batch()
    task_ids = torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        before = model(ids, mask, task_ids=task_ids).logits
    loaded = reload(model, tmp_path, family)
    assert loaded.task_names == ["a", "b", "c"]
    assert loaded.task_specs["a"].label_names == ("neg", "pos")
    with torch.no_grad():
        after = loaded(ids, mask, task_ids=task_ids).logits
    torch.testing.assert_close(after, before)


def test_mask_file_is_about_one_bit_per_entry(tmp_path):
    model = build(tasks=TASKS[:1], bottleneck=64)
    model.save_pretrained(tmp_path)
    bits = model.banks["adapter"].mask_bits_per_task()
    assert bits == 2 * 2 * 64 * 32
    size = (tmp_path / "tasks" / "a" / "masks.safetensors").stat().st_size
    assert math.ceil(bits / 8) <= size <= math.ceil(bits / 8) + 400


def test_a_task_can_be_added_and_deleted_without_touching_others(tmp_path):
    model = build(tasks=TASKS)
    nudge(model)
    model.save_pretrained(tmp_path)
    prototype_bytes = (tmp_path / "prototype.safetensors").read_bytes()
    delete_task(tmp_path, "b")
    assert saved_tasks(tmp_path) == ["a", "c"]
    assert (tmp_path / "prototype.safetensors").read_bytes() == prototype_bytes
    loaded = ProPETLModel.from_pretrained(tmp_path, backbone=tiny_backbone("bert"), tasks=["a"])
    assert loaded.task_names == ["a"]
    load_task(loaded, tmp_path, "c")
    ids, mask = batch()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(ids, mask, task="c").logits, model(ids, mask, task="c").logits
        )


def test_truncated_or_tampered_files_are_refused_clearly(tmp_path):
    model = build(tasks=TASKS[:1])
    model.save_pretrained(tmp_path)
    masks = tmp_path / "tasks" / "a" / "masks.safetensors"
    masks.write_bytes(masks.read_bytes()[:-50])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        ProPETLModel.from_pretrained(tmp_path, backbone=tiny_backbone("bert"))
    model.save_pretrained(tmp_path)
    config = tmp_path / "propetl_config.json"
    data = json.loads(config.read_text())
    data["format"] = "pickle"
    config.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="not a ProPETL model folder"):
        ProPETLModel.from_pretrained(tmp_path, backbone=tiny_backbone("bert"))


def test_loading_into_a_backbone_of_another_shape_is_refused(tmp_path):
    build(tasks=TASKS[:1]).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="trained for 2 layers"):
        ProPETLModel.from_pretrained(tmp_path, backbone=tiny_backbone("bert", layers=3))


def test_missing_task_is_named(tmp_path):
    build(tasks=TASKS[:1]).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"no task 'zz' .*have: a"):
        ProPETLModel.from_pretrained(tmp_path, backbone=tiny_backbone("bert"), tasks=["zz"])
