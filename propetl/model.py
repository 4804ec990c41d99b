"""ProPETLModel: a frozen HF encoder, one shared prototype, per-(layer, task) masks, task heads."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import ModelOutput, SequenceClassifierOutput

from .banks import Bank
from .config import PropetlConfig, TaskHeadSpec
from .families import Family, UnsupportedModelError, family_for, get_path, set_path
from .heads import TaskHead
from .layers import (
    AdapterOutput,
    ForwardState,
    LoraLinear,
    PfeifferAdapter,
    PrefixHook,
    TaskGroup,
    register_prefix_attention,
)


class UnknownTaskError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def auto_class(model_type: str):
    """The transformers auto class ProPETL builds a backbone with: the bare encoder, or a
    generative family's model with its LM head. Rejects unsupported families."""
    kind = family_for(model_type).kind
    return {"seq2seq": AutoModelForSeq2SeqLM, "causal": AutoModelForCausalLM}.get(kind, AutoModel)


def load_backbone(name_or_path: str, **kwargs) -> PreTrainedModel:
    """Load a backbone; rejects unsupported families before loading weights."""
    config = AutoConfig.from_pretrained(name_or_path, **kwargs)
    return auto_class(config.model_type).from_pretrained(name_or_path, **kwargs)


class ProPETLModel(nn.Module):
    """A frozen backbone with ProPETL modules for any number of named tasks.

    `forward(..., task_ids=...)` runs a batch whose examples may belong to different tasks;
    without `task_ids` it runs the active task (`set_task`). In eval mode each task's masked
    tensors are materialised once and cached, so switching task swaps cached tensors.
    """

    def __init__(
        self,
        backbone: PreTrainedModel,
        config: PropetlConfig,
        tasks: Sequence[TaskHeadSpec] = (),
        backbone_name: str | None = None,
    ) -> None:
        super().__init__()
        self.family: Family = family_for(backbone.config.model_type)
        self.backbone = backbone
        self.backbone_name = backbone_name or getattr(backbone, "name_or_path", "") or ""
        self.config = config
        bconf: PretrainedConfig = backbone.config
        self.hidden_size = int(bconf.hidden_size)
        self.num_layers = len(self._layers())
        self.num_heads = int(bconf.num_attention_heads)
        self.label_smoothing = 0.0  # generative families: label smoothing of the LM loss
        for param in self.backbone.parameters():
            param.requires_grad_(False)
        self.state = ForwardState()
        self.banks = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        self.task_specs: dict[str, TaskHeadSpec] = {}
        self.active_task: str | None = None
        self._accepts_token_types = (
            "token_type_ids" in inspect.signature(backbone.forward).parameters
        )
        self._inject()
        for spec in tasks:
            self.add_task(spec)

    # ------------------------------------------------------------ construction
    @classmethod
    def from_backbone(
        cls, name_or_path: str, config: PropetlConfig, tasks: Sequence[TaskHeadSpec] = (), **kwargs
    ) -> ProPETLModel:
        return cls(load_backbone(name_or_path, **kwargs), config, tasks, backbone_name=name_or_path)

    def _layers(self) -> nn.ModuleList:
        """Every layer that gets a ProPETL module (encoder-decoders: encoder, then decoder)."""
        layers = get_path(self.backbone, self.family.layers)
        if self.family.decoder_layers is None:
            return layers  # type: ignore[return-value]
        decoder = get_path(self.backbone, self.family.decoder_layers)
        return nn.ModuleList([*layers, *decoder])  # type: ignore[misc]

    def _inject(self) -> None:
        cfg, d, L = self.config, self.hidden_size, self.num_layers
        layers = self._layers()
        if cfg.petl == "prefix" and not self.family.prefix:
            raise UnsupportedModelError(
                f"prefix-tuning is not supported on the {self.family.name} family; "
                "use petl 'adapter' or 'lora'"
            )
        if cfg.petl == "adapter":
            b = cfg.bottleneck
            self.banks["adapter"] = Bank(
                "adapter",
                "adapter",
                {"down": (b, d), "up": (d, b)},
                {"down_bias": (b,), "up_bias": (d,)},
                L,
                cfg,
            )
            for i, layer in enumerate(layers):
                if cfg.adapter_placement == "ffn-output":  # models saved before "pfeiffer"
                    base = get_path(layer, self.family.ffn_out)
                    set_path(
                        layer, self.family.ffn_out, AdapterOutput(base, self.state, "adapter", i)
                    )
                    continue
                fam = self.family
                norm = get_path(layer, fam.adapter_norm) if fam.adapter_norm else None
                set_path(
                    layer,
                    fam.adapter_block,
                    PfeifferAdapter(
                        get_path(layer, fam.adapter_block),
                        fam.adapter_style,
                        self.state,
                        "adapter",
                        i,
                        norm,
                    ),
                )
        elif cfg.petl == "lora":
            r = cfg.lora_r
            for target in cfg.lora_targets:
                bank = f"lora_{target}"
                path = getattr(self.family, target)
                first = get_path(layers[0], path)  # grouped-query attention: v is narrower
                d_in, d_out = first.in_features, first.out_features
                self.banks[bank] = Bank("lora", bank, {"A": (r, d_in), "B": (d_out, r)}, {}, L, cfg)
                for i, layer in enumerate(layers):
                    base = get_path(layer, path)
                    set_path(
                        layer,
                        path,
                        LoraLinear(base, self.state, bank, i, cfg.lora_alpha / cfg.lora_r),
                    )
        else:
            self.banks["prefix"] = Bank(
                "prefix",
                "prefix",
                {"kv": (cfg.prefix_len, 2 * d)},
                {},
                L,
                cfg,
                prefix=(cfg.prefix_len, d, cfg.prefix_hidden),
            )
            for i, layer in enumerate(layers):
                attention = get_path(layer, self.family.attention)
                attention._propetl_prefix = PrefixHook(self.state, "prefix", i, self.num_heads)
            self.backbone.config._attn_implementation = register_prefix_attention()

    # ------------------------------------------------------------ tasks
    @property
    def task_names(self) -> list[str]:
        return list(self.task_specs)

    def task_index(self, name: str) -> int:
        self._check_task(name)
        return self.task_names.index(name)

    def _check_task(self, name: str) -> None:
        if name not in self.task_specs:
            known = ", ".join(self.task_names) or "none"
            raise UnknownTaskError(f"unknown task {name!r}; this model has: {known}")

    def add_task(self, spec: TaskHeadSpec, trainable: bool = True) -> None:
        if spec.name in self.task_specs:
            raise ValueError(f"task {spec.name!r} already exists")
        for bank in self.banks.values():
            bank.add_task(spec.name, trainable=trainable)
        # Generative families answer with the backbone's own LM head: a task has no head.
        self.heads[spec.name] = (
            nn.Module()
            if self.family.generative
            else TaskHead(
                self.hidden_size,
                spec.num_labels,
                self.config.head,
                self.config.head_dropout,
                self.config.pooling,
            )
        )
        self.task_specs[spec.name] = spec
        device = next(self.backbone.parameters()).device
        if getattr(self, "_modules_device", None) != device:
            self.banks.to(device)
            self.heads.to(device)
            self.banks.train(self.training)
            self.heads.train(self.training)
            self._modules_device = device
        else:  # only the new task's modules: walking every task's made loading O(tasks)
            self._place_task(spec.name, device)
        if self.active_task is None:
            self.active_task = spec.name

    def _place_task(self, name: str, device: torch.device) -> None:
        """Move one task's masks and head to `device`, in the model's train / eval mode."""
        for bank in self.banks.values():
            bank.tasks[name].to(device).train(self.training)
        self.heads[name].to(device).train(self.training)

    def remove_task(self, name: str) -> None:
        self._check_task(name)
        for bank in self.banks.values():
            bank.remove_task(name)
        del self.heads[name]
        del self.task_specs[name]
        if self.active_task == name:
            self.active_task = next(iter(self.task_specs), None)

    def set_task(self, name: str) -> None:
        """Make `name` the task of forwards without `task_ids` (a swap of cached tensors)."""
        self._check_task(name)
        self.active_task = name

    def materialise(self, tasks: Iterable[str] | None = None) -> None:
        """Compute every (layer, task) masked tensor once, for inference."""
        for name in tasks or self.task_names:
            self._check_task(name)
            for bank in self.banks.values():
                bank.materialise(name)

    # ------------------------------------------------------------ forward
    def _task_weights(self, task: str) -> dict[str, dict[str, torch.Tensor]]:
        return {name: bank.effective(task) for name, bank in self.banks.items()}

    def _plan(
        self, task_ids: torch.Tensor | None, task: str | None
    ) -> list[tuple[str, torch.Tensor | None]]:
        """(task, indices of its examples) per task in the batch (None = the whole batch)."""
        names = self.task_names
        if task_ids is None:
            name = task or self.active_task
            if name is None:
                raise RuntimeError("the model has no task: add one with add_task()")
            self._check_task(name)
            return [(name, None)]
        present = torch.unique(task_ids).tolist()
        if max(present) >= len(names) or min(present) < 0:
            raise ValueError(f"task_ids out of range: the model has {len(names)} tasks")
        if len(present) == 1:
            return [(names[present[0]], None)]
        return [(names[t], (task_ids == t).nonzero(as_tuple=True)[0]) for t in present]

    @contextmanager
    def routing(
        self, task_ids: torch.Tensor | None = None, task: str | None = None
    ) -> Iterator[list[tuple[str, torch.Tensor | None]]]:
        """Within the block, backbone calls use the masks of `task` (or of each example's
        task in `task_ids`); yields the plan (task, example indices) of the batch."""
        plan = self._plan(task_ids, task)
        self.state.groups = [TaskGroup(index, self._task_weights(name)) for name, index in plan]
        self.state.example_group = None
        if len(plan) > 1:
            assert task_ids is not None
            present = torch.tensor(
                [self.task_names.index(name) for name, _ in plan], device=task_ids.device
            )
            lookup = torch.full(
                (len(self.task_names),), -1, dtype=torch.long, device=task_ids.device
            )
            lookup[present] = torch.arange(len(plan), device=task_ids.device)
            self.state.example_group = lookup[task_ids]
        try:
            yield plan
        finally:
            self.state.groups, self.state.example_group = [], None

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        task_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        task: str | None = None,
        **kwargs: object,
    ) -> ModelOutput:
        if self.family.generative:
            from .generation import lm_forward

            with self.routing(task_ids, task):
                return lm_forward(self, input_ids, attention_mask, labels, **kwargs)
        with self.routing(task_ids, task) as plan:
            inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None and self._accepts_token_types:
                inputs["token_type_ids"] = token_type_ids
            hidden = self.backbone(**inputs).last_hidden_state
        return self._heads_and_loss(plan, hidden, attention_mask, labels)

    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        task_ids: torch.Tensor | None = None,
        task: str | None = None,
        **generate_kwargs: object,
    ) -> torch.Tensor:
        """Generate with the backbone's `generate` under one task's (or each example's) masks."""
        from .generation import generate

        return generate(self, input_ids, attention_mask, task_ids, task, **generate_kwargs)

    def _heads_and_loss(
        self,
        plan: list[tuple[str, torch.Tensor | None]],
        hidden: torch.Tensor,
        attention_mask: torch.Tensor | None,
        labels: torch.Tensor | None,
    ) -> SequenceClassifierOutput:
        if len(plan) == 1:
            name = plan[0][0]
            logits = self.heads[name](hidden, attention_mask)
            loss = None if labels is None else self._loss(name, logits, labels)
            return SequenceClassifierOutput(loss=loss, logits=logits)
        width = max(self.task_specs[name].num_labels for name, _ in plan)
        logits = hidden.new_full((hidden.shape[0], width), float("-inf"))
        total = hidden.new_zeros(())
        for name, index in plan:
            mask = None if attention_mask is None else attention_mask[index]
            group_logits = self.heads[name](hidden[index], mask)
            logits[index, : group_logits.shape[1]] = group_logits
            if labels is not None:
                total = total + self._loss(name, group_logits, labels[index]) * len(index)
        loss = None if labels is None else total / hidden.shape[0]
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def _loss(self, task: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.task_specs[task].is_regression:
            return F.mse_loss(logits.squeeze(-1), labels.float())
        return F.cross_entropy(logits, labels.long())

    # ------------------------------------------------------------ parameters
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by role: 'scores' (masks), 'weights' and 'no_decay'
        (biases, LayerNorm, embeddings) of prototypes and heads."""
        groups: dict[str, list[nn.Parameter]] = {"scores": [], "weights": [], "no_decay": []}
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            if ".scores." in name:
                groups["scores"].append(param)
            elif name.endswith("bias") or "embedding" in name or param.dim() < 2:
                groups["no_decay"].append(param)
            else:
                groups["weights"].append(param)
        return groups

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything but the frozen backbone (what a training checkpoint needs)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    # ------------------------------------------------------------ checkpoints
    def save_pretrained(self, directory: str | Path) -> None:
        from .checkpoint import save_model

        save_model(self, Path(directory))

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        backbone: PreTrainedModel | str | None = None,
        tasks: Iterable[str] | None = None,
    ) -> ProPETLModel:
        from .checkpoint import load_model

        return load_model(Path(directory), backbone=backbone, tasks=tasks)
