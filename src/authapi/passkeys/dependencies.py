from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from authapi.dependencies import Context
from authapi.errors import PasskeysUnavailable
from authapi.passkeys.relying_party import RelyingParty


async def relying_party(context: Context) -> RelyingParty:
    """The relying party, or 404 where the server has none (passkeys/relying_party.py)."""
    if context.relying_party is None:
        raise PasskeysUnavailable()
    return context.relying_party


CurrentRelyingParty = Annotated[RelyingParty, Depends(relying_party)]
