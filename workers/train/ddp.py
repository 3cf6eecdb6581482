"""Several processes, one run: DDP set-up inside the engine and ``launch`` to start it under torchrun.

Inside ``train`` every process takes its share of each step's examples (``StepPlan.batches``); the loss is
normalised by the step's target-token count over all processes, so the averaged gradient equals a single
process's on the same global batch. Rank 0 alone reports, evaluates-and-decides, saves and writes outputs;
the others follow its decisions (stop, early stop) through a broadcast.

``launch(config, n_procs, backend)`` runs

    python -m torch.distributed.run --standalone --nproc_per_node N -m workers.train.cli <output_dir>/train_config.json

reads rank 0's report lines from its output, calls ``report`` with them and, when that answers "stop",
creates ``<output_dir>/STOP``, which rank 0's report sees at its next call.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as torch_dist

from workers.train.config import ConfigError, TrainConfig, TrainError
from workers.train.report import Report, no_report

REPORT_PREFIX = "@@train-report "
STOP_FILE, ERROR_FILE, CONFIG_FILE = "STOP", "error.json", "train_config.json"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Dist:
    """This process's place in the run; a single process when torchrun did not start it."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owned: bool = False  # we initialised the process group, so we tear it down

    @property
    def main(self) -> bool:
        return self.rank == 0

    def _device(self) -> torch.device:
        return (
            torch.device("cuda", torch.cuda.current_device())
            if torch_dist.get_backend() == "nccl"
            else torch.device("cpu")
        )

    def sum(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self._device())
        torch_dist.all_reduce(t)
        return t.tolist()

    def agree(self, flag: bool) -> bool:
        """Rank 0's decision, for everyone."""
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self._device())
        torch_dist.broadcast(t, 0)
        return bool(t.item())

    def gather(self, obj) -> list:
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        torch_dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            torch_dist.barrier()

    def close(self) -> None:
        if self.owned and torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def setup() -> tuple[Dist, torch.device]:
    """Join the process group torchrun describes in the environment (if any) and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world == 1:
        return Dist(), device
    owned = not torch_dist.is_initialized()
    if owned:
        backend = os.environ.get("TRAIN_BACKEND") or ("nccl" if cuda else "gloo")
        torch_dist.init_process_group(backend=backend)
    return Dist(torch_dist.get_rank(), torch_dist.get_world_size(), local_rank, owned), device


def launch(
    config: TrainConfig,
    n_procs: int,
    backend: str | None = None,
    report: Report | None = None,
    *,
    resume: bool = False,
):
    """Run ``train`` in ``n_procs`` processes under torchrun and return rank 0's TrainResult.

    backend: "gloo" (CPU) or "nccl" (one GPU per process); None picks nccl when CUDA is available.
    ConfigError / TrainError raised by the run are raised here again with the same message.
    """
    from workers.train.outputs import TrainResult

    config.validate()
    if n_procs < 1:
        raise ConfigError({"n_procs": [f"must be at least 1 (got {n_procs})"]})
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in (STOP_FILE, ERROR_FILE):
        (out / stale).unlink(missing_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2))
    report = no_report if report is None else report
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n_procs}"]
    cmd += ["-m", "workers.train.cli", str(out / CONFIG_FILE)] + (["--resume"] if resume else [])
    env = dict(os.environ, PYTHONUNBUFFERED="1", TRAIN_BACKEND=backend or "")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    tail: collections.deque[str] = collections.deque(maxlen=40)
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    try:
        for line in proc.stdout:
            if line.startswith(REPORT_PREFIX):
                if report(**json.loads(line[len(REPORT_PREFIX) :])) == "stop":
                    (out / STOP_FILE).touch()
            else:
                tail.append(line.rstrip("\n"))
        code = proc.wait()
    except BaseException:  # the caller's report failed or we were interrupted: take the workers down with us
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        raise
    finally:
        proc.stdout.close()
    if code != 0:
        raise _child_error(out, code, tail)
    return TrainResult.read(out)


def _child_error(out: Path, code: int, tail) -> Exception:
    try:
        error = json.loads((out / ERROR_FILE).read_text())
    except (OSError, ValueError):
        return TrainError(f"training processes exited with code {code}:\n" + "\n".join(tail))
    if error.get("type") == "ConfigError":
        return ConfigError(error.get("problems") or {"config": [error["message"]]})
    return TrainError(error["message"])
