"""Settings: one class, read from `AUTHAPI_*` environment variables and `.env`."""

from __future__ import annotations

import ipaddress
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import limits
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from authapi.config_values import (
    check_database_url,
    check_smtp_url,
    default_data_dir,
    split_list,
    usable_cpus,
)

SigningAlgorithm = Literal["EdDSA", "ES256", "RS256"]

DAY = 24 * 60 * 60
# Values that must never reach production: the examples in the README and .env files.
PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "placeholder"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AUTHAPI_", env_file=".env", extra="ignore", frozen=True
    )

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Field(default_factory=default_data_dir)
    # None means the embedded SQLite file `<data_dir>/authapi.db`.
    database_url: str | None = None
    # `transaction`: the database URL names a pooler in transaction mode (PgBouncer's
    # `pool_mode = transaction`, most managed poolers), where a server connection serves
    # a different client at every transaction: no prepared statements are kept (db.py).
    database_pooler: Literal["none", "transaction"] = "none"
    # The connection that LISTENs for other instances' revocations stays open for ever,
    # which a transaction pooler cannot give: point this at PostgreSQL itself (or a
    # session-mode pool). Unset: the database URL.
    listen_database_url: str | None = None

    issuer: str = "http://localhost:8000"
    audience: str = "authapi"
    client_id: str = "authapi"
    scopes: Annotated[list[str], NoDecode] = ["profile", "email"]

    access_token_ttl: int = Field(default=300, ge=1, le=3600)
    refresh_reuse_grace: int = Field(default=10, ge=0, le=300)
    session_idle_timeout: int = Field(default=14 * DAY, ge=60)
    session_max_lifetime: int = Field(default=30 * DAY, ge=60)

    # PEM or JWK files that seed an empty signing-key table (signing/reload.py): the first
    # one becomes the current key, the others are published as retired keys.
    signing_key_files: Annotated[list[Path], NoDecode] = []
    # Algorithm of the key generated in the data directory when no files are configured.
    signing_algorithm: SigningAlgorithm = "EdDSA"
    # AES-256 key (32 bytes, base64) that private signing keys are encrypted under in the
    # database; in development generated into the data directory when unset.
    key_encryption_key: SecretStr | None = None
    # How often each instance reads the signing keys from the database: the bound on
    # how long an `authapi keys` change takes to reach every instance.
    key_reload_interval: float = Field(default=10, gt=0, le=3600)
    # Refuse a revoked session's access tokens at once on every instance (revocations/).
    # Off: they work until they expire, and no instance listens or polls.
    instant_revocation: bool = True
    # How often each instance reads the sessions revoked since its last look: the
    # bound on how long another instance's revocation takes to reach it on SQLite, or
    # on PostgreSQL while its LISTEN connection is down.
    revocation_poll_interval: float = Field(default=0.5, gt=0, le=60)
    jwks_max_age: int = Field(default=300, ge=0)
    # HMAC key that refresh tokens are derived from (see sessions/rotation.py).
    refresh_token_secret: SecretStr | None = None

    # argon2id cost, OWASP password storage cheat sheet: m=19 MiB, t=2, p=1.
    argon2_memory_cost: int = Field(default=19456, ge=1024)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_parallelism: int = Field(default=1, ge=1)
    hash_workers: int = Field(default_factory=lambda: usable_cpus(), ge=1)
    # Hashes that may wait for a worker; past that, logins get 503 at once.
    hash_queue: int = Field(default=32, ge=0)

    # Rate limits, in the `limits` notation ("30/minute", "10 per 15 minutes").
    rate_limit_enabled: bool = True
    # memory:// counts per process; redis://host:6379 shares the counts between instances.
    rate_limit_storage: str = "memory://"
    # Prefix of the counters' keys in Redis, so deployments can share one server.
    rate_limit_key_prefix: str = "authapi"
    rate_limit_token: str = "30/minute"  # noqa: S105 - per client address, POST /token
    # Refreshes (POST /refresh, and POST /token grant_type=refresh_token): per session,
    # and a looser cap per client address that forged tokens count against too.
    rate_limit_refresh: str = "60/minute"  # per refresh-token session
    rate_limit_refresh_address: str = "600/minute"  # per client address
    rate_limit_register: str = "10/hour"  # per client address, POST /users
    rate_limit_revoke: str = "60/minute"  # per client address, POST /revoke and /logout
    # The endpoints that send mail (account/): per client address, and per recipient
    # (counted for unknown addresses too, so a refusal tells nothing about who exists).
    rate_limit_mail_address: str = "20/hour"
    rate_limit_mail_recipient: str = "5/hour"
    # Password attempts (counted before the hash is checked) per account and client: a
    # known device (device cookie), else the client address (IPv6: its /64).
    rate_limit_login_failures: str = "10/15 minutes"
    # Password attempts per account from all clients together (ASVS 2.2.1): past it,
    # nobody logs in to that account until the window has moved on.
    rate_limit_login_account: str = "100/hour"
    # Seconds each call to the rate-limit storage (Redis) may take; then 503.
    # Code attempts (TOTP or recovery code) per account, at login and before sensitive
    # changes; counted before the code is checked, apart from the password limits.
    rate_limit_otp: str = "10/15 minutes"
    rate_limit_storage_timeout: float = Field(default=0.5, gt=0, le=30)
    # Peers whose X-Forwarded-For is believed (addresses or CIDR ranges of your proxies).
    trusted_proxies: Annotated[list[str], NoDecode] = []
    hsts_max_age: int = Field(default=0, ge=0)  # 0: no Strict-Transport-Security header

    # Browser mode: the refresh token in an HttpOnly cookie instead of the body.
    # Only development (http://localhost) may turn Secure off.
    cookie_secure: bool = True
    # Origins allowed to call with credentials (CORS) and to use the refresh cookie.
    cors_origins: Annotated[list[str], NoDecode] = []
    # Passkeys (passkeys/): the WebAuthn relying party ID (unset: the host of
    # AUTHAPI_APP_URL, else of AUTHAPI_ISSUER), and origins allowed besides that URL's.
    webauthn_rp_id: str | None = None
    webauthn_origins: Annotated[list[str], NoDecode] = []
    demo_spa: bool = False  # serve the demo single-page app at /demo/

    audit_retention_days: int = Field(default=90, ge=1)  # `authapi prune` deletes older events

    # Mail (mail/). The relay: smtp://[user:password@]host[:port] (plain),
    # smtp+starttls://… (STARTTLS required) or smtps://… (implicit TLS). Unset: every
    # mail is written as an .eml file into <data_dir>/mail/ instead.
    smtp_url: SecretStr | None = None
    smtp_timeout: float = Field(default=10.0, gt=0, le=300)  # per connection and command
    # CA certificates (PEM) the relay's certificate is checked against instead of the
    # system's; verification itself is never off.
    smtp_ca_file: Path | None = None
    mail_from: str = "authapi <noreply@localhost>"
    mail_app_name: str = "authapi"  # how mails name the service
    # A folder of templates that replace the package's own, file by file (mail/templates/).
    mail_templates_dir: Path | None = None
    # How often each instance's sender looks for due mail.
    mail_poll_interval: float = Field(default=2.0, gt=0, le=300)
    email_verification_ttl: int = Field(default=DAY, ge=60)
    password_reset_ttl: int = Field(default=1800, ge=60)
    # Where the links in mails point: the app that shows their forms. Unset: the issuer,
    # where authapi serves pages of its own (account/pages.py). Never a request's Host.
    app_url: str | None = None
    # The password grant refuses an account whose address is not verified yet.
    require_verified_email: bool = False

    # Logs on stderr: one JSON object per line, or plain text for a terminal (logs.py).
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    access_log: bool = True  # one line per request (authapi.access)
    # GET /metrics (Prometheus): only for `Authorization: Bearer <metrics_token>`; with
    # no token not served, unless metrics_public opens it to anyone who can reach it.
    metrics_enabled: bool = True
    metrics_token: SecretStr | None = None
    metrics_public: bool = False

    # PostgreSQL connections per process, each kept open once opened (db.py).
    db_pool_size: int = Field(default=20, ge=1)
    db_timeout: float = Field(default=5.0, gt=0)

    @field_validator(
        "scopes",
        "signing_key_files",
        "trusted_proxies",
        "cors_origins",
        "webauthn_origins",
        mode="before",
    )
    @classmethod
    def _lists(cls, value: object) -> object:
        return split_list(value)

    @field_validator("log_format", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _uppercase(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)  # raises ValueError for a bad entry
        return value

    @field_validator(
        "rate_limit_token",
        "rate_limit_refresh",
        "rate_limit_refresh_address",
        "rate_limit_register",
        "rate_limit_revoke",
        "rate_limit_mail_address",
        "rate_limit_mail_recipient",
        "rate_limit_login_failures",
        "rate_limit_login_account",
        "rate_limit_otp",
    )
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        limits.parse(value)  # raises ValueError for a bad limit
        return value

    @field_validator("cors_origins", "webauthn_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin == "*" or not origin.startswith(("https://", "http://")):
                raise ValueError(f"origins must be exact http(s) origins, not {origin!r}")
        return [origin.rstrip("/") for origin in value]

    @field_validator("database_url", "listen_database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        return check_database_url(value) if value else None

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        check_smtp_url(value.get_secret_value())
        return value

    @field_validator("mail_from")
    @classmethod
    def _mail_from(cls, value: str) -> str:
        _name, address = parseaddr(value)
        if "@" not in address or any(ch in value for ch in "\r\n"):
            raise ValueError("AUTHAPI_MAIL_FROM must be an address: 'Name <user@host>'")
        return value

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("app_url")
    @classmethod
    def _app_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        not_http = parts.scheme not in ("https", "http") or not parts.hostname
        if not_http or parts.query or parts.fragment:
            raise ValueError("AUTHAPI_APP_URL must be an http(s) URL with no query or fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.session_max_lifetime < self.session_idle_timeout:
            raise ValueError("session_max_lifetime must not be shorter than session_idle_timeout")
        if self.environment != "production":
            return self
        problems = []
        if not self.cookie_secure:
            problems.append("AUTHAPI_COOKIE_SECURE=false is for http://localhost development only")
        kek = self.key_encryption_key
        if kek is None or kek.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
            problems.append("AUTHAPI_KEY_ENCRYPTION_KEY must be set to a real key")
        secret = self.refresh_token_secret
        if secret is None or secret.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
            problems.append("AUTHAPI_REFRESH_TOKEN_SECRET must be set to a real secret")
        elif len(secret.get_secret_value()) < 32:
            problems.append("AUTHAPI_REFRESH_TOKEN_SECRET must be at least 32 characters")
        # The example .env's "change-me" would open /metrics to anyone who guesses it.
        token = self.metrics_token
        if token is not None and token.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
            problems.append("AUTHAPI_METRICS_TOKEN must be a real token (or unset)")
        if problems:
            raise ValueError("production mode: " + "; ".join(problems))
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'authapi.db'}"

    @property
    def resolved_listen_database_url(self) -> str:
        return self.listen_database_url or self.resolved_database_url

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")
