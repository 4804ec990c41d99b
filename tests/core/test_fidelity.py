"""Fidelity to the public ProPETL code (ChaosCodes/ProPETL): mask score initialisation, the
Pfeiffer adapter placement, and what saved models from before it load as."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from propetl import PropetlConfig, ProPETLModel
from propetl.config import ConfigError, TrainConfig
from propetl.heads import TaskHead
from propetl.layers import AdapterOutput, PfeifferAdapter
from propetl.tiny import TINY_FAMILIES, TINY_GENERATIVE, tiny_backbone, tiny_tokenizer
from propetl.training import _check_resumable, prepare_data

from .helpers import batch, build, nudge


def _bound(fan_in: int) -> float:
    """Kaiming-uniform with a = sqrt(5) draws from U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return 1.0 / math.sqrt(fan_in)


def _check_spread(scores, fan_in: int) -> None:
    bound = _bound(fan_in)
    top = scores.detach().abs().max().item()
    assert top <= bound + 1e-7, f"scores reach {top:.4g}, public code's bound is {bound:.4g}"
    assert top > 0.9 * bound, f"scores only reach {top:.4g}, public code's bound is {bound:.4g}"


@pytest.mark.parametrize("sharing", ["propetl", "propetl-or"])
def test_prefix_scores_are_drawn_as_one_layers_by_length_by_2d_block(sharing):
    # public code: nn.Parameter([n_layers, prefix_length, 2 * d]), kaiming fan-in P * 2d
    model = build(petl="prefix", sharing=sharing, prefix_len=16)
    scores = model.banks["prefix"].tasks["a"].scores["kv"]
    _check_spread(scores, 16 * 2 * model.hidden_size)


def test_adapter_scores_use_the_public_codes_transposed_fan_ins():
    # public code: down_mask [d, b] (fan-in b), up_mask [b, d] (fan-in d)
    model = build(petl="adapter", bottleneck=4)
    scores = model.banks["adapter"].tasks["a"].scores
    _check_spread(scores["down"], 4)
    _check_spread(scores["up"], model.hidden_size)


def test_lora_scores_use_a_and_b_shapes():
    model = build(petl="lora", lora_r=4)
    scores = model.banks["lora_query"].tasks["a"].scores
    _check_spread(scores["A"], model.hidden_size)
    _check_spread(scores["B"], 4)


# ---------------------------------------------------------------- Pfeiffer adapter placement


def _delta(model, a):
    """up(relu(down(a))) with task a's layer-0 tensors."""
    w = {k: v[0] for k, v in model.banks["adapter"].effective("a").items()}
    return F.linear(F.relu(F.linear(a, w["down"], w["down_bias"])), w["up"], w["up_bias"])


def _eval_model(family, sharing="propetl"):
    model = build(family, "adapter", sharing)
    nudge(model)
    for module in model.modules():
        if isinstance(module, nn.Dropout | TaskHead):  # the linear head drops out itself
            module.p = 0.0
    return model.eval()


@pytest.mark.parametrize("family", ["bert", "roberta", "electra"])
@pytest.mark.parametrize("sharing", ["propetl", "propetl-or", "none"])
def test_post_ln_families_feed_the_adapter_ln_of_h_plus_x(family, sharing):
    model = _eval_model(family, sharing)
    output = model.backbone.encoder.layer[0].output
    assert isinstance(output, PfeifferAdapter)
    inter, x = torch.randn(2, 5, 64), torch.randn(2, 5, 32)
    base = output.base
    h = base.dense(inter)
    expected = base.LayerNorm(h + _delta(model, base.LayerNorm(h + x)) + x)
    with torch.no_grad(), model.routing(task="a"):
        torch.testing.assert_close(output(inter, x), expected)


def test_distilbert_adapter_reads_the_blocks_output_layernorm_of_h_plus_x():
    model = _eval_model("distilbert")
    block = model.backbone.transformer.layer[0]
    assert isinstance(block.ffn, PfeifferAdapter)
    x = torch.randn(2, 5, 32)
    h = block.ffn.base(x)
    expected = h + _delta(model, block.output_layer_norm(h + x))
    with torch.no_grad(), model.routing(task="a"):
        torch.testing.assert_close(block.ffn(x), expected)


