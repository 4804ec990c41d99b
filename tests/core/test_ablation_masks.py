"""Frozen random masks (`masks="random"`): the paper's ablation against learned masks."""

import math

import pytest
import torch

from propetl.config import ConfigError, PropetlConfig, TaskHeadSpec, TrainConfig
from propetl.model import ProPETLModel
from propetl.tiny import tiny_backbone

from .helpers import SMALL, batch, build, nudge

KINDS = ["adapter", "lora", "prefix"]
SHARINGS = ["propetl", "propetl-or"]


def all_masks(model: ProPETLModel, task: str) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return {
            f"{bank_name}.{name}": mask.clone()
            for bank_name, bank in model.banks.items()
            for name, mask in bank.masks(task).items()
        }


@pytest.mark.parametrize("sharing", SHARINGS)
@pytest.mark.parametrize("petl", KINDS)
def test_random_masks_keep_exactly_the_learned_count_and_nothing_trains_them(petl, sharing):
    keep = 0.3
    model = build(petl=petl, sharing=sharing, keep=keep, masks="random")
    learned = build(petl=petl, sharing=sharing, keep=keep)
    assert model.parameter_groups()["scores"] == []
    assert not any(".scores." in name for name, _ in model.named_parameters())
    for bank_name, bank in model.banks.items():
        own = bank.tasks["a"]()
        reference = learned.banks[bank_name].tasks["a"]()
        for name, mask in own.items():
            assert not mask.requires_grad
            assert set(mask.unique().tolist()) <= {0.0, 1.0}
            rows = mask.reshape(mask.shape[0], -1)
            expected = reference[name].reshape(rows.shape).sum(1)
            assert torch.equal(rows.sum(1), expected)
            assert int(expected[0]) == math.ceil(keep * rows.shape[1])
        if sharing == "propetl":
            first = next(iter(own.values()))
            assert not torch.equal(first[0], first[1]), "every layer draws its own mask"


def test_random_masks_are_seeded_and_differ_between_tasks():
    two = (TaskHeadSpec("a", 2), TaskHeadSpec("b", 2))
    one, again = build(tasks=two, masks="random"), build(tasks=two, masks="random")
    other_seed = build(tasks=two, masks="random", seed=7)
    masks = all_masks(one, "a")
    assert all(torch.equal(v, all_masks(again, "a")[k]) for k, v in masks.items())
    assert any(not torch.equal(v, all_masks(other_seed, "a")[k]) for k, v in masks.items())
    assert any(not torch.equal(v, all_masks(one, "b")[k]) for k, v in masks.items())


@pytest.mark.parametrize("sharing", SHARINGS)
def test_training_steps_move_the_prototype_but_never_the_masks(sharing):
    model = build(petl="lora", sharing=sharing, keep=0.5, masks="random")
    nudge(model)  # LoRA's B starts at zero: give the A gradient something to flow through
    before = all_masks(model, "a")
    proto_before = {
        k: v.detach().clone()
        for k, v in model.banks.items()
        for k, v in v.stored_prototype().items()
    }
    groups = model.parameter_groups()
    optimizer = torch.optim.AdamW(
        [{"params": groups["weights"]}, {"params": groups["no_decay"]}], lr=1e-2
    )
    ids, mask = batch()
    labels = torch.tensor([0, 1, 0, 1, 1, 0])
    model.train()
    for _ in range(3):
        optimizer.zero_grad()
        model(ids, mask, labels=labels).loss.backward()
        optimizer.step()
    after = all_masks(model, "a")
    assert all(torch.equal(before[k], after[k]) for k in before)
    proto_after = {
        k: v for bank in model.banks.values() for k, v in bank.stored_prototype().items()
    }
    assert any(not torch.allclose(proto_before[k], proto_after[k]) for k in proto_before)


@pytest.mark.parametrize("sharing", SHARINGS)
@pytest.mark.parametrize("petl", KINDS)
def test_save_load_round_trip_keeps_the_random_masks_as_bits(petl, sharing, tmp_path):
    model = build(petl=petl, sharing=sharing, keep=0.3, masks="random")
    nudge(model)
    model.eval()
    ids, mask = batch()
    expected = model(ids, mask).logits
    model.save_pretrained(tmp_path)
    loaded = ProPETLModel.from_pretrained(tmp_path, backbone=tiny_backbone("bert"))
    assert loaded.config.masks == "random"
    masks, again = all_masks(model, "a"), all_masks(loaded, "a")
    assert all(torch.equal(masks[k], again[k]) for k in masks)
    torch.testing.assert_close(loaded(ids, mask).logits, expected)
    per_task = (tmp_path / "tasks" / "a" / "masks.safetensors").stat().st_size
    bits = sum(bank.mask_bits_per_task() for bank in loaded.banks.values())
    assert per_task < bits / 8 + 2_000, "masks stored as bits, not floats"


def test_engine_trains_with_random_masks_and_leaves_them_as_drawn(tmp_path):
    from propetl.training import train

    config = PropetlConfig(petl="adapter", keep=0.3, masks="random", **SMALL)
    job = TrainConfig(
        backbone="tiny-bert",
        tasks=["rotten_tomatoes"],
        max_examples=48,
        batch_size=8,
        max_steps=6,
        eval_every=6,
        lr=1e-2,
        max_length=32,
        propetl=config,
    )
    result = train(job, tmp_path, resume=False)
    assert result.status == "succeeded" and result.steps == 6
    trained = ProPETLModel.from_pretrained(result.model_dir)
    fresh = ProPETLModel(tiny_backbone("bert"), config, [TaskHeadSpec("rotten_tomatoes", 2)])
    drawn, kept = all_masks(fresh, "rotten_tomatoes"), all_masks(trained, "rotten_tomatoes")
    assert all(torch.equal(drawn[k], kept[k]) for k in drawn)
    start = fresh.banks["adapter"].stored_prototype()["down"]
    end = trained.banks["adapter"].stored_prototype()["down"]
    assert not torch.allclose(start, end), "the prototype trained"


def test_random_masks_need_a_masked_sharing_mode():
    with pytest.raises(ConfigError, match="masks 'random' needs sharing 'propetl' or 'propetl-or'"):
        PropetlConfig(sharing="none", masks="random")
    with pytest.raises(ConfigError, match="masks must be one of"):
        PropetlConfig(masks="frozen")
    config = PropetlConfig(masks="random", keep=0.1)
    assert PropetlConfig.from_dict(config.to_dict()).masks == "random"
    assert PropetlConfig.from_dict({"petl": "lora"}).masks == "learned"


def test_cli_flag_reaches_the_job_config():
    from propetl.cli import build_train_config

    config = build_train_config(None, {"masks": "random", "keep": 0.1})
    assert config.propetl.masks == "random" and config.propetl.keep == 0.1
    assert build_train_config(None, {}).propetl.masks == "learned"


def test_launch_form_and_job_spec_carry_the_option():
    from app.specs import JobSpec
    from app.ui import forms

    spec = {s.key: s for s in forms.config_fields()}["propetl.masks"]
    assert spec.kind == "choice" and spec.choices == ("learned", "random")
    assert spec.default == "learned"
    job = JobSpec.model_validate({"config": {"propetl": {"masks": "random", "keep": 0.3}}})
    assert job.config.propetl.masks == "random"
    carried = JobSpec.model_validate_json(job.model_dump_json())
    assert carried.config.propetl.masks == "random"
