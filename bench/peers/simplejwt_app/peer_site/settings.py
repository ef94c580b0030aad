"""Settings of the simplejwt peer: a minimal Django project with Django REST framework
and djangorestframework-simplejwt as its documentation sets them up (JWTAuthentication
as the default authentication class, the token views, the blacklist app), refresh
tokens rotated and the rotated one blacklisted; DEBUG off, as in production.

Environment: PEER_DATABASE_URL (postgresql://user@host:port/name) and PEER_SECRET_KEY
(Django's SECRET_KEY, simplejwt's HS256 signing key by default).
"""

import os
from urllib.parse import urlsplit

_database = urlsplit(os.environ["PEER_DATABASE_URL"])

SECRET_KEY = os.environ["PEER_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
]
# What an API without sessions, templates or an admin keeps of startproject's list.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "peer_site.urls"
WSGI_APPLICATION = "peer_site.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",  # psycopg 3
        "NAME": _database.path.lstrip("/"),
        "USER": _database.username or "postgres",
        "PASSWORD": _database.password or "",
        "HOST": _database.hostname or "127.0.0.1",
        "PORT": str(_database.port or 5432),
        # Django's deployment checklist: persistent connections, instead of a new
        # PostgreSQL connection per request (the default, 0). Each sync worker keeps one.
        "CONN_MAX_AGE": 600,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": (
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ),
    # JSON only: the browsable API needs templates, and an API serves none.
    "DEFAULT_RENDERER_CLASSES": ("rest_framework.renderers.JSONRenderer",),
    "DEFAULT_PARSER_CLASSES": ("rest_framework.parsers.JSONParser",),
}
# simplejwt's defaults (HS256 with SECRET_KEY, 5 min access tokens, 1 day refresh
# tokens) plus rotation: each refresh returns a new refresh token and blacklists the
# one presented.
SIMPLE_JWT = {
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
}
