"""Peer: authapi against djangorestframework-simplejwt (bench/peers/simplejwt_app: Django
REST framework, refresh tokens rotated and blacklisted, gunicorn sync workers), both on
PostgreSQL and pinned to the server CPU, measured in turn in slices (issue 15, point 2):

1. `GET /users/me` with an access token, the same wrk load;
2. refreshes: a closed-loop client per session, each with its newest refresh token
   (authapi `POST /refresh`, simplejwt `POST /api/token/refresh/`).

Targets: authapi ÷ simplejwt >= 3 for both. Before anything is timed, two refreshes of
one refresh token are sent at once to each server (authbench/racing.py), some races in a
row: how many were both answered 200, and how many left two live refresh tokens."""

from __future__ import annotations

from authbench import accounts, postgres, racing, refreshing, servers, slicing, wrk
from authbench.config import BenchConfig
from authbench.results import Figure, ScenarioResult, Target
from authbench.slicing import Refreshers

EMAIL = "peer-simplejwt@example.com"
USERNAME = "peer"
AUTHAPI_DB = "authapi_bench_sjwt_authapi"
PEER_DB = "authapi_bench_sjwt_peer"
PEER_SECRET = "bench-simplejwt-secret-key-of-fifty-characters-or-more"  # noqa: S105


def describe(config: BenchConfig) -> ScenarioResult:
    clients, races = config.refresh_clients, config.refresh_races
    return ScenarioResult(
        name="peer_simplejwt",
        title="Peer: simplejwt",
        what=(
            f"authapi vs a minimal Django REST framework + djangorestframework-simplejwt app "
            f"(rotation with blacklist, gunicorn with {servers.SIMPLEJWT_WORKERS} sync "
            f"workers), each on a fresh PostgreSQL database, in slices of "
            f"{config.wrk_segment} s taken in turn: `GET /users/me`, `wrk -t1 -c32`, "
            f"{config.wrk_seconds} s each per run; then {clients} closed-loop clients, each "
            f"refreshing its own session with the newest token, {config.driver_seconds:g} s "
            f"each per run. Before that, untimed: {races} times two refreshes of one "
            "refresh token sent at once."
        ),
        figures=[
            Figure("authapi_rps", "authapi GET /users/me", " req/s"),
            Figure("peer_rps", "simplejwt GET /users/me", " req/s"),
            Figure("ratio", "GET: authapi ÷ simplejwt"),
            Figure("authapi_p99_ms", "authapi GET p99", " ms"),
            Figure("peer_p99_ms", "simplejwt GET p99", " ms"),
            Figure("authapi_refresh_rps", "authapi POST /refresh", "/s"),
            Figure("peer_refresh_rps", "simplejwt POST /api/token/refresh/", "/s"),
            Figure("refresh_ratio", "refresh: authapi ÷ simplejwt"),
            Figure("authapi_refresh_p99_ms", "authapi refresh p99", " ms"),
            Figure("peer_refresh_p99_ms", "simplejwt refresh p99", " ms"),
            Figure(
                "peer_both_ok", f"simplejwt: token refreshed twice at once, both 200 (of {races})"
            ),
            Figure("peer_two_live", f"simplejwt: ... leaving two live refresh tokens (of {races})"),
            Figure(
                "authapi_both_ok", f"authapi: token refreshed twice at once, both 200 (of {races})"
            ),
            Figure(
                "authapi_two_live", f"authapi: ... leaving two live refresh tokens (of {races})"
            ),
        ],
        targets=[Target("ratio", ">=", 3.0), Target("refresh_ratio", ">=", 3.0)],
    )


def measure(config: BenchConfig, result: ScenarioResult) -> None:
    try:
        _measure(config, result)
    finally:
        postgres.drop_database(AUTHAPI_DB)
        postgres.drop_database(PEER_DB)


NOTES = [
    "gunicorn's sync workers do not keep connections alive (`Connection: close`): wrk "
    "and the refresh clients open a connection per simplejwt request, as clients of "
    "any sync-worker deployment do; in production a proxy in front holds the clients' "
    "connections. Django keeps its PostgreSQL connections (CONN_MAX_AGE 600, the "
    "deployment checklist's advice; the default would connect per request).",
    "simplejwt's access token is an HS256 JWT (its default, signed with SECRET_KEY), "
    "authapi's an EdDSA one. simplejwt's JWTAuthentication reads the user from the "
    "database on every request; authapi answers `/users/me` from memory per session "
    "for one access-token lifetime. A simplejwt refresh with rotation and blacklist "
    "sends 12 statements (from PostgreSQL's log): the blacklist check, the user read "
    "three times, the old token's OutstandingToken and BlacklistedToken looked up, "
    "then `BEGIN; INSERT; COMMIT` for its BlacklistedToken and again for the new "
    "token's OutstandingToken; nothing locks the old token, so two refreshes of it "
    "at once both pass the check.",
]


