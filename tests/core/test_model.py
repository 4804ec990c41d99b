import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModel

from propetl import PropetlConfig, ProPETLModel, TaskHeadSpec
from propetl.families import UnsupportedModelError
from propetl.heads import TaskHead
from propetl.tiny import TINY_FAMILIES

from .helpers import batch, build, nudge

KINDS = ("adapter", "lora", "prefix")
TASKS = (TaskHeadSpec("a", 2), TaskHeadSpec("b", 3), TaskHeadSpec("c", 1))


def no_dropout(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Dropout | TaskHead):  # the linear head drops out itself
            module.p = 0.0


@pytest.mark.parametrize("petl", KINDS)
@pytest.mark.parametrize("sharing", ["propetl", "propetl-or"])
def test_gradients_reach_scores_and_prototype(petl, sharing):
    model = build(petl=petl, sharing=sharing)
    nudge(model)
    ids, mask = batch()
    model.train()
    model(ids, mask, labels=torch.tensor([0, 1, 0, 1, 1, 0])).loss.backward()
    groups = model.parameter_groups()
    assert groups["scores"], "no mask scores"
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in model.backbone.parameters())


def test_lora_masks_get_no_gradient_until_b_moves():
    model = build(petl="lora")
    ids, mask = batch()
    model(ids, mask, labels=torch.zeros(6, dtype=torch.long)).loss.backward()
    a_scores = [p for n, p in model.named_parameters() if n.endswith("scores.A")]
    assert all(p.grad.abs().sum() == 0 for p in a_scores)


def test_backbone_is_frozen_and_only_propetl_parts_train():
    model = build()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("banks.", "heads.")) for n in trainable)


@pytest.mark.parametrize("family", TINY_FAMILIES)
@pytest.mark.parametrize("petl", KINDS)
@pytest.mark.parametrize("sharing", ["propetl", "propetl-or", "none"])
def test_mixed_task_batch_equals_per_task_batches(family, petl, sharing):
    model = build(family, petl, sharing, tasks=TASKS)
    nudge(model)
    model.eval()
    ids, mask = batch(6)
    task_ids = torch.tensor([0, 1, 2, 2, 1, 0])
    with torch.no_grad():
        mixed = model(ids, mask, task_ids=task_ids).logits
        for index, spec in enumerate(TASKS):
            rows = task_ids == index
            alone = model(ids[rows], mask[rows], task=spec.name).logits
            torch.testing.assert_close(mixed[rows, : spec.num_labels], alone, atol=1e-5, rtol=1e-4)
            assert torch.isinf(mixed[rows, spec.num_labels :]).all()


@pytest.mark.parametrize("family", TINY_FAMILIES)
@pytest.mark.parametrize("petl", KINDS)
def test_materialised_equals_masked_forward(family, petl):
    model = build(family, petl, tasks=TASKS[:2])
    nudge(model)
    no_dropout(model)
    ids, mask = batch()
    model.train()
    with torch.no_grad():
        masked = {t.name: model(ids, mask, task=t.name).logits for t in TASKS[:2]}
    model.eval()
    model.materialise()
    with torch.no_grad():
        for name, logits in masked.items():
            model.set_task(name)
            torch.testing.assert_close(model(ids, mask).logits, logits)


def test_task_switch_uses_the_cache_and_never_recomputes_masks(monkeypatch):
    model = build(tasks=TASKS)
    model.eval()
    model.materialise()
    import propetl.masks

    def forbidden(*args, **kwargs):
        raise AssertionError("top-k recomputed after materialisation")

    monkeypatch.setattr(propetl.masks, "topk_mask", forbidden)
    monkeypatch.setattr("propetl.banks.topk_mask", forbidden)
    ids, mask = batch()
    with torch.no_grad():
        outputs = []
        for spec in TASKS:
            model.set_task(spec.name)
            outputs.append(model(ids, mask).logits)
    assert [o.shape[1] for o in outputs] == [2, 3, 1]


