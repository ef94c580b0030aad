"""Passkeys (WebAuthn Level 2): registration, passwordless login, and a passkey as the
second factor after a password."""
