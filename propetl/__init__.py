"""ProPETL: one shared PETL prototype, a binary mask per (layer, task) (Zeng et al., ACL 2023)."""

from .config import PropetlConfig, TaskHeadSpec, TrainConfig
from .model import ProPETLModel

__all__ = ["ProPETLModel", "PropetlConfig", "TaskHeadSpec", "TrainConfig"]
