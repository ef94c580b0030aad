"""Recovery codes: each works once, a new set voids the old, a use is mailed."""

from __future__ import annotations

import asyncio

import httpx

from authapi.context import AppContext
from tests.mfa.helpers import enable_totp, new_recovery_codes
from tests.passkeys.helpers import events
from tests.support.clock import FakeClock
from tests.support.factories import PASSWORD, bearer, new_email, registered_login
from tests.support.mail import Mailbox, text_of


class TestRecoveryCodes:
    async def test_each_works_once_and_its_use_is_mailed_and_audited(
        self, client: httpx.AsyncClient, clock: FakeClock, mailbox: Mailbox, context: AppContext
    ) -> None:
        user, tokens = await registered_login(client)
        totp = await enable_totp(client, tokens, clock)
        code = totp.recovery_codes[3]
        # Typed in capitals and without the hyphens, it is the same code.
        typed = code.upper().replace("-", "")
        assert (await new_recovery_codes(client, tokens, typed)).status_code == 200
        await mailbox.receive(user["email"])  # the sign-up's verification link
        notice = await mailbox.receive(user["email"])
        assert "9 of your recovery codes are left" in text_of(notice)
        assert len(await events(context, "recovery_code_used")) == 1

    async def test_a_spent_code_and_the_old_set_are_refused(
        self, client: httpx.AsyncClient, clock: FakeClock
    ) -> None:
        _, tokens = await registered_login(client)
        old = (await enable_totp(client, tokens, clock)).recovery_codes
        renewed = await new_recovery_codes(client, tokens, old[0])
        assert renewed.status_code == 200
        new = renewed.json()["recovery_codes"]
        assert not set(new) & set(old)
        for code in (old[0], old[1]):
            assert (await new_recovery_codes(client, tokens, code)).status_code == 403
        assert (await new_recovery_codes(client, tokens, new[0])).status_code == 200

    async def test_one_code_used_twice_at_once_passes_once(
        self, client: httpx.AsyncClient, clock: FakeClock
    ) -> None:
        _, tokens = await registered_login(client)
        totp = await enable_totp(client, tokens, clock)
        # On a step-up that leaves the set as it is: an email change (mailed, not done).
        answers = await asyncio.gather(
            *(
                client.post(
                    "/users/me/email",
                    json={
                        "new_email": new_email(),
                        "current_password": PASSWORD,
                        "otp": totp.recovery_codes[0],
                    },
                    headers=bearer(tokens),
                )
                for _ in range(3)
            )
        )
        assert sorted(a.status_code for a in answers) == [202, 403, 403], [a.text for a in answers]
