"""TOTP: turned on with the password and a first code, each time step accepted once,
one step of drift either way, and turned off again (ending the other sessions)."""

from __future__ import annotations

import asyncio

import httpx
import pyotp
import pytest
from sqlalchemy import update

from authapi.context import AppContext
from authapi.mfa.models import TotpFactor
from tests.mfa.helpers import at_step_start, enable_totp, new_recovery_codes, start_totp
from tests.support.clock import FakeClock
from tests.support.factories import PASSWORD, bearer, refresh_works, registered_login, two_sessions
from tests.support.mail import Mailbox, text_of


async def profile(client: httpx.AsyncClient, tokens: dict[str, object]) -> dict[str, object]:
    response = await client.get("/users/me", headers=bearer(tokens))
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


class TestEnrolment:
    async def test_needs_the_current_password(self, client: httpx.AsyncClient) -> None:
        _, tokens = await registered_login(client)
        response = await client.post(
            "/users/me/mfa/totp", json={"current_password": "wrong"}, headers=bearer(tokens)
        )
        assert response.status_code == 403
        assert response.json()["error"] == "invalid_credentials"

    async def test_gives_the_secret_its_uri_and_a_qr_code(self, client: httpx.AsyncClient) -> None:
        user, tokens = await registered_login(client)
        body = await start_totp(client, tokens)
        assert set(body) == {"secret", "otpauth_uri", "qr_svg"}
        parsed = pyotp.parse_uri(body["otpauth_uri"])
        assert parsed.secret == body["secret"]
        assert len(body["secret"]) == 32
        assert parsed.name == user["email"]
        assert parsed.issuer == "authapi"
        assert body["qr_svg"].startswith('<svg xmlns="http://www.w3.org/2000/svg" ')

    async def test_only_the_first_right_code_turns_it_on(
        self, client: httpx.AsyncClient, clock: FakeClock
    ) -> None:
        _, tokens = await registered_login(client)
        at_step_start(clock)
        secret = (await start_totp(client, tokens))["secret"]
        assert (await profile(client, tokens))["mfa_enabled"] is False
        wrong = await client.post(
            "/users/me/mfa/totp/confirm", json={"code": "000000"}, headers=bearer(tokens)
        )
        assert wrong.status_code == 403
        assert (await profile(client, tokens))["mfa_enabled"] is False
        right = await client.post(
            "/users/me/mfa/totp/confirm",
            json={"code": pyotp.TOTP(secret).at(clock.now())},
            headers=bearer(tokens),
        )
        assert right.status_code == 200
        codes = right.json()["recovery_codes"]
        assert len(codes) == len(set(codes)) == 10
        assert right.headers["cache-control"] == "no-store"
        assert (await profile(client, tokens))["mfa_enabled"] is True

    async def test_a_second_start_replaces_a_waiting_secret(
        self, client: httpx.AsyncClient, clock: FakeClock
    ) -> None:
        _, tokens = await registered_login(client)
        at_step_start(clock)
        first = (await start_totp(client, tokens))["secret"]
        second = (await start_totp(client, tokens))["secret"]
        assert first != second
        stale = await client.post(
            "/users/me/mfa/totp/confirm",
            json={"code": pyotp.TOTP(first).at(clock.now())},
            headers=bearer(tokens),
        )
        assert stale.status_code == 403

    async def test_refused_while_on_and_with_nothing_to_confirm(
        self, client: httpx.AsyncClient, clock: FakeClock
    ) -> None:
        _, tokens = await registered_login(client)
        nothing = await client.post(
            "/users/me/mfa/totp/confirm", json={"code": "123456"}, headers=bearer(tokens)
        )
        assert nothing.status_code == 409
        await enable_totp(client, tokens, clock)
        again = await client.post(
            "/users/me/mfa/totp", json={"current_password": PASSWORD}, headers=bearer(tokens)
        )
        assert again.status_code == 409
        assert again.json()["error"] == "totp_state"


