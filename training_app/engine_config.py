"""The engine's TrainConfig for the web process, without importing torch.

``workers.train`` loads its heavy modules only when one of their names is first used (its ``__getattr__``), so
importing ``workers.train.config`` — plain Python — costs the web process nothing beyond the standard library.
"""

from importlib import import_module
from types import ModuleType


def train_config_module() -> ModuleType:
    return import_module("workers.train.config")
