"""Resumable checkpoints: everything the loop needs to go on exactly where it stopped, with no pickle.

Layout (one folder per saved step, newest ``keep`` kept):

    <output_dir>/checkpoints/step-00000040/
        tensors.safetensors   every tensor of the snapshot: trainable weights ("model/<name>"), optimizer
                              moments, SWA averages, RNG states
        state.json            the rest as JSON (step, epoch, position in the epoch's order, early-stopping and
                              loss history, scheduler / scaler counters); tensors appear as {"__t": key}

A snapshot is a nested dict of plain values and tensors; ``encode`` splits it into JSON plus named tensors and
``decode`` puts it back (int dict keys and tuples survive, which optimizer state dicts need). A folder is first
written as ``.tmp-step-…`` and then renamed, so a folder named ``step-…`` is always complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

PREFIX = "step-"
STATE, TENSORS = "state.json", "tensors.safetensors"


def encode(obj, tensors: dict[str, torch.Tensor], path: str = "r"):
    """JSON-able form of ``obj``; its tensors and numpy arrays go into ``tensors`` under unique keys."""
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__t": path}
    if isinstance(obj, np.ndarray):
        tensors[path] = torch.from_numpy(obj.astype(np.int64) if obj.dtype == np.uint32 else obj.copy())
        return {"__np": path, "dtype": str(obj.dtype)}
    if isinstance(obj, dict):
        items = [
            [encode(k, tensors, f"{path}.k{i}"), encode(v, tensors, f"{path}.{i}")]
            for i, (k, v) in enumerate(obj.items())
        ]
        return {"__d": items}
    if isinstance(obj, tuple):
        return {"__tuple": [encode(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, np.integer | np.floating):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"cannot checkpoint a {type(obj).__name__} at {path}")


def decode(obj, tensors: dict[str, torch.Tensor]):
    if isinstance(obj, list):
        return [decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__t" in obj:
            return tensors[obj["__t"]]
        if "__np" in obj:
            return tensors[obj["__np"]].numpy().astype(obj["dtype"])
        if "__tuple" in obj:
            return tuple(decode(v, tensors) for v in obj["__tuple"])
        return {decode(k, tensors): decode(v, tensors) for k, v in obj["__d"]}
    return obj


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``final`` in one rename."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        yield tmp
        tmp.chmod(0o755)
        if final.exists():  # re-saving the same step (cancelled right after a periodic save): swap
            old = Path(tempfile.mkdtemp(prefix=f".old-{final.name}-", dir=final.parent))
            os.replace(final, old / "x")
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save(root: Path, step: int, snapshot: dict, keep: int) -> Path:
    """Write ``snapshot`` as checkpoint ``step`` under ``root`` atomically, then drop all but the newest ``keep``."""
    final = root / f"{PREFIX}{step:08d}"
    tensors: dict[str, torch.Tensor] = {}
    state = encode(snapshot, tensors)
    with atomic_dir(final) as tmp:
        save_file(tensors, str(tmp / TENSORS))
        with open(tmp / STATE, "w") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
    for old in complete(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def complete(root: Path) -> list[Path]:
    """Finished checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / STATE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def latest(root: Path) -> Path | None:
    found = complete(root)
    return found[-1] if found else None


def load(path: Path) -> dict:
    tensors = load_file(str(path / TENSORS), device="cpu")
    return decode(json.loads((path / STATE).read_text()), tensors)


def rng_state() -> dict:
    import random

    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import random

    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
