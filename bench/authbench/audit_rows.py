"""Bulk audit events for the audit_scale scenario, in one INSERT ... SELECT."""

from __future__ import annotations

from datetime import datetime

from authbench.postgres import fetchval

EVENTS_PER_USER = 1_000  # a year of a user: about three events a day

# Audit events as a service records them, in 200ths: mostly refreshes and logins, a
# few account changes, a rare reuse or admin action.
AUDIT_MIX = (
    ("refresh", 120),
    ("login_succeeded", 30),
    ("login_failed", 16),
    ("logout", 10),
    ("session_revoked", 6),
    ("mfa_challenged", 4),
    ("rate_limited", 4),  # refused before any user is known: no user_id
    ("user_registered", 3),
    ("email_verified", 2),
    ("password_reset_requested", 2),
    ("password_changed", 1),
    ("reuse_detected", 1),
    ("admin_action", 1),
)


def _event_case() -> str:
    branches, bound = [], 0
    for name, share in AUDIT_MIX:
        bound += share
        branches.append(f"WHEN bucket < {bound} THEN '{name}'")
    if bound != 200:
        raise ValueError(f"AUDIT_MIX adds up to {bound}, not 200")
    return "CASE " + " ".join(branches) + " END"


def fill_audit_events(
    database: str, first: int, last: int, size: int, newest: datetime, days: int = 365
) -> None:
    """Audit events `first`..`last` of a table of `size` over the `days` up to `newest`:
    event n has id n and happened (size - n) / size of `days` before `newest`, so that
    ids grow with time as authapi's do (and a range put back has its old times).
    Events drawn at random from AUDIT_MIX, users from size / EVENTS_PER_USER
    (`md5('bench-user-<n>')`, see postgres.row_id): a larger trail is a larger team,
    every user with a year of events. Ids already there are skipped, so that a range
    can be put back after a prune."""
    users = max(1, size // EVENTS_PER_USER)
    fetchval(
        database,
        f"""
        INSERT INTO audit_events (id, at, event, user_id, session_id, ip, user_agent, detail)
        SELECT n, $5::timestamptz - interval '1 day' * ($4::int * ($3::bigint - n)::float8 / $3),
               event,
               CASE WHEN event <> 'rate_limited' THEN md5('bench-user-' || user_number)::uuid END,
               md5('bench-session-' || (n % 100000))::uuid, '192.0.2.' || (n % 250),
               'Mozilla/5.0 (X11; Linux x86_64) authapi-bench', NULL
        FROM (SELECT n, user_number, {_event_case()} AS event
              FROM (SELECT n, floor(random() * 200)::int AS bucket,
                           floor(random() * {users})::int + 1 AS user_number
                    FROM generate_series($1::bigint, $2::bigint) AS n) AS drawn) AS rows
        ON CONFLICT (id) DO NOTHING
        """,  # noqa: S608 - the mix (constants) and a count
        first,
        last,
        size,
        days,
        newest,
    )
