"""An OpenAI-compatible fine-tuning API under /v1/: files, fine_tuning.jobs (events, checkpoints, cancel) and models,
so the official ``openai`` client works against the portal with a portal API token as its api_key.

    client = openai.OpenAI(base_url="https://portal/v1", api_key="llmops_…")
    file = client.files.create(file=open("train.jsonl", "rb"), purpose="fine-tune")   # -> file-<version id>
    job = client.fine_tuning.jobs.create(model="tiny", training_file=file.id)         # -> ftjob-<job id>

Mapping onto the portal:
- a file is a chat dataset version: the upload becomes a SourceFile of a new dataset and is built (cpu queue) with
  a recipe that keeps the rows as written (no normalisation, dedup or degenerate filter; the admins' sensitive-word
  policy still applies; every row goes to train). ``file-<n>`` is DatasetVersion n, so any portal version can be
  named as a training file (GET /v1/files lists the chat ones).
  status: building -> uploaded, ready -> processed, failed -> error (status_details: the build's error).
- a job is a LoRA FineTuneJob. ``model`` is a registered model name (its latest base version) or ``name:vN``.
  n_epochs -> epochs, batch_size -> batch_size, learning_rate_multiplier x the engine's default lr, seed -> seed;
  "auto" keeps the engine default. Portal-only engine settings (max_steps, lora_r, max_seq_len, …) go in the
  extra body field ``portal_hyperparameters``. validation_file, suffix and metadata are checked but not used (the
  engine validates on the training version's own validation split, which an uploaded file does not have);
  integrations are refused.
- checkpoints are the resumable checkpoint folders of the run (training_app.selectors.job_checkpoints); the engine
  writes one every ``portal_hyperparameters.checkpoint_every`` steps (default 0: none) and keeps the newest
  ``keep_checkpoints``. Events: created, started, one per logged step (train loss), finished; newest first.
- a model is a ModelVersion, id ``<model name>:v<number>``; a job's fine_tuned_model is the version it registered.

Errors are OpenAI's {"error": {"message", "type", "param", "code"}}; a 400 that found several problems lists them
all in its message and, for programs, in the extra key ``problems`` [{"param", "message"}].
"""
