"""Settings for Patterns Lab.

Development is the default. ``LAB_ENV=production`` switches to production
settings: DEBUG off, the secret key and allowed hosts from the environment,
secure cookies and HSTS, so that ``manage.py check --deploy`` is clean.

``REDIS_URL`` points at the Redis that carries commands and frames. The run
command (``manage.py runlab``) starts an embedded one and sets it for its
children when the variable is not set.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("LAB_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)
PRODUCTION = os.environ.get("LAB_ENV", "development") == "production"


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


if PRODUCTION:
    DEBUG = False
    SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
    if len(SECRET_KEY) < 50:
        raise ImproperlyConfigured("LAB_ENV=production needs DJANGO_SECRET_KEY of 50 or more characters")
    ALLOWED_HOSTS = _env_list("DJANGO_ALLOWED_HOSTS", "")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("LAB_ENV=production needs DJANGO_ALLOWED_HOSTS (comma-separated)")
    CSRF_TRUSTED_ORIGINS = _env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")
    SECURE_SSL_REDIRECT = os.environ.get("DJANGO_SECURE_SSL_REDIRECT", "1") == "1"
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
else:
    DEBUG = os.environ.get("LAB_DEBUG", "1") == "1"
    SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-insecure-key-for-patterns-lab-do-not-deploy-0123456789")
    ALLOWED_HOSTS = _env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "webapp.lab",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "webapp.urls"
ASGI_APPLICATION = "webapp.asgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("LAB_DB_PATH", str(VAR_DIR / "lab.sqlite3")),
    }
}
# Sessions live in a signed cookie: a WebSocket connect reads the session without
# touching the database, and a session holds only the capabilities of its sims.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 7 * 24 * 3600

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# Frames do not use a channel layer: workers PUBLISH each frame once on plain
# Redis pub/sub and each web process subscribes once per watched simulation
# (webapp.lab.hub). See docs/STREAMING.md for the measurements behind that.
CHANNEL_LAYERS = {
    # Commands to engine workers and replies to consumers: the list-based layer,
    # which keeps a message until it is read (or expires).
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "lab", "capacity": 1000, "expiry": 30},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LAB_LOG_LEVEL", "INFO")},
    "loggers": {"daphne": {"level": "WARNING"}, "django.channels.server": {"level": "WARNING"}},
}

# Limits of the hosted sandbox. All can be set from the environment.
LAB = {
    "MAX_SIMS_PER_SESSION": int(os.environ.get("LAB_MAX_SIMS_PER_SESSION", "3")),
    "MAX_SIMS_PER_WORKER": int(os.environ.get("LAB_MAX_SIMS_PER_WORKER", "600")),
    "MAX_MESSAGE_BYTES": 4096,
    "RATE_PER_SECOND": 40.0,  # messages a connection may send, sustained
    "RATE_BURST": 80.0,
    # Frames a viewer may have unacknowledged: the most the server holds for a
    # viewer that stops reading. The browser acknowledges every ACK_MS, or
    # sooner once half the window is used.
    "FRAME_WINDOW": int(os.environ.get("LAB_FRAME_WINDOW", "10")),
    "ACK_MS": int(os.environ.get("LAB_ACK_MS", "200")),
    "STUCK_AFTER_S": float(os.environ.get("LAB_STUCK_AFTER_S", "15")),
    "PARK_AFTER_S": float(os.environ.get("LAB_PARK_AFTER_S", "60")),
    "DEFAULT_SPEED": 0.01,
    "FRAME_HZ": 20.0,
    # A worker that spends most of its time ticking halves its frame rate, down
    # to this (webapp.runtime.driver.FrameRate); every frame says its rate.
    "MIN_FRAME_HZ": float(os.environ.get("LAB_MIN_FRAME_HZ", "5")),
}
