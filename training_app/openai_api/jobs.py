"""POST /v1/fine_tuning/jobs: OpenAI's job request mapped onto fine_tune_submit (method "lora"), every problem of
the request reported at once under OpenAI's parameter names."""

import math

from django.core.exceptions import ValidationError

from datasets_app.models import DatasetVersion, VersionStatus
from registry_app.models import ModelVersion, RegisteredModel, VersionSource
from training_app.models import FineTuneJob
from training_app.openai_api.errors import invalid
from training_app.openai_api.objects import FILE_PREFIX, default_lr, number_of
from training_app.services import fine_tune_config, fine_tune_submit

AUTO = "auto"
OPENAI_TO_ENGINE = {"n_epochs": "epochs", "batch_size": "batch_size"}
# engine field (or service key) -> the request parameter a problem with it is reported under
PARAMS = {"base": "model", "dataset_version": "training_file", "epochs": "hyperparameters.n_epochs",
          "batch_size": "hyperparameters.batch_size", "lr": "hyperparameters.learning_rate_multiplier",
          "seed": "seed"}  # fmt: skip
KNOWN = {"model", "training_file", "validation_file", "hyperparameters", "method", "suffix", "seed", "metadata",
         "integrations", "portal_hyperparameters"}  # fmt: skip


def openai_job_create(*, user, data: dict) -> FineTuneJob:
    problems: list[tuple[str, str]] = []
    if not isinstance(data, dict):
        raise invalid([("", "the request body must be a JSON object")])
    problems += [(key, "is not a known parameter") for key in sorted(set(data) - KNOWN)]
    base = _base(data.get("model"), problems)
    version = _training_version(data.get("training_file"), "training_file", problems)
    if data.get("validation_file") is not None:
        _training_version(data["validation_file"], "validation_file", problems)
    hyper = _hyperparameters(data, problems)
    _check_extras(data, problems)
    if base is not None and version is not None:
        problems += _engine_problems(base, version, hyper)
    if problems:
        raise invalid(problems)
    try:
        return fine_tune_submit(
            user=user, base=base, dataset_version=version, method="lora", hyperparameters=hyper
        )
    except ValidationError as e:
        raise invalid(_problems(e)) from e


def _engine_problems(base: ModelVersion, version, hyper: dict) -> list[tuple[str, str]]:
    try:
        fine_tune_config(base=base, dataset_version=version, method="lora", hyperparameters=hyper,
                         output_dir="pending")  # fmt: skip
    except ValidationError as e:
        return _problems(e)
    return []


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    return [(_param(key), m) for key, msgs in error.message_dict.items() for m in msgs]


def _param(key: str) -> str:
    return PARAMS.get(key) or f"portal_hyperparameters.{key}"


def _base(name, problems) -> ModelVersion | None:
    """``name`` = the model's latest base version; ``name:vN`` = version N of that model."""
    if not isinstance(name, str) or not name.strip():
        problems.append(("model", "is required: a registered model name, or name:vN for one version"))
        return None
    versions = ModelVersion.objects.select_related("model")
    model_name, _, number = name.rpartition(":v")
    if model_name and number.isdigit() and len(number) < 10:
        found = versions.filter(model__name=model_name, number=int(number)).first()
    else:
        found = versions.filter(model__name=name, source=VersionSource.BASE).order_by("-number").first()
    if found is None:
        known = RegisteredModel.objects.filter(name=name).exists()
        reason = "has no base version" if known else "is not a registered model (see GET /v1/models)"
        problems.append(("model", f"{name!r} {reason}"))
    return found


def _training_version(file_id, param: str, problems) -> DatasetVersion | None:
    pk = number_of(file_id, FILE_PREFIX)
    version = DatasetVersion.objects.select_related("dataset").filter(pk=pk).first() if pk else None
    if version is None:
        problems.append(
            (param, f"no such file: {file_id!r}" if file_id else "is required: a file id (file-…)")
        )
    elif version.dataset.task_type != "chat":
        problems.append(
            (param, f"{file_id} holds {version.dataset.task_type} rows; fine-tuning needs chat rows")
        )
    elif version.status == VersionStatus.BUILDING:
        problems.append(
            (param, f"{file_id} is not processed yet (status uploaded); wait until it is processed")
        )
    elif version.status == VersionStatus.FAILED:
        problems.append((param, f"{file_id} could not be processed: {version.error}"))
    else:
        return version
    return None


def _hyperparameters(data: dict, problems) -> dict:
    """The engine's hyperparameters from OpenAI's (top level or method.supervised) and portal_hyperparameters."""
    portal = data.get("portal_hyperparameters") or {}
    if not isinstance(portal, dict):
        problems.append(("portal_hyperparameters", "must be an object of engine setting -> value"))
        portal = {}
    for key in sorted(set(portal) & set(PARAMS)):
        problems.append((f"portal_hyperparameters.{key}", f"set it as {PARAMS[key]}"))
    hyper = {k: v for k, v in portal.items() if k not in PARAMS}
    if data.get("seed") is not None:
        hyper["seed"] = data["seed"]
    for key, value in _openai_hyperparameters(data, problems).items():
        param = f"hyperparameters.{key}"
        if key not in (*OPENAI_TO_ENGINE, "learning_rate_multiplier"):
            problems.append(
                (param, "is not a known hyperparameter (n_epochs, batch_size, learning_rate_multiplier)")
            )
        elif value == AUTO:
            continue
        elif key == "learning_rate_multiplier":
            if _positive_number(value):
                hyper["lr"] = default_lr() * value
            else:
                problems.append((param, f'must be a positive number or "auto" (got {value!r})'))
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append((param, f'must be a whole number of at least 1 or "auto" (got {value!r})'))
        else:
            hyper[OPENAI_TO_ENGINE[key]] = value
    return hyper


def _positive_number(value) -> bool:
    return (
        not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value) and value > 0
    )


def _openai_hyperparameters(data: dict, problems) -> dict:
    top, method = data.get("hyperparameters"), data.get("method")
    nested = None
    if method is not None:
        if not isinstance(method, dict):
            problems.append(
                ("method", 'must be an object such as {"type": "supervised", "supervised": {...}}')
            )
        elif method.get("type") != "supervised":
            problems.append(
                ("method.type", f'only "supervised" fine-tuning is offered (got {method.get("type")!r})')
            )
        else:
            nested = (method.get("supervised") or {}).get("hyperparameters")
    if top is not None and nested is not None:
        problems.append(
            ("hyperparameters", "give hyperparameters or method.supervised.hyperparameters, not both")
        )
    chosen, where = (
        (nested, "method.supervised.hyperparameters") if nested is not None else (top, "hyperparameters")
    )
    if chosen is None:
        return {}
    if not isinstance(chosen, dict):
        problems.append((where, "must be an object"))
        return {}
    return chosen


def _check_extras(data: dict, problems) -> None:
    suffix, metadata, integrations = data.get("suffix"), data.get("metadata"), data.get("integrations")
    if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64):
        problems.append(("suffix", "must be text of at most 64 characters"))
    if metadata is not None and (not isinstance(metadata, dict) or len(metadata) > 16):
        problems.append(("metadata", "must be an object of at most 16 keys"))
    if integrations:
        problems.append(
            ("integrations", "are not offered by this portal; its job pages show the live curves")
        )
