"""The core invariants for the generative families (T5 encoder-decoder, Llama decoder-only)."""

import pytest
import torch
from torch import nn

from propetl import PropetlConfig, ProPETLModel, TaskHeadSpec
from propetl.families import UnsupportedModelError
from propetl.heads import TaskHead
from propetl.layers import LoraLinear, PfeifferAdapter
from propetl.masks import kept_count
from propetl.tiny import TINY_GENERATIVE, tiny_backbone

SMALL = {"bottleneck": 8, "lora_r": 4}
TASKS = (TaskHeadSpec("a", 1), TaskHeadSpec("b", 1), TaskHeadSpec("c", 1))
KINDS = ("adapter", "lora")


def build(
    family: str, petl: str = "adapter", sharing: str = "propetl", tasks=TASKS[:1], **overrides
) -> ProPETLModel:
    config = PropetlConfig(petl=petl, sharing=sharing, **{**SMALL, **overrides})
    model = ProPETLModel(tiny_backbone(family), config, list(tasks))
    for module in model.modules():
        if isinstance(module, nn.Dropout | TaskHead):  # the linear head drops out itself
            module.p = 0.0
        elif isinstance(getattr(module, "dropout", None), float):
            module.dropout = 0.0  # T5 attention's functional dropout
    return model


def nudge(model: ProPETLModel) -> None:
    """Move every trainable tensor as training would: the prototype away from its zero-update
    start, and each task's mask scores away from the start all tasks share."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * (param.std() if ".scores." in name else 0.3))


def batch(family: str, size: int = 6, seed: int = 0):
    """Source ids, their mask and labels (T5: target ids; Llama: -100 on the prompt)."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 256, (size, 9), generator=generator)
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    if family == "t5":
        labels = torch.randint(5, 256, (size, 5), generator=generator)
        labels[1, 3:] = -100
    else:
        labels = ids.clone()
        labels[:, :4] = -100
        labels[mask == 0] = -100
    return ids, mask, labels


@pytest.mark.parametrize("family", TINY_GENERATIVE)
@pytest.mark.parametrize("petl", KINDS)
@pytest.mark.parametrize("sharing", ["propetl", "propetl-or"])
def test_gradients_reach_scores_and_prototype_not_backbone(family, petl, sharing):
    model = build(family, petl, sharing)
    nudge(model)
    model.train()
    ids, mask, labels = batch(family)
    out = model(ids, mask, labels=labels)
    assert out.loss.item() > 0
    out.loss.backward()
    assert model.parameter_groups()["scores"]
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in model.backbone.parameters())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(n.startswith("banks.") for n in trainable)


def test_t5_shares_one_prototype_over_encoder_and_decoder_blocks():
    model = build("t5", "adapter")
    backbone = model.backbone
    assert model.num_layers == 4  # 2 encoder + 2 decoder blocks
    for stack in (backbone.encoder.block, backbone.decoder.block):
        for block in stack:  # the Pfeiffer adapter wraps each block's FF sub-layer
            assert isinstance(block.layer[-1], PfeifferAdapter)
    assert model.banks["adapter"].masks("a")["down"].shape == (4, 8, 32)
    layers = [m.layer for m in model.modules() if isinstance(m, PfeifferAdapter)]
    assert layers == [0, 1, 2, 3]


def test_llama_lora_on_q_and_v_follows_grouped_query_shapes():
    model = build("llama", "lora")
    attention = model.backbone.model.layers[0].self_attn
    assert isinstance(attention.q_proj, LoraLinear) and isinstance(attention.v_proj, LoraLinear)
    assert model.banks["lora_query"].masked == {"A": (4, 32), "B": (32, 4)}
    assert model.banks["lora_value"].masked == {"A": (4, 32), "B": (16, 4)}  # 2 of 4 kv heads


@pytest.mark.parametrize("family", TINY_GENERATIVE)
@pytest.mark.parametrize("petl", KINDS)
def test_every_layer_keeps_exactly_the_keep_count(family, petl):
    model = build(family, petl, keep=0.3)
    for bank in model.banks.values():
        for name, mask in bank.masks("a").items():
            per_layer = mask.reshape(mask.shape[0], -1).sum(dim=1)
            expected = kept_count(mask[0].numel(), 0.3)
            assert mask.shape[0] == model.num_layers
            assert per_layer.tolist() == [expected] * model.num_layers, name


@pytest.mark.parametrize("family", TINY_GENERATIVE)
def test_prefix_is_refused_with_a_clear_message(family):
    with pytest.raises(UnsupportedModelError, match="prefix-tuning is not supported on the"):
        build(family, "prefix")