def test_tasks_start_from_shared_seeded_scores_over_one_shared_prototype():
    model = build(tasks=TASKS[:2])
    bank = model.banks["adapter"]
    a, b = bank.masks("a")["down"], bank.masks("b")["down"]
    assert a.shape == b.shape == (2, 8, 32)
    assert torch.equal(a, b) and torch.equal(bank.start_masks("a")["down"], a)
    assert (a[0] != a[1]).float().mean() > 0.2  # layers still start apart
    assert bank.prototype_numel() == 8 * 32 * 2 + 8 + 32
    other_seed = build(tasks=TASKS[:1], seed=1).banks["adapter"].masks("a")["down"]
    assert (other_seed != a).float().mean() > 0.2
    own = build(tasks=TASKS[:2], mask_init="per-task").banks["adapter"]
    assert (own.masks("a")["down"] != own.masks("b")["down"]).float().mean() > 0.2
    assert torch.equal(own.start_masks("b")["down"], own.masks("b")["down"])


def test_propetl_or_mask_is_task_or_layer():
    model = build(sharing="propetl-or", tasks=TASKS[:1], keep=0.3)
    bank = model.banks["adapter"]
    task_mask = bank.tasks["a"]()["down"]
    layer_mask = bank.layer_masks()["down"]
    combined = bank.masks("a")["down"]
    assert torch.equal(combined, torch.maximum(task_mask.expand_as(layer_mask), layer_mask))
    assert task_mask.shape[0] == 1 and layer_mask.shape[0] == 2
    assert bank.tasks["a"].scores["down"] is not bank.layer_masks.scores["down"]


def test_unknown_task_and_bad_task_ids_are_clear():
    model = build(tasks=TASKS[:2])
    ids, mask = batch()
    with pytest.raises(KeyError, match="unknown task 'zzz'; this model has: a, b"):
        model(ids, mask, task="zzz")
    with pytest.raises(ValueError, match="task_ids out of range"):
        model(ids, mask, task_ids=torch.full((6,), 5))


def test_unsupported_backbone_names_the_supported_families():
    config = AutoConfig.for_model("gpt2", n_layer=1, n_embd=16, n_head=2, vocab_size=50)
    with pytest.raises(UnsupportedModelError, match=r"supported families: bert .*distilbert"):
        ProPETLModel(AutoModel.from_config(config), PropetlConfig(), [TaskHeadSpec("a", 2)])


def test_remove_task_and_regression_loss():
    model = build(tasks=TASKS)
    model.remove_task("b")
    assert model.task_names == ["a", "c"]
    ids, mask = batch()
    out = model(ids, mask, task="c", labels=torch.rand(6))
    assert out.logits.shape == (6, 1) and out.loss.item() > 0


def test_linear_head_is_one_module_with_the_sequential_layout_in_its_state_dict():
    """A served prototype carries a head per task: the linear head is a single module, but
    its files and checkpoints keep the names of Sequential(Dropout, Linear), and a seeded
    head starts where that Sequential did."""
    from propetl.heads import TaskHead

    torch.manual_seed(7)
    head = TaskHead(16, 3, dropout=0.0)
    torch.manual_seed(7)
    old = nn.Sequential(nn.Dropout(0.0), nn.Linear(16, 3))
    nn.init.normal_(old[1].weight, std=0.02)
    nn.init.zeros_(old[1].bias)
    assert list(head.modules()) == [head]
    assert set(head.state_dict()) == {f"net.{k}" for k in old.state_dict()}
    assert torch.equal(head.state_dict()["net.1.weight"], old.state_dict()["1.weight"])
    moved = {f"net.{k}": v * 2 + 1 for k, v in old.state_dict().items()}
    head.load_state_dict(moved)  # strict: the old names are the head's own
    x = torch.randn(4, 5, 16)
    expected = torch.nn.functional.linear(x[:, 0], moved["net.1.weight"], moved["net.1.bias"])
    assert torch.allclose(head(x, None), expected)
    with pytest.raises(RuntimeError, match="Missing key"):
        head.load_state_dict({"net.1.weight": moved["net.1.weight"]})


def test_tiny_backbones_built_at_once_are_identical_and_leave_the_global_rng_alone():
    """Two threads building the same tiny backbone (a server's concurrent exports) get the
    same weights, whatever the global RNG holds, and find it as it was."""
    from concurrent.futures import ThreadPoolExecutor

    from propetl.tiny import tiny_backbone

    reference = tiny_backbone("bert").state_dict()
    torch.manual_seed(1234)
    before = torch.random.get_rng_state()
    with ThreadPoolExecutor(2) as pool:
        built = list(pool.map(lambda _: tiny_backbone("bert").state_dict(), range(4)))
    assert torch.equal(torch.random.get_rng_state(), before)
    for state in built:
        assert all(torch.equal(state[k], reference[k]) for k in reference)
