"""Who we are to an authenticator: the WebAuthn relying party (RP ID, name, and the
origins whose ceremonies count), worked out once at start-up from the settings.

The RP ID is AUTHAPI_WEBAUTHN_RP_ID, else the host of AUTHAPI_APP_URL, else of
AUTHAPI_ISSUER; the origins are that URL's origin and AUTHAPI_WEBAUTHN_ORIGINS. A
browser only uses a credential on an origin whose host is the RP ID or ends with
`.` + RP ID, so a setting that breaks this is refused at start-up, where it is a clear
message, rather than as a failed ceremony later."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from authapi.config import Settings


class RelyingPartyError(ValueError):
    """The passkey settings contradict each other (refused at start-up)."""


@dataclass(frozen=True)
class RelyingParty:
    id: str
    name: str
    origins: tuple[str, ...]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _serves(rp_id: str, origin: str) -> bool:
    host = (urlsplit(origin).hostname or "").lower()
    return host == rp_id or host.endswith("." + rp_id)


def from_settings(settings: Settings) -> RelyingParty | None:
    """The relying party; None when passkeys cannot work with these settings and none
    asked for them (a derived RP ID that is an IP address: `authapi serve`'s default
    issuer is http://127.0.0.1:8000). Raises RelyingPartyError for settings that ask
    for passkeys and cannot have them."""
    base = settings.app_url or settings.issuer
    origins = tuple(dict.fromkeys((_origin(base), *(o.lower() for o in settings.webauthn_origins))))
    explicit = settings.webauthn_rp_id is not None
    rp_id = (settings.webauthn_rp_id or urlsplit(base).hostname or "").strip().lower()
    if _is_ip(rp_id) or not rp_id:
        if explicit or settings.webauthn_origins:
            raise RelyingPartyError(
                f"AUTHAPI_WEBAUTHN_RP_ID must be a domain name (localhost included), "
                f"not {rp_id!r}: WebAuthn does not accept an IP address"
            )
        return None
    for origin in origins:
        if not _serves(rp_id, origin):
            raise RelyingPartyError(
                f"the passkey origin {origin} is not on {rp_id!r} or a subdomain of it: "
                "set AUTHAPI_WEBAUTHN_RP_ID to a suffix of every origin's host"
            )
    return RelyingParty(id=rp_id, name=settings.mail_app_name, origins=origins)
