"""All settings, from the environment through small typed helpers, with working local defaults.

Local default: DEBUG on, SQLite under var/, Redis on loopback. Production (DEBUG=0) refuses to start without
SECRET_KEY and ALLOWED_HOSTS and says which variable is missing.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_path(name: str, default: Path) -> Path:
    raw = os.environ.get(name)
    return Path(raw).resolve() if raw else default


DEBUG = env_bool("DEBUG", True)
VAR_DIR = env_path("VAR_DIR", BASE_DIR / "var")

_missing = [name for name in ("SECRET_KEY", "ALLOWED_HOSTS") if not DEBUG and not os.environ.get(name)]
if _missing:
    raise ImproperlyConfigured(
        f"DEBUG is off, so these environment variables must be set: {', '.join(_missing)}"
    )

SECRET_KEY = env_str("SECRET_KEY", "dev-only-insecure-key-change-me")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "llmops",
    "datasets_app",
    "training_app",
    "evaluation_app",
    "registry_app",
    "demo_app",
]

MIDDLEWARE = [
    "llmops.observability.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "llmops.urls"
WSGI_APPLICATION = "llmops.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "llmops.context_processors.navigation",
            ],
            "builtins": ["template_partials.templatetags.partials"],
        },
    },
]

# --- database -------------------------------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL + busy timeout + IMMEDIATE transactions: the web process and the worker write side by side.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- auth -----------------------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- i18n, static, uploads ------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_path("STATIC_ROOT", VAR_DIR / "static")
WHITENOISE_USE_FINDERS = DEBUG  # DEBUG serves straight from the app folders; production from collectstatic
if DEBUG:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every start when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
ARTIFACT_ROOT = env_path("ARTIFACT_ROOT", VAR_DIR / "artifacts")
# Folders a web or API user may name: a base model to register, a tokenizer for a recipe (never any server path)
MODEL_IMPORT_ROOTS = env_list("MODEL_IMPORT_ROOTS", [str(VAR_DIR / "models")])  # ARTIFACT_ROOT counts too
# The Hugging Face hub that hub ids resolve against (a mirror or a private hub works too), and its token if any
HF_ENDPOINT = env_str("HF_ENDPOINT", "https://huggingface.co")
HF_TOKEN = env_str("HF_TOKEN", "")
MEDIA_ROOT = env_path("MEDIA_ROOT", VAR_DIR / "media")
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = env_int("FILE_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024)
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 512 * 1024 * 1024)
IMPORT_INLINE_MAX_BYTES = env_int(
    "IMPORT_INLINE_MAX_BYTES", 2 * 1024 * 1024
)  # larger imports run on a cpu worker
IMPORT_MAX_LINE_BYTES = env_int("IMPORT_MAX_LINE_BYTES", 1024 * 1024)
PII_SCRUB_DEFAULT = env_bool("PII_SCRUB_DEFAULT", True)
NEAR_DUP_THRESHOLD = env_float("NEAR_DUP_THRESHOLD", 0.8)
# fine-tune metric points are buffered and written with one INSERT every N points or T seconds
TRAINING_METRIC_BATCH_SIZE = env_int("TRAINING_METRIC_BATCH_SIZE", 500)
TRAINING_METRIC_FLUSH_SECONDS = env_float("TRAINING_METRIC_FLUSH_SECONDS", 5.0)
# The submit form's cost-benefit estimate: training tokens per second per GPU, and the price of a GPU-hour.
TRAINING_TOKENS_PER_SECOND_ESTIMATE = env_float("TRAINING_TOKENS_PER_SECOND_ESTIMATE", 2000.0)
TRAINING_PRICE_PER_GPU_HOUR = env_float("TRAINING_PRICE_PER_GPU_HOUR", 2.0)
# Evaluation. After a fine-tune succeeds, its version and its base are scored on this split of the fine-tune's
# dataset version and compared ("" turns the automatic evaluation off).
EVAL_AUTO_SPLIT = env_str("EVAL_AUTO_SPLIT", "test")
EVAL_AUTO_SUITES = env_list("EVAL_AUTO_SUITES", ["task", "rules", "robustness", "efficiency"])
EVAL_AUTO_MAX_NEW_TOKENS = env_int("EVAL_AUTO_MAX_NEW_TOKENS", 128)
EVAL_FORGETTING_THRESHOLD = env_float("EVAL_FORGETTING_THRESHOLD", 0.05)  # general-pack drop flagged (0..1)
EVAL_BOOTSTRAP_RESAMPLES = env_int("EVAL_BOOTSTRAP_RESAMPLES", 2000)
EVAL_NOISE_RATE = env_float("EVAL_NOISE_RATE", 0.05)  # share of characters edited by the robustness suite

# Compression: what the gpu queue's workers can do (checked before a job is queued), and how results are measured.
GPU_WORKERS_CUDA = env_bool("GPU_WORKERS_CUDA", False)  # the gpu queue's workers have a CUDA GPU
GPU_WORKERS_INT4_CPU_KERNEL = env_bool("GPU_WORKERS_INT4_CPU_KERNEL", False)  # torchao INT4 on CPU (mslk)
GPU_WORKERS_BITSANDBYTES = env_bool("GPU_WORKERS_BITSANDBYTES", False)
COMPRESSION_BENCH_ROUNDS = env_int(
    "COMPRESSION_BENCH_ROUNDS", 3
)  # source and result alternate, fresh processes
COMPRESSION_BENCH_REPEATS = env_int("COMPRESSION_BENCH_REPEATS", 20)  # timed batches per batch size and round
COMPRESSION_BENCH_MAX_NEW_TOKENS = env_int("COMPRESSION_BENCH_MAX_NEW_TOKENS", 16)

# Serving gateway (/v1/chat/completions, /v1/completions). Models load lazily into a bounded LRU cache in the
# serving process; adapters share their base's weights. Deterministic answers (temperature 0) are cached in Redis.
GATEWAY_MODEL_CACHE_SIZE = env_int("GATEWAY_MODEL_CACHE_SIZE", 2)  # resident models (bases and full versions)
GATEWAY_DEVICE = env_str("GATEWAY_DEVICE", "")  # "" picks cuda when present, else cpu
GATEWAY_MAX_NEW_TOKENS = env_int("GATEWAY_MAX_NEW_TOKENS", 512)  # cap on max_tokens per request
GATEWAY_RESPONSE_CACHE_TTL = env_int("GATEWAY_RESPONSE_CACHE_TTL", 3600)  # seconds; 0 turns the cache off
GATEWAY_LOG_SAMPLE_RATE = env_float(
    "GATEWAY_LOG_SAMPLE_RATE", 1.0
)  # share of requests whose content is logged
GATEWAY_FEEDBACK_WINDOW = env_int(
    "GATEWAY_FEEDBACK_WINDOW", 7 * 24 * 3600
)  # seconds an answer can get feedback
EXPORT_ROOT = env_path(
    "EXPORT_ROOT", ARTIFACT_ROOT / "exports"
)  # merged folders, ONNX files, Triton repositories

# --- security (production mode) -------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
    if env_bool("USE_X_FORWARDED_PROTO", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- REST API -------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "llmops.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["llmops.roles.RolePermission"],
    "DEFAULT_SCHEMA_CLASS": "llmops.schema.ViewNamedAutoSchema",
    "EXCEPTION_HANDLER": "llmops.api_errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LLMOps Portal API",
    "DESCRIPTION": "Error notebook, datasets, fine-tuning, evaluation, registry and serving.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # one name per choice set that several apps call alike (task_type, status)
    "ENUM_NAME_OVERRIDES": {
        "CaseTaskTypeEnum": "datasets_app.models.cases.TaskType",
        "DatasetTaskTypeEnum": "datasets_app.models.datasets.DatasetTask",
        "CaseStatusEnum": "datasets_app.models.cases.CaseStatus",
        "JobStatusEnum": "llmops.jobs.JobStatus",
        "VersionStatusEnum": "datasets_app.models.datasets.VersionStatus",
        "ImportSourceEnum": "registry_app.models.ImportSource",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["llmops.roles.RolePermission"],
}

# --- Celery and jobs ------------------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = False
# Celery's Django fixup closes every DB connection around each task unless this is set: a new PostgreSQL
# connection per task cost ~10 ms of dispatch latency (bench/dispatch.py). llmops/celery.py instead recycles
# connections the way Django does per request (CONN_MAX_AGE + health checks).
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)
# A redelivered long job is guarded by the job row (see llmops/jobs.py), so the timeout may be shorter than a job.
# Ten priority lists per queue, served lowest number first (llmops.jobs.broker_priority maps a job's priority).
# kombu's default separator is kept: every client of the broker (a ping from another app, a worker on another
# host) must split the exchange binding tables with the same one.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
    "priority_steps": list(range(10)),
    "queue_order_strategy": "priority",
}
CELERY_BEAT_SCHEDULE = {
    "reap-stale-jobs": {
        "task": "llmops.reap_stale_jobs",
        "schedule": env_float("JOB_REAPER_EVERY_SECONDS", 30.0),
        "options": {"queue": "cpu", "expires": 60},
    },
    "advance-stalled-studies": {
        "task": "training.advance_stalled_studies",
        "schedule": env_float("STUDY_ADVANCE_EVERY_SECONDS", 60.0),
        "options": {"queue": "cpu", "expires": 120},
    },
}
JOB_HEARTBEAT_SECONDS = env_float("JOB_HEARTBEAT_SECONDS", 2.0)
JOB_STALE_AFTER_SECONDS = env_float("JOB_STALE_AFTER_SECONDS", 60.0)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3)
JOB_RESEND_QUEUED_AFTER_SECONDS = env_float("JOB_RESEND_QUEUED_AFTER_SECONDS", 900.0)

# --- ops ------------------------------------------------------------------------------------------------------
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
LOG_FORMAT = env_str("LOG_FORMAT", "text" if DEBUG else "json")
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "llmops.observability.ContextFilter"}},
    "formatters": {
        "json": {"()": "llmops.observability.JsonFormatter"},
        "text": {
            "format": "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s job=%(job_id)s] %(message)s"
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "celery": {"level": LOG_LEVEL},
    },
}
