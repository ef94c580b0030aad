"""authapi: short-lived JWT access tokens, rotating opaque refresh tokens, revocable sessions."""

__version__ = "0.1.0"
