"""Known devices for the login throttle: OWASP's device cookie.

Every successful password grant sets a cookie proving "this client logged in to this
account before". A valid one moves that client's failed-login counting from its
address's bucket to a bucket of its own, so an attacker failing on the account (from
anywhere, even from the same address) cannot lock its owner out below the per-account
cap.

    dv1. + base64url( account digest(16) | device id(16) | HMAC-SHA256(32) )

The account digest is keyed too, so the cookie names its account without telling
anyone who can read it which email that is (a plain hash of an email can be guessed).
Only a client that once knew the account's password holds a valid cookie for it; a
forged cookie, or one of another account, is worth nothing.

The key is derived from the refresh-token key under a distinct domain string: no new
secret to configure, and no MAC of one kind can ever pass as the other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

PREFIX = "dv1."
_DIGEST_SIZE = 16
_DEVICE_SIZE = 16
_MAC_SIZE = 32
# 64 bytes are 86 base64url characters without padding.
_COOKIE_SHAPE = re.compile(re.escape(PREFIX) + r"[A-Za-z0-9_-]{86}")
_DOMAIN = b"authapi device cookie v1"


class DeviceCookies:
    def __init__(self, refresh_token_key: bytes) -> None:
        self._key = hmac.new(refresh_token_key, _DOMAIN, hashlib.sha256).digest()

    def _account_digest(self, account: str) -> bytes:
        return hmac.new(self._key, b"account\0" + account.encode(), hashlib.sha256).digest()[
            :_DIGEST_SIZE
        ]

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, b"cookie\0" + body, hashlib.sha256).digest()

    def issue(self, account: str, device: str | None) -> str:
        """A cookie for `account`, keeping the device id of a client that had one."""
        device_id = bytes.fromhex(device) if device else secrets.token_bytes(_DEVICE_SIZE)
        body = self._account_digest(account) + device_id
        raw = body + self._mac(body)
        return PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def device_of(self, cookie: str | None, account: str) -> str | None:
        """The device id of a genuine cookie issued for `account`; None otherwise."""
        if cookie is None or not _COOKIE_SHAPE.fullmatch(cookie):
            return None
        try:
            raw = base64.urlsafe_b64decode(cookie[len(PREFIX) :] + "==")
        except (binascii.Error, ValueError):
            return None
        body, mac = raw[:-_MAC_SIZE], raw[-_MAC_SIZE:]
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        if not hmac.compare_digest(body[:_DIGEST_SIZE], self._account_digest(account)):
            return None
        return body[_DIGEST_SIZE:].hex()
