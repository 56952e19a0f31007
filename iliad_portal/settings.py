"""Settings, all from the environment. A bad value stops the process at start with a clear message.

Embedded default (nothing set): SQLite and artifacts under ``ILIAD_HOME`` (default ``./var``), broker
and channel layer on the Redis-protocol server that ``python -m iliad_portal.embedded`` starts.
Production: set ``DATABASE_URL``, ``REDIS_URL`` (and optionally ``CELERY_BROKER_URL`` for RabbitMQ),
``ILIAD_SECRET_KEY`` (required with a shared database), ``ILIAD_ALLOWED_HOSTS``, and ``ILIAD_HTTPS=true``
behind HTTPS (``manage.py check --deploy`` then passes).
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
import plotly
from csp.constants import NONE, SELF, UNSAFE_INLINE
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


def envrate(name: str, default: str) -> str:
    """A rate limit such as ``120/minute`` (per second, minute, hour or day)."""
    value = os.environ.get(name) or default
    count, _, period = value.partition("/")
    if not count.isdigit() or period not in ("second", "minute", "hour", "day", "s", "m", "h", "d"):
        raise ImproperlyConfigured(f"{name}={value!r} is not a rate: use e.g. 120/minute or 2000/hour")
    return value


ILIAD_HOME = Path(os.environ.get("ILIAD_HOME") or BASE_DIR / "var").resolve()
ILIAD_HOME.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    if os.environ.get("ILIAD_SECRET_KEY"):
        return os.environ["ILIAD_SECRET_KEY"]
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url and not database_url.startswith("sqlite"):
        # A shared database means several processes, often on several machines: each would invent
        # its own key, and sessions, CSRF tokens and signed links would break between them.
        raise ImproperlyConfigured(
            "ILIAD_SECRET_KEY is not set, but DATABASE_URL names a shared database: every web replica "
            "would invent its own secret key and sign-ins would not hold across them. Set ILIAD_SECRET_KEY "
            "to one long random string for all processes, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
        )
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
    "axes",  # sign-in throttling: see "sign-in throttling" below
    "csp",
    "apps.accounts",
    "apps.catalog",
    "apps.pipelines",
    "apps.runs",
    "apps.gallery",
    "apps.projects",
    "apps.compute",
    "apps.collab",
    "apps.feedback",
    "apps.workshops",
    "apps.dataspaces",
    "apps.delivery",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "iliad_portal.api_errors.RefuseNulInPath",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a refused sign-in into the lock-out page
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
ILIAD_DB_IDLE_IN_TRANSACTION_S = envint("ILIAD_DB_IDLE_IN_TRANSACTION_S", 20)  # PostgreSQL, see below
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Web server and worker processes write concurrently: WAL lets readers go on during a write,
        # IMMEDIATE takes the write lock up front so two writers wait instead of deadlocking.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(ILIAD_HOME / "test-db.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A process frozen inside a transaction (stopped, suspended VM) would hold its rows locked for ever,
    # and with them the take-back of its steps: the server ends such a session. The embedded SQLite
    # gives up on a lock after 30 s, so no transaction of ours idles anywhere near this long.
    DATABASES["default"]["OPTIONS"] = {
        "options": f"-c idle_in_transaction_session_timeout={ILIAD_DB_IDLE_IN_TRANSACTION_S * 1000}",
    }
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out sign-in before any other backend
    "apps.accounts.oidc.backends.LocalPasswordBackend",  # ModelBackend, off with ILIAD_LOCAL_LOGIN=false
    "apps.accounts.oidc.backends.OIDCBackend",  # "federated sign-in" below
]
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
# The artifact store (blocks.store): empty = the directory ILIAD_ARTIFACT_ROOT; s3://bucket/prefix = an
# S3-compatible bucket shared by every machine, ILIAD_ARTIFACT_ROOT being this machine's cache of it.
ILIAD_ARTIFACT_STORE = os.environ.get("ILIAD_ARTIFACT_STORE", "")
ILIAD_ARTIFACT_STORE_OPTIONS = {
    key: os.environ.get(f"ILIAD_ARTIFACT_STORE_{key.upper()}") or None
    for key in ("endpoint_url", "region", "access_key_id", "secret_access_key", "session_token")
}
try:
    from blocks.store import ObjectStore as _ObjectStore

    _ObjectStore.from_settings(ILIAD_ARTIFACT_STORE, ILIAD_ARTIFACT_STORE_OPTIONS)
except ValueError as _error:
    raise ImproperlyConfigured(str(_error)) from None
# Data spaces (apps.dataspaces): remote files are copied here to be described and previewed, up to
# ILIAD_DESCRIBE_MAX_MB each; the data browser warns before a user picks a file above ILIAD_SIZE_WARNING_MB.
ILIAD_DATASPACE_CACHE_DIR = Path(
    os.environ.get("ILIAD_DATASPACE_CACHE_DIR") or ILIAD_HOME / "cache" / "dataspaces").resolve()
ILIAD_DESCRIBE_MAX_MB = envint("ILIAD_DESCRIBE_MAX_MB", 200)
ILIAD_SIZE_WARNING_MB = envint("ILIAD_SIZE_WARNING_MB", 1000)
# Fernet key (urlsafe base64, 32 bytes) for data-space credentials; derived from SECRET_KEY when empty.
ILIAD_SECRETS_KEY = os.environ.get("ILIAD_SECRETS_KEY", "")
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
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": envint("ILIAD_VISIBILITY_TIMEOUT_S", 6 * 3600),
    # A broker that is down refuses at once; one that does not answer must not hang a request.
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "health_check_interval": 10,
}
# Broker outages (the embedded server being restarted by `make run`, a Redis failover): a worker
# keeps reconnecting instead of exiting after 100 attempts, and a publish rides out a restart of a
# second or two instead of leaving the step for the periodic re-dispatch (ILIAD_REQUEUE_AFTER_S).
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 4, "interval_start": 0, "interval_step": 0.5, "interval_max": 1,
}  # fmt: skip
CELERY_BEAT_SCHEDULE = {
    "requeue-lost-steps": {"task": "runs.requeue_lost_steps", "schedule": 60.0},
    # also polls the targets that do not report by themselves (Slurm), every ILIAD_RECONCILE_S seconds
    "recover-stalled-steps": {
        "task": "runs.recover_stalled_steps", "schedule": float(envint("ILIAD_RECONCILE_S", 5)),
    },
}
ILIAD_REQUEUE_AFTER_S = envint("ILIAD_REQUEUE_AFTER_S", 300)
# --- delivery of results to data spaces (apps.delivery) -------------------------------------------
# A delivery that fails for a reason that may pass (server down, space full) is tried again after
# ILIAD_DELIVERY_RETRY_S seconds, doubling each time up to ILIAD_DELIVERY_RETRY_MAX_S, at most
# ILIAD_DELIVERY_ATTEMPTS times in all; then it is failed and can be delivered again from the run page.
ILIAD_DELIVERY_ATTEMPTS = envint("ILIAD_DELIVERY_ATTEMPTS", 6)
ILIAD_DELIVERY_RETRY_S = envint("ILIAD_DELIVERY_RETRY_S", 30)
ILIAD_DELIVERY_RETRY_MAX_S = envint("ILIAD_DELIVERY_RETRY_MAX_S", 900)
# Every minute, deliveries whose task was lost for ILIAD_DELIVERY_RESUME_AFTER_S are sent again, and
# those left "delivering" for ILIAD_DELIVERY_STALL_AFTER_S (their worker died) are tried again.
ILIAD_DELIVERY_RESUME_AFTER_S = envint("ILIAD_DELIVERY_RESUME_AFTER_S", 300)
ILIAD_DELIVERY_STALL_AFTER_S = envint("ILIAD_DELIVERY_STALL_AFTER_S", 3600)
if (ILIAD_DELIVERY_ATTEMPTS < 1 or ILIAD_DELIVERY_RETRY_S < 0
        or ILIAD_DELIVERY_RETRY_MAX_S < ILIAD_DELIVERY_RETRY_S):
    raise ImproperlyConfigured("ILIAD_DELIVERY_ATTEMPTS must be at least 1 and 0 <= ILIAD_DELIVERY_RETRY_S "
                               "<= ILIAD_DELIVERY_RETRY_MAX_S")
CELERY_BEAT_SCHEDULE["resume-due-deliveries"] = {"task": "delivery.resume_due", "schedule": 60.0}
# --- compute targets (apps.compute) ---------------------------------------------------------------
# Secret options of targets are encrypted with this Fernet key (else one derived from SECRET_KEY);
# after a change, keep the former keys in ILIAD_TARGET_SECRETS_OLD_KEYS (comma-separated) and run
# `manage.py compute_rotate_secrets`.
ILIAD_TARGET_SECRETS_KEY = os.environ.get("ILIAD_TARGET_SECRETS_KEY", "")
ILIAD_TARGET_SECRETS_OLD_KEYS = envlist("ILIAD_TARGET_SECRETS_OLD_KEYS", "")
# RQ targets use the Redis of their config's "redis_url", else this one; a job may run this many
# seconds past its step's walltime before RQ kills its work horse.
ILIAD_RQ_REDIS_URL = os.environ.get("ILIAD_RQ_REDIS_URL") or REDIS_URL or "redis://127.0.0.1:6379/0"
ILIAD_RQ_TIMEOUT_GRACE_S = envint("ILIAD_RQ_TIMEOUT_GRACE_S", 120)
# A worker running a step refreshes its heartbeat this often; a running step not heard from for
# ILIAD_STALL_AFTER_S lost its worker and is run again, up to ILIAD_MAX_ATTEMPTS claims in all.
# A redelivered message of a running step (Celery redelivers the task of a killed pool process at
# once) takes the step over after 3 silent beats; the periodic recovery (every 5 s) after the stall.
ILIAD_HEARTBEAT_S = envint("ILIAD_HEARTBEAT_S", 2)
ILIAD_STALL_AFTER_S = envint("ILIAD_STALL_AFTER_S", 10)
ILIAD_MAX_ATTEMPTS = envint("ILIAD_MAX_ATTEMPTS", 3)
# A compute target that refuses a launch with a transient error is tried again after a back-off
# (5 s, doubling, at most 5 min); the step fails with the target's message after this many refusals,
# or at once for a permanent refusal.
ILIAD_MAX_LAUNCH_ATTEMPTS = envint("ILIAD_MAX_LAUNCH_ATTEMPTS", 5)
# Polled targets (local processes, Slurm): a job the backend has no record of for this long is lost.
ILIAD_POLL_UNKNOWN_GRACE_S = envint("ILIAD_POLL_UNKNOWN_GRACE_S", 60)
# Run every step's block in an isolated child process (apps.compute.isolation), whatever its target.
ILIAD_ISOLATE_STEPS = envbool("ILIAD_ISOLATE_STEPS", False)
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
# PostgreSQL: the transactions that claim and finish steps commit without waiting for the WAL flush
# (synchronous_commit=off; the same durability as the embedded SQLite's WAL with synchronous=NORMAL).
# A crash of the database server may then lose the last fraction of a second of step records, never
# consistency: those steps look like a lost worker's and the stall recovery runs them again. True
# waits for the flush (a few ms per step on a slow disk).
ILIAD_SYNCHRONOUS_STEP_COMMIT = envbool("ILIAD_SYNCHRONOUS_STEP_COMMIT", False)

# --- per-user limits and fair sharing of the workers ----------------------------------------------
# What one account may hold at once (0 = no limit). Over a limit, the API answers 429 (409 for
# storage) naming the limit, and the pages say the same. Storage counts the results of one's runs.
ILIAD_LIMIT_ACTIVE_RUNS = envint("ILIAD_LIMIT_ACTIVE_RUNS", 10)
ILIAD_LIMIT_QUEUED_STEPS = envint("ILIAD_LIMIT_QUEUED_STEPS", 200)
ILIAD_LIMIT_PIPELINES = envint("ILIAD_LIMIT_PIPELINES", 500)
ILIAD_LIMIT_STORAGE_MB = envint("ILIAD_LIMIT_STORAGE_MB", 10240)
# Steps of one user at the broker or running at once (0 = no cap). The others stay queued without
# being dispatched, and go out as that user's steps end, so one user's backlog never stands in
# front of another user's run. Set it to about the number of worker processes.
ILIAD_FAIR_STEPS_PER_USER = envint("ILIAD_FAIR_STEPS_PER_USER", 4)
for _name in (
    "ILIAD_LIMIT_ACTIVE_RUNS", "ILIAD_LIMIT_QUEUED_STEPS", "ILIAD_LIMIT_PIPELINES", "ILIAD_LIMIT_STORAGE_MB",
    "ILIAD_FAIR_STEPS_PER_USER",
):
    if globals()[_name] < 0:
        raise ImproperlyConfigured(f"{_name}={globals()[_name]} must not be negative (0 means no limit)")
del _name
CELERY_BEAT_SCHEDULE["dispatch-held-steps"] = {"task": "runs.dispatch_held_steps", "schedule": 15.0}

# A WebSocket consumer waits for its next message with a blocking BZPOPMIN of 5 s; redis-py 8's
# default socket timeout is also 5 s, which turned every quiet moment of a run into a TimeoutError
# that closed its live listeners. The read timeout must exceed that wait; 30 s still notices a dead
# connection (a `?socket_timeout=` in REDIS_URL overrides it).
CHANNEL_LAYERS = {
    "default": (
        {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
        }
        if REDIS_URL
        else {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    )
}

# --- client addresses, cache ----------------------------------------------------------------------
# Sign-in lock-outs and API limits count per client address. Behind a reverse proxy every request
# comes from the proxy; with ILIAD_TRUST_X_FORWARDED_FOR=true the address is read from
# X-Forwarded-For instead, as the outermost of ILIAD_PROXY_COUNT proxies saw it (the entries left of it
# are whatever the client wrote). Never turn it on without a proxy: clients could pick their address.
ILIAD_TRUST_X_FORWARDED_FOR = envbool("ILIAD_TRUST_X_FORWARDED_FOR", False)
ILIAD_PROXY_COUNT = envint("ILIAD_PROXY_COUNT", 1)
if ILIAD_PROXY_COUNT < 1:
    raise ImproperlyConfigured(f"ILIAD_PROXY_COUNT={ILIAD_PROXY_COUNT} must be at least 1")
# API rate limits are counted in the cache: on the Redis server when there is one, so that the limits
# hold across web processes and replicas; in process memory otherwise.
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "iliad",
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- API ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.ApiTokenAuthentication",
        "apps.accounts.oidc.authentication.OIDCBearerAuthentication",
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
    # Requests per signed-in user, per address for anonymous ones; "token_failure" limits failed
    # `Authorization: Token` attempts per address (apps/accounts/throttling.py). Over a limit: 429
    # with Retry-After.
    "DEFAULT_THROTTLE_CLASSES": [
        "apps.accounts.throttling.UserRateThrottle",
        "apps.accounts.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": envrate("ILIAD_API_RATE_USER", "240/minute"),
        "anon": envrate("ILIAD_API_RATE_ANON", "60/minute"),
        "token_failure": envrate("ILIAD_API_RATE_TOKEN_FAILURES", "30/hour"),
    },
    "NUM_PROXIES": ILIAD_PROXY_COUNT if ILIAD_TRUST_X_FORWARDED_FOR else 0,
}
# Personal API tokens: a new one lives ILIAD_API_TOKEN_DAYS unless its maker picks another lifetime, at
# most ILIAD_API_TOKEN_MAX_DAYS.
ILIAD_API_TOKEN_DAYS = envint("ILIAD_API_TOKEN_DAYS", 90)
ILIAD_API_TOKEN_MAX_DAYS = envint("ILIAD_API_TOKEN_MAX_DAYS", 365)
if not 1 <= ILIAD_API_TOKEN_DAYS <= ILIAD_API_TOKEN_MAX_DAYS:
    raise ImproperlyConfigured("ILIAD_API_TOKEN_DAYS must be between 1 and ILIAD_API_TOKEN_MAX_DAYS")
SPECTACULAR_SETTINGS = {
    "TITLE": "Iliad Portal API",
    "DESCRIPTION": "Compose ocean digital-twin pipelines from service blocks and run them.",
    "VERSION": "0.1.0",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # Request bodies are documented as JSON, the API's format (forms are parsed too, for the browsable
    # API, but not promised).
    "PARSER_WHITELIST": ["iliad_portal.api_parsers.LimitedJSONParser"],
    # Every operation's error statuses in the one error shape (iliad_portal/openapi.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "iliad_portal.openapi.add_error_responses",
    ],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Runs and steps both have a "state" with different choices: name each enum after its own.
    "ENUM_NAME_OVERRIDES": {
        "RunStateEnum": "apps.runs.models.RunState",
        "StepStateEnum": "apps.runs.models.StepState",
        "ComputeTargetKindEnum": "apps.compute.models.ComputeTarget.Kind",
        "DataSpaceKindEnum": "apps.dataspaces.models.DataSpace.Kind",
    },
}

# --- sign-in throttling (django-axes) -------------------------------------------------------------
# After ILIAD_LOGIN_FAILURE_LIMIT failed sign-ins for one account from one address (on /login/ or
# /admin/login/), that account is locked for that address for ILIAD_LOGIN_COOLOFF_MINUTES; every new
# attempt meanwhile starts the cool-off again. Failures are kept in the database (all processes see
# them). Unlock: the admin's "Access attempts" (delete the row), or `manage.py axes_reset_username NAME`
# / `manage.py axes_reset_ip ADDRESS`.
AXES_FAILURE_LIMIT = envint("ILIAD_LOGIN_FAILURE_LIMIT", 5)
ILIAD_LOGIN_COOLOFF_MINUTES = envint("ILIAD_LOGIN_COOLOFF_MINUTES", 15)
if AXES_FAILURE_LIMIT < 1 or ILIAD_LOGIN_COOLOFF_MINUTES < 1:
    raise ImproperlyConfigured("ILIAD_LOGIN_FAILURE_LIMIT and ILIAD_LOGIN_COOLOFF_MINUTES must be at least 1")
AXES_COOLOFF_TIME = timedelta(minutes=ILIAD_LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_LOCKOUT_CALLABLE = "apps.accounts.views.signin_locked_out"
AXES_CLIENT_IP_CALLABLE = "apps.accounts.throttling.client_address"  # the API limits' address, too

# --- federated sign-in (OpenID Connect) -----------------------------------------------------------
# ILIAD_OIDC_PROVIDERS=egi,keycloak names the identity providers (the "Sign in with …" buttons, in that
# order); each is described by ILIAD_OIDC_<NAME>_ISSUER (its discovery document is fetched from
# <issuer>/.well-known/openid-configuration), _CLIENT_ID, _CLIENT_SECRET (or _CLIENT_SECRET_FILE), and
# optionally _SCOPES ("openid profile email"), _TITLE, _GROUP_CLAIMS ("groups,eduperson_entitlement"),
# _API_AUDIENCE (the aud of bearer tokens for the API; default the client id), _ALGORITHMS ("RS256").
# ILIAD_OIDC_ROLE_RULES (JSON, or ILIAD_OIDC_ROLE_RULES_FILE) maps group claims to project roles at each
# sign-in. Password sign-in (ILIAD_LOCAL_LOGIN) is on by default only when no provider is configured.
from apps.accounts.oidc.config import providers_from_env, role_rules_from_env  # noqa: E402

ILIAD_OIDC_PROVIDERS = providers_from_env(os.environ)
ILIAD_OIDC_ROLE_RULES = role_rules_from_env(os.environ)
if {r.provider for r in ILIAD_OIDC_ROLE_RULES if r.provider} - set(ILIAD_OIDC_PROVIDERS):
    raise ImproperlyConfigured("ILIAD_OIDC_ROLE_RULES: a rule's 'provider' is not in ILIAD_OIDC_PROVIDERS")
ILIAD_LOCAL_LOGIN = envbool("ILIAD_LOCAL_LOGIN", not ILIAD_OIDC_PROVIDERS)
ILIAD_OIDC_TIMEOUT_S = envint("ILIAD_OIDC_TIMEOUT_S", 10)
ILIAD_OIDC_DISCOVERY_CACHE_S = envint("ILIAD_OIDC_DISCOVERY_CACHE_S", 3600)
ILIAD_OIDC_JWKS_REFRESH_MIN_S = envint("ILIAD_OIDC_JWKS_REFRESH_MIN_S", 10)
ILIAD_OIDC_LEEWAY_S = envint("ILIAD_OIDC_LEEWAY_S", 30)  # clock skew allowed on exp/iat/nbf
ILIAD_OIDC_STATE_MAX_AGE_S = envint("ILIAD_OIDC_STATE_MAX_AGE_S", 900)  # from "Sign in with" to the callback
for _name in ("ILIAD_OIDC_TIMEOUT_S", "ILIAD_OIDC_DISCOVERY_CACHE_S", "ILIAD_OIDC_STATE_MAX_AGE_S"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name}={globals()[_name]} must be at least 1")
del _name
if ILIAD_OIDC_JWKS_REFRESH_MIN_S < 0 or ILIAD_OIDC_LEEWAY_S < 0:
    raise ImproperlyConfigured("ILIAD_OIDC_JWKS_REFRESH_MIN_S and ILIAD_OIDC_LEEWAY_S must not be negative")

# --- HTTPS, cookies, security headers -------------------------------------------------------------
# ILIAD_HTTPS=true when browsers reach the portal over HTTPS (TLS usually ends at a reverse proxy):
# cookies go over HTTPS only, HSTS is sent, plain HTTP is redirected, and the proxy's
# X-Forwarded-Proto says which scheme the browser used (ILIAD_TRUST_X_FORWARDED_PROTO=false when the
# portal terminates TLS itself). `manage.py check --deploy` passes with it.
ILIAD_HTTPS = envbool("ILIAD_HTTPS", False)
SESSION_COOKIE_SECURE = ILIAD_HTTPS
CSRF_COOKIE_SECURE = ILIAD_HTTPS
SECURE_SSL_REDIRECT = ILIAD_HTTPS
SECURE_HSTS_SECONDS = envint("ILIAD_HSTS_SECONDS", 31_536_000 if ILIAD_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("ILIAD_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = envbool("ILIAD_HSTS_PRELOAD", False)
if ILIAD_HTTPS and envbool("ILIAD_TRUST_X_FORWARDED_PROTO", True):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Asking browsers to preload HSTS binds the domain to HTTPS for months; that is the domain owner's
# decision (ILIAD_HSTS_PRELOAD=true), so its absence is no deployment warning.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# --- Content-Security-Policy (django-csp) ---------------------------------------------------------
# Scripts only from the portal's own static files: no inline script (templates keep data in json_script
# blocks, the API docs use drf-spectacular's split view) and no eval, except on the editor's pages
# (apps/pipelines/editor.py: its parameter forms compile JSON Schemas). Inline styles are allowed: React
# Flow, plotly and Swagger UI set them. 'self' covers the same host's ws:/wss: for the run page's
# WebSocket. Responses that set their own policy (run artifacts: a sandbox) keep it.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:", "blob:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "worker-src": [SELF, "blob:"],
        "frame-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- E-mail: feedback notifications ------------------------------------------------------------------
# Notifications always appear in the portal (the bell); they are also e-mailed to recipients with an
# address when ILIAD_NOTIFY_EMAIL is on (by default: when ILIAD_EMAIL_HOST is set).
EMAIL_HOST = os.environ.get("ILIAD_EMAIL_HOST", "")
EMAIL_PORT = envint("ILIAD_EMAIL_PORT", 587)
EMAIL_HOST_USER = os.environ.get("ILIAD_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("ILIAD_EMAIL_PASSWORD", "")
EMAIL_USE_TLS = envbool("ILIAD_EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = os.environ.get("ILIAD_EMAIL_FROM", "iliad-portal@localhost")
ILIAD_NOTIFY_EMAIL = envbool("ILIAD_NOTIFY_EMAIL", bool(EMAIL_HOST))
ILIAD_PUBLIC_URL = os.environ.get("ILIAD_PUBLIC_URL", "http://127.0.0.1:8000")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("ILIAD_LOG_LEVEL", "INFO")},
}
