"""The diagnostic job's body: sleep in small steps, reporting progress, stopping when told to."""

import time
from collections.abc import Callable

Report = Callable[..., str | None]


class Stopped(Exception):
    """The caller's report callback answered "stop"."""


def sleep_steps(
    seconds: float, report: Report, *, step_seconds: float = 0.1, fail_at_end: bool = False
) -> str:
    deadline = time.monotonic() + seconds
    step = 0
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(step_seconds, left))
        step += 1
        done = 1.0 - max(deadline - time.monotonic(), 0.0) / seconds
        if report(step=step, progress=done, message=f"slept {seconds * done:.1f} of {seconds:g} s") == "stop":
            raise Stopped(f"stopped after {step} steps")
    if fail_at_end:
        raise RuntimeError(f"diagnostic failure requested after {seconds:g} s")
    return f"slept {seconds:g} s"
