"""Fine-tune services: submit (validate and queue) in submit.py, run (on the gpu worker) in run.py; hyperparameter
studies (create, advance, prune, cancel) in study.py."""

from training_app.services.run import fine_tune_run
from training_app.services.study import (
    studies_advance_stalled,
    study_advance,
    study_cancel,
    study_create,
    study_should_prune,
    study_trial_finished,
)
from training_app.services.submit import fine_tune_config, fine_tune_submit

__all__ = [
    "fine_tune_config",
    "fine_tune_run",
    "fine_tune_submit",
    "studies_advance_stalled",
    "study_advance",
    "study_cancel",
    "study_create",
    "study_should_prune",
    "study_trial_finished",
]
