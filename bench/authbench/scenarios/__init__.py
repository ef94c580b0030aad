"""One module per scenario, each with `describe(config)` (what it measures, its figures
and targets) and `measure(config, result)` (fills `result.runs`, one dict per run)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from authbench.config import BenchConfig
from authbench.results import ScenarioResult
from authbench.scenarios import (
    access,
    audit_scale,
    login,
    login_flood,
    mail_drain,
    mfa,
    peer,
    peer_simplejwt,
    pooler,
    prune,
    refresh,
    revocation,
    scale,
    soak,
)


@dataclass(frozen=True)
class Scenario:
    describe: Callable[[BenchConfig], ScenarioResult]
    measure: Callable[[BenchConfig, ScenarioResult], None]


SCENARIOS: dict[str, Scenario] = {
    module.__name__.rsplit(".", 1)[1]: Scenario(module.describe, module.measure)
    for module in (
        access,
        peer,
        peer_simplejwt,
        refresh,
        pooler,
        scale,
        login,
        login_flood,
        mfa,
        prune,
        audit_scale,
        revocation,
        mail_drain,
        soak,
    )
}
