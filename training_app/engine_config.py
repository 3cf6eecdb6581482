"""The engine's TrainConfig for the web process, without importing torch.

``import workers.train.config`` runs ``workers/train/__init__.py`` first, which imports the whole engine (torch,
transformers). The web process only needs the dataclass and its validation (plain Python), so it loads config.py
on its own; a worker that has the engine imported already gets the real module.
"""

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_STANDALONE = "training_app._train_config"


def train_config_module() -> ModuleType:
    if "workers.train" in sys.modules:
        return importlib.import_module("workers.train.config")
    if _STANDALONE not in sys.modules:
        import workers

        path = Path(workers.__file__).parent / "train" / "config.py"
        spec = importlib.util.spec_from_file_location(_STANDALONE, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[_STANDALONE] = module  # dataclasses resolve string annotations through sys.modules
        spec.loader.exec_module(module)
    return sys.modules[_STANDALONE]
