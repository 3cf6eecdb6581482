"""What the engine tells its caller, and how it measures it.

``report(step=..., **metrics)`` is called every ``log_every`` optimizer steps, at every evaluation and at the
last step, on rank 0 only. It may return "stop" to cancel (the engine saves a checkpoint and returns
status "cancelled"). Metric names (all floats unless said):

    train_loss     mean token loss of the steps since the last report (classification: per example)
    val_loss       validation loss, only on steps that evaluated; val_accuracy too for classification
    lr             learning rate after the step
    grad_norm      global gradient norm before clipping, last step
    tokens_per_s   real (non-padding) input tokens per second since the last report, all processes
    tokens_seen    int, real input tokens trained on so far
    memory_mb      peak torch.cuda.max_memory_allocated on GPU, else peak process RSS
    gpu_util       NVML GPU utilisation in percent (GPU with pynvml only)
    epoch          fractional epochs done
    progress       step / total_steps, in [0, 1]
    eta_s          seconds left at this session's mean step time
    total_steps    int
"""

from __future__ import annotations

import functools
import resource
import sys
import time
from collections.abc import Callable

import torch

Report = Callable[..., str | None]


def no_report(**_metrics) -> None:
    return None


def memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


@functools.cache
def _nvml_handle(index: int):
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetHandleByIndex(index)
    except Exception:  # pynvml missing or NVML unavailable: the metric is optional
        return None


def gpu_util(device: torch.device) -> float | None:
    if device.type != "cuda" or (handle := _nvml_handle(device.index or 0)) is None:
        return None
    import pynvml

    try:
        return float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except Exception:
        return None


class Meter:
    """Loss, tokens and step time between two reports, and the session's mean step time for the ETA."""

    def __init__(self, start_step: int):
        self.session_start, self.session_step0 = time.perf_counter(), start_step
        self._reset()

    def _reset(self) -> None:
        self.loss_sum, self.loss_weight, self.tokens, self.seconds = 0.0, 0.0, 0, 0.0

    def add(self, loss: float, weight: float, tokens: int, seconds: float) -> None:
        """One optimizer step: its mean loss, the targets it averaged over, its input tokens and duration."""
        self.loss_sum += loss * weight
        self.loss_weight += weight
        self.tokens += tokens
        self.seconds += seconds

    def flush(self, step: int, total_steps: int) -> dict:
        now = time.perf_counter()
        done = step - self.session_step0
        per_step = (now - self.session_start) / done if done else 0.0
        out = {
            "train_loss": self.loss_sum / self.loss_weight if self.loss_weight else None,
            "tokens_per_s": self.tokens / max(self.seconds, 1e-9),  # training steps only, not evaluation
            "eta_s": per_step * (total_steps - step),
        }
        self._reset()
        return out