@pytest.mark.parametrize("family", TINY_GENERATIVE)
@pytest.mark.parametrize("petl", KINDS)
@pytest.mark.parametrize("sharing", ["propetl", "propetl-or", "none"])
def test_mixed_task_batch_equals_per_task_batches(family, petl, sharing):
    model = build(family, petl, sharing, tasks=TASKS)
    nudge(model)
    model.eval()
    ids, mask, labels = batch(family)
    task_ids = torch.tensor([0, 1, 2, 2, 1, 0])
    with torch.no_grad():
        mixed = model(ids, mask, labels=labels, task_ids=task_ids).logits
        for index, spec in enumerate(TASKS):
            rows = task_ids == index
            alone = model(ids[rows], mask[rows], labels=labels[rows], task=spec.name).logits
            torch.testing.assert_close(mixed[rows], alone, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(
            model(ids, mask, labels=labels, task="a").logits,
            model(ids, mask, labels=labels, task="b").logits,
        )


@pytest.mark.parametrize("family", TINY_GENERATIVE)
@pytest.mark.parametrize("beams", [1, 3])
def test_mixed_task_generation_equals_per_task_generation(family, beams):
    model = build(family, "adapter", tasks=TASKS[:2])
    nudge(model)
    model.eval()
    model.materialise()
    ids, mask, _ = batch(family, size=4)
    if family == "llama":  # decoder-only prompts are padded on the left
        ids[0] = torch.cat([ids[0, 6:], torch.zeros(6, dtype=torch.long)]).roll(6)
        mask[0] = torch.tensor([0] * 6 + [1] * 3)
    task_ids = torch.tensor([0, 1, 1, 0])
    options = {"max_new_tokens": 5, "num_beams": beams, "do_sample": False}
    mixed = model.generate(ids, mask, task_ids=task_ids, **options)
    for index, spec in enumerate(TASKS[:2]):
        rows = task_ids == index
        alone = model.generate(ids[rows], mask[rows], task=spec.name, **options)
        width = min(alone.shape[1], mixed.shape[1])
        assert torch.equal(mixed[rows, :width], alone[:, :width])


@pytest.mark.parametrize("family", TINY_GENERATIVE)
@pytest.mark.parametrize("petl", KINDS)
def test_materialised_equals_masked_forward(family, petl):
    model = build(family, petl, tasks=TASKS[:2])
    nudge(model)
    ids, mask, labels = batch(family)
    model.train()
    with torch.no_grad():
        masked = {t.name: model(ids, mask, labels=labels, task=t.name).logits for t in TASKS[:2]}
    model.eval()
    model.materialise()
    with torch.no_grad():
        for name, logits in masked.items():
            model.set_task(name)
            torch.testing.assert_close(model(ids, mask, labels=labels).logits, logits)


@pytest.mark.parametrize("family", TINY_GENERATIVE)
@pytest.mark.parametrize("petl", KINDS)
@pytest.mark.parametrize("sharing", ["propetl", "propetl-or"])
def test_save_and_load_give_the_same_outputs_and_generations(tmp_path, family, petl, sharing):
    model = build(family, petl, sharing, tasks=TASKS[:2])
    nudge(model)
    model.eval()
    ids, mask, labels = batch(family, size=3)
    with torch.no_grad():
        before = {t.name: model(ids, mask, labels=labels, task=t.name).logits for t in TASKS[:2]}
    generated = model.generate(ids, mask, task="b", max_new_tokens=4)
    model.save_pretrained(tmp_path)
    assert not list((tmp_path / "tasks" / "a").glob("*.bin"))
    loaded = ProPETLModel.from_pretrained(tmp_path, backbone=tiny_backbone(family))
    assert loaded.task_names == ["a", "b"]
    with torch.no_grad():
        for name, logits in before.items():
            torch.testing.assert_close(loaded(ids, mask, labels=labels, task=name).logits, logits)
    assert torch.equal(loaded.generate(ids, mask, task="b", max_new_tokens=4), generated)


@pytest.mark.parametrize("family", TINY_GENERATIVE)
def test_storage_report_from_a_config_alone_matches_the_built_model(tmp_path, family):
    from propetl.storage import storage_report, storage_report_for_config

    tiny_backbone(family).config.save_pretrained(tmp_path)
    config = PropetlConfig(petl="lora", **SMALL)
    built = storage_report(ProPETLModel(tiny_backbone(family), config, [TaskHeadSpec("t", 2)]))
    from_config = storage_report_for_config(str(tmp_path), config)
    assert from_config.num_layers == built.num_layers == (4 if family == "t5" else 2)
    assert from_config.mask_bits_per_task == built.mask_bits_per_task > 0
    assert from_config.prototype_params == built.prototype_params


def test_mask_statistics_cover_every_generative_layer():
    from app.maskstats import density_per_layer, mask_stacks

    model = build("t5", "adapter", tasks=TASKS[:2], keep=0.5)
    stacks = mask_stacks(model)
    assert stacks and all(s.num_layers == 4 for s in stacks.values())
    density = density_per_layer(next(iter(stacks.values())))
    assert all(abs(float(v.mean()) - 0.5) < 0.01 for v in density.values())
