"""Settings, all from the environment. A bad value stops the process at start with a clear message.

Embedded default (nothing set): SQLite and artifacts under ``ILIAD_HOME`` (default ``./var``), broker
and channel layer on the Redis-protocol server that ``python -m iliad_portal.embedded`` starts.
Production: set ``DATABASE_URL``, ``REDIS_URL`` (and optionally ``CELERY_BROKER_URL`` for RabbitMQ),
``ILIAD_SECRET_KEY``, ``ILIAD_ALLOWED_HOSTS``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
import plotly
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true or false)")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


ILIAD_HOME = Path(os.environ.get("ILIAD_HOME") or BASE_DIR / "var").resolve()
ILIAD_HOME.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    if os.environ.get("ILIAD_SECRET_KEY"):
        return os.environ["ILIAD_SECRET_KEY"]
    key_file = ILIAD_HOME / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = envbool("ILIAD_DEBUG", False)
ALLOWED_HOSTS = envlist("ILIAD_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = envlist("ILIAD_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served locally: the docs work offline
    "channels",
    "apps.accounts",
    "apps.catalog",
    "apps.pipelines",
    "apps.runs",
    "apps.gallery",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "iliad_portal.urls"
ASGI_APPLICATION = "iliad_portal.asgi.application"
WSGI_APPLICATION = None

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
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{ILIAD_HOME / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Web server and worker processes write concurrently: WAL lets readers go on during a write,
        # IMMEDIATE takes the write lock up front so two writers wait instead of deadlocking.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(ILIAD_HOME / "test-db.sqlite3")}
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # plotly.js for figure previews, served from the plotly package so it always matches it
    ("plotly", Path(plotly.__file__).parent / "package_data"),
]
STATIC_ROOT = ILIAD_HOME / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- artifacts and blocks -------------------------------------------------------------------------
ILIAD_ARTIFACT_ROOT = Path(os.environ.get("ILIAD_ARTIFACT_ROOT") or ILIAD_HOME / "artifacts").resolve()
ILIAD_DATA_DIR = Path(os.environ.get("ILIAD_DATA_DIR") or ILIAD_HOME / "data").resolve()
ILIAD_DEMO_USERNAME = os.environ.get("ILIAD_DEMO_USERNAME", "demo")
ILIAD_MAX_PIPELINE_BYTES = envint("ILIAD_MAX_PIPELINE_BYTES", 1_000_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = ILIAD_MAX_PIPELINE_BYTES + 64 * 1024

# --- broker, channel layer ------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL or "redis://127.0.0.1:6379/0"
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes the database connection around every task unless told to reuse it;
# reconnecting costs ~5 ms per step on PostgreSQL. Health checks replace a connection that broke.
CELERY_DB_REUSE_MAX = 1000
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": envint("ILIAD_VISIBILITY_TIMEOUT_S", 6 * 3600)}
CELERY_BEAT_SCHEDULE = {
    "requeue-lost-steps": {"task": "runs.requeue_lost_steps", "schedule": 60.0},
    "recover-stalled-steps": {"task": "runs.recover_stalled_steps", "schedule": 30.0},
}
ILIAD_REQUEUE_AFTER_S = envint("ILIAD_REQUEUE_AFTER_S", 300)
# A worker running a step refreshes its heartbeat this often; a running step not heard from for
# ILIAD_STALL_AFTER_S lost its worker and is run again, up to ILIAD_MAX_ATTEMPTS claims in all.
ILIAD_HEARTBEAT_S = envint("ILIAD_HEARTBEAT_S", 15)
ILIAD_STALL_AFTER_S = envint("ILIAD_STALL_AFTER_S", 120)
ILIAD_MAX_ATTEMPTS = envint("ILIAD_MAX_ATTEMPTS", 3)
if ILIAD_HEARTBEAT_S < 1 or ILIAD_MAX_ATTEMPTS < 1:
    raise ImproperlyConfigured("ILIAD_HEARTBEAT_S and ILIAD_MAX_ATTEMPTS must be at least 1")
if ILIAD_STALL_AFTER_S < 2 * ILIAD_HEARTBEAT_S:
    raise ImproperlyConfigured(
        f"ILIAD_STALL_AFTER_S={ILIAD_STALL_AFTER_S} must be at least twice ILIAD_HEARTBEAT_S="
        f"{ILIAD_HEARTBEAT_S}, or a live worker's step would be taken away from it"
    )
# A running step is failed (WalltimeExceeded) once it has run this long past its block's walltime
# without stopping by itself (blocks stop at their first progress report after it).
ILIAD_WALLTIME_GRACE_S = envint("ILIAD_WALLTIME_GRACE_S", 60)
if ILIAD_WALLTIME_GRACE_S < 0:
    raise ImproperlyConfigured(f"ILIAD_WALLTIME_GRACE_S={ILIAD_WALLTIME_GRACE_S} must not be negative")
# A worker that finishes a step goes on with one step it made ready, up to this many per task,
# instead of a broker round trip per step of a chain (1 = always through the broker).
ILIAD_LOCAL_STEPS = envint("ILIAD_LOCAL_STEPS", 50)

CHANNEL_LAYERS = {
    "default": (
        {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
        if REDIS_URL
        else {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    )
}

# --- API ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "iliad_portal.api_pagination.StrictLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_PARSER_CLASSES": [
        "iliad_portal.api_parsers.LimitedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "iliad_portal.api_errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Iliad Portal API",
    "DESCRIPTION": "Compose ocean digital-twin pipelines from service blocks and run them.",
    "VERSION": "0.1.0",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("ILIAD_LOG_LEVEL", "INFO")},
}
