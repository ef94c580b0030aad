"""The ceiling of the refresh scenario: raw asyncpg sending exactly the statements one
`POST /refresh` sends, with no web framework and no ORM.

The statements, in order, as captured from PostgreSQL (`log_statement = all` on a
throwaway database, one refresh through a real `authapi serve`):

1. `BEGIN;` `ROLLBACK;` - what SQLAlchemy's pool pre-ping sends when a request checks
   out a connection; authapi no longer pre-pings (db.py), so only `--ping` sends it;
2. `BEGIN;`
3. the conditional `UPDATE sessions ... RETURNING` of sessions/service.py `rotate`,
   which also returns the user's role and whether they may log in (subqueries);
4. `INSERT INTO audit_events ... RETURNING audit_events.id` (audit/service.py `record`);
5. `COMMIT;`

The SQL text is SQLAlchemy's, verbatim, so PostgreSQL plans the same statements.
Each client has its own connection and its own session row (inserted at start) and
advances it in a loop, as the HTTP clients do. Run on the server's CPU:

    taskset -c 0 python -m authbench.ceiling --database authapi_bench_refresh --clients 32

Prints one JSON object: transactions per second, p50 and p99 in ms.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import uvloop

from authbench import postgres
from authbench.httpload import Step, closed_loop

# Verbatim from PostgreSQL's log (SQLAlchemy's text, casts included).
ROTATE = (
    "UPDATE sessions SET generation=(sessions.generation + $1::BIGINT), "
    "last_used_at=$2::TIMESTAMP WITH TIME ZONE, rotated_at=$2::TIMESTAMP WITH TIME ZONE, "
    "expires_at=CASE WHEN (sessions.absolute_expires_at < $3::TIMESTAMP WITH TIME ZONE) "
    "THEN sessions.absolute_expires_at ELSE $3::TIMESTAMP WITH TIME ZONE END "
    "WHERE sessions.id = $4::UUID AND sessions.generation = $5::BIGINT "
    "AND sessions.revoked_at IS NULL AND sessions.expires_at > $2::TIMESTAMP WITH TIME ZONE "
    "RETURNING sessions.id, sessions.user_id, sessions.generation, sessions.scope, "
    "sessions.expires_at, (SELECT users.role \nFROM users \nWHERE users.id = sessions.user_id) "
    "AS role, (SELECT users.is_active \nFROM users \nWHERE users.id = sessions.user_id) "
    "AS user_active"
)
AUDIT = (
    "INSERT INTO audit_events (at, event, user_id, session_id, ip, user_agent, detail) "
    "VALUES ($1::TIMESTAMP WITH TIME ZONE, $2::VARCHAR, $3::UUID, $4::UUID, $5::VARCHAR, "
    "$6::VARCHAR, $7::VARCHAR) RETURNING audit_events.id"
)
IDLE_TIMEOUT = timedelta(days=14)


class Client:
    def __init__(self, connection: asyncpg.Connection, user_id: uuid.UUID, ping: bool) -> None:
        self.connection = connection
        self.user_id = user_id
        self.session_id = uuid.uuid4()
        self.generation = 0
        self.ping = ping

    async def create_session(self) -> None:
        now = datetime.now(UTC)
        await self.connection.execute(
            "INSERT INTO sessions (id, user_id, generation, scope, created_at, last_used_at,"
            " expires_at, absolute_expires_at) VALUES ($1, $2, 0, 'profile email', $3, $3,"
            " $4, $5)",
            self.session_id,
            self.user_id,
            now,
            now + IDLE_TIMEOUT,
            now + timedelta(days=30),
        )

    async def refresh(self) -> None:
        connection = self.connection
        now = datetime.now(UTC)
        idle = now + IDLE_TIMEOUT
        if self.ping:
            await connection.execute("BEGIN;")
            await connection.execute("ROLLBACK;")
        await connection.execute("BEGIN;")
        row = await connection.fetchrow(ROTATE, 1, now, idle, self.session_id, self.generation)
        if row is None:
            raise RuntimeError("the session did not rotate")
        self.generation = row["generation"]
        await connection.fetchval(
            AUDIT, now, "refresh", row["user_id"], self.session_id, "127.0.0.1", "authbench", None
        )
        await connection.execute("COMMIT;")


async def measure(args: argparse.Namespace) -> dict[str, float]:
    dsn = postgres.dsn(args.database)
    connections = [await asyncpg.connect(dsn) for _ in range(args.clients)]
    try:
        user_id = uuid.uuid4()
        await connections[0].execute(
            "INSERT INTO users (id, email, password_hash, role, is_active, created_at)"
            " VALUES ($1, $2, 'not a password hash', 'user', true, now())",
            user_id,
            f"ceiling-{user_id}@example.com",
        )
        clients = [Client(c, user_id, ping=args.ping) for c in connections]
        for client in clients:
            await client.create_session()
        steps: list[Step] = [client.refresh for client in clients]
        result = await closed_loop(steps, args.warmup, args.seconds)
    finally:
        for connection in connections:
            await connection.close()
    return {
        "per_s": round(result.per_second, 1),
        "p50_ms": round(result.ms(50), 2),
        "p99_ms": round(result.ms(99), 2),
        "transactions": len(result.latencies),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="a migrated authapi_bench* database")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--ping", action="store_true", help="add a pool pre-ping (authapi sends none)"
    )
    args = parser.parse_args(argv)
    figures = uvloop.run(measure(args))
    sys.stdout.write(json.dumps(figures) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
