from __future__ import annotations

from fastapi import Request

from authapi.context import AppContext
from authapi.mfa.fields import SecondFactor
from authapi.mfa.step_up import StepUp
from authapi.ratelimit.dependencies import read_device_cookie


def step_up(context: AppContext, request: Request, password: str, second: SecondFactor) -> StepUp:
    """The step-up of a sensitive change, from the app's parts and the request's body."""
    return StepUp(
        hasher=context.hasher,
        limiter=context.rate_limiter,
        codes=context.codes,
        relying_party=context.relying_party,
        password=password,
        otp=second.otp,
        passkey=second.passkey,
        device_cookie=read_device_cookie(request, context.settings),
    )