class TestTimeSteps:
    @pytest.mark.parametrize(
        ("steps", "accepted"), [(-2, False), (-1, True), (0, True), (1, True), (2, False)]
    )
    async def test_one_step_of_drift_either_way(
        self, client: httpx.AsyncClient, clock: FakeClock, steps: int, accepted: bool
    ) -> None:
        _, tokens = await registered_login(client)
        totp = await enable_totp(client, tokens, clock)  # spent the step before this one
        clock.advance(60)  # two steps on: the steps around now are all unused
        response = await new_recovery_codes(client, tokens, totp.code(clock, steps))
        assert response.status_code == (200 if accepted else 403), response.text

    async def test_a_code_is_accepted_once(
        self, client: httpx.AsyncClient, clock: FakeClock
    ) -> None:
        _, tokens = await registered_login(client)
        totp = await enable_totp(client, tokens, clock)
        code = totp.code(clock)
        assert (await new_recovery_codes(client, tokens, code)).status_code == 200
        replay = await new_recovery_codes(client, tokens, code)
        assert replay.status_code == 403
        assert replay.json()["error"] == "invalid_credentials"

    async def test_no_earlier_step_after_a_later_one(
        self, client: httpx.AsyncClient, clock: FakeClock
    ) -> None:
        _, tokens = await registered_login(client)
        totp = await enable_totp(client, tokens, clock)
        clock.advance(60)
        assert (await new_recovery_codes(client, tokens, totp.code(clock, 1))).status_code == 200
        earlier = await new_recovery_codes(client, tokens, totp.code(clock, 0))
        assert earlier.status_code == 403

    async def test_one_code_sent_twice_at_once_passes_once(
        self, client: httpx.AsyncClient, clock: FakeClock
    ) -> None:
        _, tokens = await registered_login(client)
        totp = await enable_totp(client, tokens, clock)
        code = totp.code(clock)
        answers = await asyncio.gather(
            *(new_recovery_codes(client, tokens, code) for _ in range(5))
        )
        assert sorted(a.status_code for a in answers) == [200, 403, 403, 403, 403]

    async def test_a_hundred_wrong_codes_in_a_row_stop_totp_until_a_recovery_code(
        self, client: httpx.AsyncClient, clock: FakeClock, context: AppContext
    ) -> None:
        user, tokens = await registered_login(client)
        totp = await enable_totp(client, tokens, clock)
        async with context.sessionmaker() as db, db.begin():
            await db.execute(update(TotpFactor).values(consecutive_failures=99))
        assert (await new_recovery_codes(client, tokens, "000000")).status_code == 403  # the 100th
        assert (await new_recovery_codes(client, tokens, totp.code(clock))).status_code == 403
        answer = await new_recovery_codes(client, tokens, totp.recovery_codes[0])
        assert answer.status_code == 200
        assert (await new_recovery_codes(client, tokens, totp.code(clock))).status_code == 200


class TestTurningOff:
    async def test_needs_a_second_factor_and_ends_the_other_sessions(
        self, client: httpx.AsyncClient, clock: FakeClock, mailbox: Mailbox
    ) -> None:
        user, mine, other = await two_sessions(client)
        totp = await enable_totp(client, mine, clock)
        without = await client.request(
            "DELETE",
            "/users/me/mfa/totp",
            json={"current_password": PASSWORD},
            headers=bearer(mine),
        )
        assert without.status_code == 403
        assert without.json()["error"] == "mfa_required"
        response = await client.request(
            "DELETE",
            "/users/me/mfa/totp",
            json={"current_password": PASSWORD, "otp": totp.code(clock)},
            headers=bearer(mine),
        )
        assert response.status_code == 204
        assert (await profile(client, mine))["mfa_enabled"] is False
        assert await refresh_works(client, mine)
        assert not await refresh_works(client, other)
        await mailbox.receive(user["email"])  # the sign-up's verification link
        notice = await mailbox.receive(user["email"])
        assert "removed by you" in text_of(notice)
        # The recovery codes went with it: nothing is left to step up with.
        codes = await new_recovery_codes(client, mine, totp.recovery_codes[1])
        assert codes.status_code == 409