def test_t5_adapter_reads_h_plus_x_in_its_pre_ln_ff_sublayer():
    model = _eval_model("t5")
    ff = model.backbone.encoder.block[0].layer[-1]
    assert isinstance(ff, PfeifferAdapter)
    x = torch.randn(2, 5, 32)
    h = ff.base.DenseReluDense(ff.base.layer_norm(x))
    with torch.no_grad(), model.routing(task="a"):
        torch.testing.assert_close(ff(x), x + h + _delta(model, h + x))


def test_llama_adapter_reads_h_plus_the_layers_residual_input():
    model = _eval_model("llama")
    layer = model.backbone.model.layers[0]
    assert isinstance(layer.mlp, PfeifferAdapter)
    x = torch.randn(2, 5, 32)
    with torch.no_grad(), model.routing(task="a"):
        normed = layer.post_attention_layernorm(x)  # the hook hands x to the adapter
        h = layer.mlp.base(normed)
        torch.testing.assert_close(layer.mlp(normed), h + _delta(model, h + x))


@pytest.mark.parametrize("family", [*TINY_FAMILIES, *TINY_GENERATIVE])
@pytest.mark.parametrize("placement", ["pfeiffer", "ffn-output"])
def test_a_zero_adapter_leaves_the_backbone_unchanged(family, placement):
    model = build(family, "adapter", adapter_placement=placement).eval()
    with torch.no_grad():
        model.banks["adapter"].prototype.params["up"].zero_()
    ids, mask = batch()
    with torch.no_grad():
        with model.routing(task="a"):
            ours = model.backbone(
                input_ids=ids,
                attention_mask=mask,
                **({"decoder_input_ids": ids} if family == "t5" else {}),
            )
        plain = tiny_backbone(family)(
            input_ids=ids,
            attention_mask=mask,
            **({"decoder_input_ids": ids} if family == "t5" else {}),
        )
    key = "logits" if family in TINY_GENERATIVE else "last_hidden_state"
    torch.testing.assert_close(ours[key], plain[key])


def _saved_without_placement(model, directory):
    model.save_pretrained(directory)
    manifest = json.loads((directory / "propetl_config.json").read_text())
    del manifest["config"]["adapter_placement"]
    (directory / "propetl_config.json").write_text(json.dumps(manifest))


def test_models_saved_before_the_placement_field_load_with_the_old_placement(tmp_path):
    old = build("bert", "adapter", adapter_placement="ffn-output")
    nudge(old)
    old.eval()
    _saved_without_placement(old, tmp_path / "m")
    loaded = ProPETLModel.from_pretrained(tmp_path / "m", backbone=tiny_backbone("bert"))
    assert loaded.config.adapter_placement == "ffn-output"
    assert isinstance(loaded.backbone.encoder.layer[0].output.dense, AdapterOutput)
    ids, mask = batch()
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(ids, mask, task="a").logits, old(ids, mask, task="a").logits
        )
    # a new config without the field gets the Pfeiffer placement
    assert PropetlConfig.from_dict({"petl": "adapter"}).adapter_placement == "pfeiffer"


def test_a_run_folder_from_before_the_placement_is_not_resumed_with_another_one(tmp_path):
    config = TrainConfig(backbone="tiny-bert", seed=7)
    old = config.to_dict()
    del old["propetl"]["adapter_placement"], old["data_seed"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    with pytest.raises(ConfigError, match="another config"):
        _check_resumable(tmp_path, config, resume=True)
    before = TrainConfig.from_saved_json(json.dumps(old))
    assert before.data_seed == 7 and before.propetl.adapter_placement == "ffn-output"


# ---------------------------------------------------------------- data seed


def test_training_seeds_share_one_split_drawn_by_the_data_seed(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\n" + "".join(f"text number {i},{i % 2}\n" for i in range(60)))
    tokenizer = tiny_tokenizer(f"text number {i}" for i in range(60))

    def test_texts(**seeds):
        config = TrainConfig(backbone="tiny-bert", tasks=[str(path)], **seeds)
        return prepare_data(config, tokenizer).tasks[0].splits["test"]["text"]

    assert test_texts(seed=1) == test_texts(seed=2)  # data_seed 42 for both
    assert test_texts(seed=1, data_seed=7) == test_texts(seed=2, data_seed=7)
    assert test_texts(seed=1, data_seed=7) != test_texts(seed=1)
