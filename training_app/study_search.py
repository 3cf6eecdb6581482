"""The search itself, without the database: search-space checks, optuna rebuilt from plain trial records (TPE for
the coarse phase, the median pruner), and the fine grid around the best coarse parameters.

Stateless on purpose: every decision builds a fresh in-memory optuna study from ``TrialRecord``s read from the
database, asks or prunes once, and throws it away. optuna is imported inside the functions so that the web
process pays for it only when a study decides something.
"""

import itertools
import math
from dataclasses import dataclass, field

KINDS = ("log_uniform", "uniform", "int", "choice")
KEYS = {
    "log_uniform": {"low", "high"},
    "uniform": {"low", "high"},
    "int": {"low", "high"},
    "choice": {"choices"},
}
FLOAT_KINDS = ("log_uniform", "uniform")


@dataclass
class TrialRecord:
    """One trial as optuna needs it. state: "complete", "pruned", "running" or "fail"."""

    number: int
    params: dict
    state: str
    value: float | None = None
    intermediate: dict[int, float] = field(default_factory=dict)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def spec_problems(spec, annotation: str) -> list[str]:
    """Problems of one parameter's range, given the TrainConfig field's annotation ("float", "int | None"…)."""
    if not isinstance(spec, dict):
        return ['must be an object such as {"type": "log_uniform", "low": 1e-5, "high": 1e-3}']
    kind = spec.get("type")
    if kind not in KINDS:
        return [f"type must be one of {', '.join(KINDS)} (got {kind!r})"]
    problems = []
    if extra := sorted(set(spec) - KEYS[kind] - {"type"}):
        problems.append(f"{kind} takes no {', '.join(extra)}")
    base = annotation.removesuffix("| None").strip()
    if kind == "choice":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            return [*problems, "choices must be a non-empty list"]
        if not all(v is None or isinstance(v, str | int | float | bool) for v in choices):
            problems.append("choices must be plain numbers, strings or booleans")
        elif len({repr(v) for v in choices}) != len(choices):
            problems.append("choices must be distinct")
        return problems
    low, high = spec.get("low"), spec.get("high")
    if not (_is_number(low) and _is_number(high)):
        return [*problems, "low and high must both be numbers"]
    if kind in FLOAT_KINDS and base != "float":
        problems.append(f"{kind} draws decimals but this setting is {base}; use int or choice")
    if kind == "int" and (low != int(low) or high != int(high)):
        problems.append("int ranges need whole low and high")
    if kind == "int" and base not in ("int", "float"):
        problems.append(f"this setting is {base}, not a number; use choice")
    if not low < high:
        problems.append(f"low must be below high (got {low} and {high})")
    if kind == "log_uniform" and not low > 0:
        problems.append(f"log_uniform needs a positive low (got {low})")
    return problems


def corners(space: dict) -> dict[str, list]:
    """Per parameter, the values whose validity stands for the whole range: the ends, or every choice."""
    return {name: spec["choices"] if spec["type"] == "choice" else [spec["low"], spec["high"]]
            for name, spec in space.items()}  # fmt: skip


def distributions(space: dict) -> dict:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for name, spec in space.items():
        kind = spec["type"]
        if kind == "choice":
            out[name] = CategoricalDistribution(spec["choices"])
        elif kind == "int":
            out[name] = IntDistribution(int(spec["low"]), int(spec["high"]))
        else:
            out[name] = FloatDistribution(float(spec["low"]), float(spec["high"]), log=kind == "log_uniform")
    return out


def params_of(space: dict, config: dict) -> dict:
    """A trial's searched values, read back from its engine config in the search space's own types."""
    params = {}
    for name, spec in space.items():
        value = config.get(name)
        params[name] = int(value) if spec["type"] == "int" and _is_number(value) else value
    return params


def _optuna_study(space: dict, records: list[TrialRecord], *, seed: int, startup: int = 1, pruner=None):
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    states = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED,
              "running": TrialState.RUNNING, "fail": TrialState.FAIL}  # fmt: skip
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
    dists = distributions(space)
    for record in sorted(records, key=lambda r: r.number):
        state = states[record.state]
        if state == TrialState.COMPLETE and record.value is None:
            state = TrialState.FAIL
        try:
            study.add_trial(create_trial(state=state, params=record.params, distributions=dists,
                                         value=record.value if state == TrialState.COMPLETE else None,
                                         intermediate_values=record.intermediate))  # fmt: skip
        except (
            ValueError
        ):  # params outside today's ranges (edited by hand): the sampler learns nothing from it
            continue
    return study


def next_coarse_params(space: dict, records: list[TrialRecord], *, seed: int, coarse_trials: int) -> dict:
    """TPE's next suggestion given every trial so far (running ones as constant liars). The seed moves with the
    trial count, so a rebuilt sampler does not repeat its random start-up draw."""
    startup = max(1, min(10, coarse_trials // 2))
    study = _optuna_study(space, records, seed=seed * 10_007 + len(records), startup=startup)
    return study.ask(distributions(space)).params


def should_prune(
    space: dict, others: list[TrialRecord], current: TrialRecord, *, startup_trials: int, warmup_steps: int
) -> bool:
    """optuna's MedianPruner: prune when this trial's best validation loss so far is worse than the median of the
    completed trials' values at its latest step."""
    from optuna.pruners import MedianPruner
    from optuna.trial import TrialState, create_trial

    pruner = MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_steps)
    study = _optuna_study(space, others, seed=0, pruner=pruner)
    if not current.intermediate:
        return False
    frozen = create_trial(state=TrialState.RUNNING, intermediate_values=current.intermediate)
    return bool(pruner.prune(study, frozen))


def _neighbours(spec: dict, value) -> list:
    kind = spec["type"]
    if kind == "choice":
        choices = spec["choices"]
        if value not in choices or not all(_is_number(c) for c in choices):
            return [value]
        ordered = sorted(choices)
        i = ordered.index(value)
        return [value] + [c for c in ordered[max(0, i - 1) : i + 2] if c != value]
    low, high = spec["low"], spec["high"]
    if kind == "log_uniform":
        around = [value * 0.5, value * 2]
    elif kind == "uniform":
        around = [value - (high - low) / 10, value + (high - low) / 10]
    else:
        around = [value - 1, value + 1]
    clipped = [min(max(v, low), high) for v in around]
    return list(dict.fromkeys([value] + [int(v) if kind == "int" else float(v) for v in clipped]))


def params_key(params: dict) -> tuple:
    return tuple(sorted((k, float(f"{v:.10g}") if _is_number(v) else repr(v)) for k, v in params.items()))


def fine_grid(space: dict, best: dict, *, done: list[dict], budget: int) -> list[dict]:
    """The grid around ``best`` (learning rates ×½ and ×2, neighbouring ints and choices), nearest points first
    (one parameter changed, then two…), without points already run, at most ``budget`` of them."""
    names = list(space)
    axes = [_neighbours(space[n], best[n]) for n in names]
    seen = {params_key(p) for p in done} | {params_key(best)}
    points = []
    for combo in itertools.product(*axes):
        point = dict(zip(names, combo, strict=True))
        if params_key(point) not in seen:
            seen.add(params_key(point))
            points.append(point)
    points.sort(key=lambda p: sum(p[n] != best[n] for n in names))  # stable: product order within a distance
    return points[: max(budget, 0)]