def _measure(config: BenchConfig, result: ScenarioResult) -> None:
    ours = servers.authapi(config, "sjwt-authapi", postgres.create_database(AUTHAPI_DB))
    with servers.running(ours):
        postgres.create_database(PEER_DB)
        theirs = servers.simplejwt(
            config, "sjwt-peer", postgres.dsn(PEER_DB), PEER_SECRET, USERNAME, accounts.PASSWORD
        )
        with servers.running(theirs):
            result.commands += [ours.shown(), theirs.shown()]
            accounts.register(ours.base_url, EMAIL)
            count = config.refresh_clients + 1  # one more session for the races
            our_tokens = [
                tokens.refresh_token for tokens in accounts.login_many(ours.base_url, EMAIL, count)
            ]
            their_tokens = [
                tokens.refresh_token
                for tokens in accounts.simplejwt_logins(theirs.base_url, USERNAME, count)
            ]
            ours_raced = racing.race(
                ours.base_url, refreshing.AUTHAPI, our_tokens.pop(), config.refresh_races
            )
            theirs_raced = racing.race(
                theirs.base_url, refreshing.SIMPLEJWT, their_tokens.pop(), config.refresh_races
            )
            raced = ours_raced.figures("authapi") | theirs_raced.figures("peer")
            refreshers = (
                Refreshers(ours.base_url, refreshing.AUTHAPI, our_tokens),
                Refreshers(theirs.base_url, refreshing.SIMPLEJWT, their_tokens),
            )
            for number in range(config.runs):
                run, commands = _one_run(config, ours, theirs, refreshers, first=number == 0)
                result.runs.append(run | raced if number == 0 else run)
            result.commands += commands
    result.notes += [
        *NOTES,
        "Races (before the timed runs): two connections opened, then both refreshes of "
        "one token written in the same event-loop turn; each distinct new refresh token "
        "is then refreshed once more, one after the other, and counts as live if "
        f"answered 200. The pairs of answers: authapi {ours_raced.statuses}, "
        f"simplejwt {theirs_raced.statuses}.",
    ]


def _one_run(
    config: BenchConfig,
    ours: servers.Server,
    theirs: servers.Server,
    refreshers: tuple[Refreshers, Refreshers],
    *,
    first: bool,
) -> tuple[dict[str, float], list[str]]:
    """The GETs, then the refreshes, each in slices taken in turn (after a warm-up of
    each in the first run); new access tokens for the GETs."""
    cpu = config.client_cpu
    our_header = _bearer(accounts.login(ours.base_url, EMAIL).access_token)
    (pair,) = accounts.simplejwt_logins(theirs.base_url, USERNAME, 1)
    their_header = _bearer(pair.access_token)
    our_get = wrk.load(ours.base_url + "/users/me", cpu=cpu, headers=[our_header])
    their_get = wrk.load(theirs.base_url + "/users/me", cpu=cpu, headers=[their_header])
    if first:
        for load in (our_get, their_get):
            load(max(1, round(config.warmup_seconds)))
        for refresher in refreshers:
            refresher.warm_up(config.warmup_seconds)
    a, p = wrk.alternating([our_get, their_get], config.wrk_seconds, config.wrk_segment)
    slicing.alternating(refreshers, config.driver_seconds, config.wrk_segment)
    mine, peers = refreshers
    run = {
        "authapi_rps": round(a.requests_per_s, 1),
        "peer_rps": round(p.requests_per_s, 1),
        "ratio": round(a.requests_per_s / p.requests_per_s, 3),
        "authapi_p99_ms": a.p99_ms,
        "peer_p99_ms": p.p99_ms,
        "authapi_refresh_rps": round(mine.per_second, 1),
        "peer_refresh_rps": round(peers.per_second, 1),
        "refresh_ratio": round(mine.per_second / peers.per_second, 3),
        "authapi_refresh_p99_ms": mine.ms(99),
        "peer_refresh_p99_ms": peers.ms(99),
    }
    commands = [
        a.command,
        p.command,
        f"(driver) authbench/refreshing.py: {config.refresh_clients} clients per server, "
        f"POST /refresh and POST /api/token/refresh/, on CPU {cpu}",
    ]
    return run, commands


def _bearer(token: str) -> str:
    return f"Authorization: Bearer {token}"
