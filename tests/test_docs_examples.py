"""The examples of the README and docs/ run as written: the curl walk-through, the
admin API, a service verifying our access tokens with PyJWT's PyJWKClient alone, the
signing-key procedures, a key file, the PgBouncer settings and the developers' alembic
commands. Every ```sh and ```python block of the pages is run here by its name, or
listed in NOT_RUN with the reason it cannot run in the test suite."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from authapi.sessions.models import LoginSession
from authapi.users.models import User
from tests.support.database import clear_signing_keys
from tests.support.docs_pages import ROOT, blocks, example, pages
from tests.support.factories import PASSWORD
from tests.support.servers import authapi_env, free_port, run_authapi, serving

# Blocks that cannot run in the test suite, and why; everything else runs below.
NOT_RUN = {
    "first-screen": (
        "installs the project into ./.venv and serves in the foreground, and its second "
        "command is this test suite itself (scripts/test, which .ci/run runs); "
        "tests/test_dockerfile.py runs the same install into a fresh virtual environment"
    ),
    "postgresql": (
        "needs a PostgreSQL host of its own (db.example) and serves in the foreground; "
        "`authapi migrate` and serve's refusal of an unmigrated PostgreSQL are tested in "
        "tests/test_cli.py, `serve --workers` in tests/test_scale_out.py"
    ),
    "docker": "needs Docker; tests/test_dockerfile.py runs the Dockerfile's steps without it",
    "compose": "needs Docker Compose; tests/test_deployment.py checks compose.yaml and deploy/",
    "bench": "takes ~1 to ~10 minutes; .ci/run runs `scripts/bench --quick`",
    "otp-callback": (
        "a fragment (its names are the reader's); the client README's whole `otp` example "
        "runs in clients/python/tests/test_client_readme.py"
    ),
}

# The signing-key waits, made short: each wait is these plus the 2 s margin.
QUICK_KEYS = {
    "AUTHAPI_ACCESS_TOKEN_TTL": "1",
    "AUTHAPI_JWKS_MAX_AGE": "1",
    "AUTHAPI_KEY_RELOAD_INTERVAL": "0.5",
}
SCRIPT_TIMEOUT = 120


def names_run_by_tests() -> set[str]:
    """The blocks some test runs: `example("NAME")` anywhere under tests/."""
    called = re.compile(r"""\bexample\(\s*["']([\w-]+)["']""")
    return {
        name for path in (ROOT / "tests").rglob("*.py") for name in called.findall(path.read_text())
    }


def run_shell(
    script: str, *, env: Mapping[str, str], cwd: Path, timeout: float = SCRIPT_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """`script` in bash with -euo pipefail, this environment's commands (authapi,
    alembic) first on the PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(  # noqa: S603 - our docs' commands, in a temporary directory
        ["bash", "-euo", "pipefail", "-c", script],  # noqa: S607
        env={**env, "PATH": path},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def session_end_reasons(database_url: str, email: str) -> list[str | None]:
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            rows = await connection.scalars(
                select(LoginSession.revoked_reason)
                .join(User, User.id == LoginSession.user_id)
                .where(User.email == email)
            )
            return list(rows)
    finally:
        await engine.dispose()


class TestEveryBlock:
    def test_is_named_run_or_listed_as_not_runnable(self) -> None:
        run = names_run_by_tests()
        problems = []
        names: list[str] = []
        for page in pages():
            for block in blocks(page):
                if block.language not in ("sh", "python"):
                    continue
                if block.name is None:
                    problems.append(f"{block.where()}: no `<!-- example: NAME -->` line before it")
                    continue
                names.append(block.name)
                if block.name not in run and block.name not in NOT_RUN:
                    problems.append(
                        f"{block.where()}: {block.name!r} is neither run nor in NOT_RUN"
                    )
        duplicates = {name for name in names if names.count(name) > 1}
        stale = set(NOT_RUN) - set(names)
        assert not problems, "\n".join(problems)
        assert not duplicates
        assert not stale  # listed as not runnable, yet no block has that name
        assert not set(NOT_RUN) & run  # listed, yet run

    def test_a_new_block_would_be_noticed(self, tmp_path: Path) -> None:
        page = tmp_path / "page.md"
        page.write_text(
            "Text.\n\n<!-- example: named -->\n```sh\necho named\n```\n\n"
            "1. A step:\n   ```python\n   print('nameless')\n   ```\n"
        )
        [named, nameless] = blocks(page)
        assert (named.name, named.language, named.text) == ("named", "sh", "echo named\n")
        assert (nameless.name, nameless.language) == (None, "python")
        assert nameless.text == "print('nameless')\n"


def wait_for_mail(folder: Path, recipient: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not any(f"To: {recipient}" in mail.read_text() for mail in folder.glob("*.eml")):
        assert time.monotonic() < deadline, f"no mail to {recipient} in {folder}"
        time.sleep(0.01)


def test_curl_walk_through_against_a_real_server(
    database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    email = f"walk-{tmp_path.name}@example.com"
    script = (
        example("curl-walk-through")
        .replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        .replace("alice@example.com", email)
    )
    # No grace window: a step presenting a spent refresh token would revoke the session
    # at once, and the walk-through's logout would not be what ended it.
    env = {"AUTHAPI_REFRESH_REUSE_GRACE": "0"}
    # The sign-up's mail is written by the server's sender an instant after the answer:
    # a reader at a terminal never sees the gap, a script right after it might.
    sign_up, _, rest = script.partition("MAILDIR=")
    shell_env = {**os.environ, "AUTHAPI_DATA_DIR": str(data_dir)}
    with serving(database_url, data_dir, tmp_path, port=port, env=env):
        first = run_shell(sign_up, env=shell_env, cwd=tmp_path, timeout=60)
        assert first.returncode == 0, first.stderr
        wait_for_mail(data_dir / "mail", email)
        run = run_shell("MAILDIR=" + rest, env=shell_env, cwd=tmp_path, timeout=60)
    assert run.returncode == 0, run.stderr
    assert '"email_verified":true' in run.stdout
    assert f'"email":"{email}"' in run.stdout  # the profile
    assert '"sub":' in run.stdout  # the verified claims
    assert asyncio.run(session_end_reasons(database_url, email)) == ["logout"]


def test_admin_api_against_a_real_server(database_url: str, data_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    admin_email = f"admin-{tmp_path.name}@example.com"
    created = run_authapi(
        "create-user",
        admin_email,
        "--role",
        "admin",
        stdin=PASSWORD + "\n",
        env=authapi_env(database_url, data_dir),
        cwd=tmp_path,
    )
    assert created.returncode == 0, created.stderr
    # The block's filter is `email=ALICE`: any letter case, any part of the address.
    email = f"alice-{tmp_path.name}@example.com"
    with serving(database_url, data_dir, tmp_path, port=port) as server:
        with httpx.Client(base_url=server.base_url) as http:
            user = http.post("/users", json={"email": email, "password": PASSWORD}).json()
            form = {"grant_type": "password", "username": email, "password": PASSWORD}
            assert http.post("/token", data=form).status_code == 200
            form["username"] = admin_email
            admin_token = http.post("/token", data=form).json()["access_token"]

            script = example("admin-api").replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            env = {**os.environ, "AT": admin_token, "ID": user["id"]}
            run = run_shell(script, env=env, cwd=tmp_path, timeout=60)
            assert run.returncode == 0, run.stderr
            assert f'"email":"{email}"' in run.stdout  # found by the filter

            headers = {"Authorization": f"Bearer {admin_token}"}
            listed = http.get(f"{url}/admin/users", params={"email": email}, headers=headers)
        [after] = listed.json()["items"]
    # Disabled, then made an admin; disabling ended the session it had.
    assert (after["is_active"], after["role"]) == (False, "admin")
    assert asyncio.run(session_end_reasons(database_url, email)) == ["user_disabled"]


def test_verify_with_jwks_against_a_real_server(
    database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # No AUTHAPI_ISSUER: the issuer is the address served, which the example verifies.
    with serving(database_url, data_dir, tmp_path, port=port):
        with httpx.Client(base_url=url) as http:
            email = f"jwks-{tmp_path.name}@example.com"
            user = http.post("/users", json={"email": email, "password": PASSWORD}).json()
            form = {"grant_type": "password", "username": email, "password": PASSWORD}
            tokens = http.post("/token", data=form).json()

        namespace: dict[str, Any] = {"AUTHAPI_URL": url, "access_token": tokens["access_token"]}
        exec(example("verify-with-jwks"), namespace)  # noqa: S102 - our docs' code
        assert namespace["claims"]["sub"] == user["id"]

        verify = namespace["verify"]
        with pytest.raises(jwt.InvalidTokenError):
            verify(tokens["refresh_token"])  # not a JWT at all
        header, payload, signature = tokens["access_token"].split(".")
        with pytest.raises(jwt.InvalidTokenError):
            verify(f"{header}.{payload}.{signature[::-1]}")


@pytest.fixture
def keys_env(database_url: str, data_dir: Path) -> Iterator[dict[str, str]]:
    """`authapi keys` settings with short waits, on an empty key table (emptied again
    afterwards, so that the keys made here reach no other test)."""
    asyncio.run(clear_signing_keys(database_url))
    yield {**authapi_env(database_url, data_dir), **QUICK_KEYS}
    asyncio.run(clear_signing_keys(database_url))


def key_states(env: Mapping[str, str], cwd: Path) -> dict[str, str]:
    listed = run_authapi("keys", "list", "--json", env=dict(env), cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    return {row["kid"]: row["state"] for row in json.loads(listed.stdout)}


class TestSigningKeyProcedures:
    def test_the_rollover_procedure_as_written(
        self, keys_env: dict[str, str], tmp_path: Path
    ) -> None:
        first = run_authapi("keys", "generate", env=keys_env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        [old] = key_states(keys_env, tmp_path)

        # Step 1 notes the current kid in $old, which the script of steps 2-5 uses; their
        # pause between refused attempts is made short.
        script = example("rollover-add-key") + example("rollover-script").replace(
            "sleep 30", "sleep 0.5"
        )
        run = run_shell(script, env=keys_env, cwd=tmp_path)

        assert run.returncode == 0, run.stderr
        states = key_states(keys_env, tmp_path)
        assert old not in states
        assert list(states.values()) == ["current"]

    def test_the_emergency_procedure_as_written(
        self, keys_env: dict[str, str], tmp_path: Path
    ) -> None:
        first = run_authapi("keys", "generate", env=keys_env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        [compromised] = key_states(keys_env, tmp_path)

        script = example("rollover-emergency")
        run = run_shell(script, env=keys_env, cwd=tmp_path)

        assert run.returncode == 0, run.stderr
        states = key_states(keys_env, tmp_path)
        assert compromised not in states
        assert list(states.values()) == ["current"]

    def test_the_key_file_made_as_written_is_one_authapi_takes(
        self, keys_env: dict[str, str], tmp_path: Path
    ) -> None:
        run = run_shell(example("key-file"), env=keys_env, cwd=tmp_path)
        assert run.returncode == 0, run.stderr

        imported = run_authapi("keys", "import", "signing-key.pem", env=keys_env, cwd=tmp_path)

        assert imported.returncode == 0, imported.stderr
        listed = run_authapi("keys", "list", "--json", env=keys_env, cwd=tmp_path)
        [key] = json.loads(listed.stdout)
        assert key["algorithm"] == "EdDSA"


def test_pgbouncer_settings_are_ones_authapi_reads(tmp_path: Path) -> None:
    script = example("pgbouncer-settings") + (
        'python3 -c "from authapi.config import Settings; s = Settings(); '
        'print(s.database_pooler); print(s.resolved_listen_database_url)"'
    )
    env = authapi_env(None, tmp_path)
    run = run_shell(script.replace("python3 -c", f"{sys.executable} -c"), env=env, cwd=tmp_path)

    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [
        "transaction",
        "postgresql+asyncpg://authapi:secret@db.example:5432/authapi",
    ]


def test_alembic_commands_for_developers(tmp_path: Path) -> None:
    # A copy of the migrations, so that the revision the block makes is made there.
    shutil.copy(ROOT / "alembic.ini", tmp_path)
    shutil.copytree(ROOT / "migrations", tmp_path / "migrations")
    before = set((tmp_path / "migrations" / "versions").iterdir())
    env = {
        **authapi_env(f"sqlite+aiosqlite:///{tmp_path / 'dev.db'}", tmp_path / "data"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }

    run = run_shell(example("alembic"), env=env, cwd=tmp_path)

    assert run.returncode == 0, run.stderr
    assert "No new upgrade operations detected" in run.stdout + run.stderr
    [made] = set((tmp_path / "migrations" / "versions").iterdir()) - before
    assert made.name.endswith("_what_changed.py")


def test_mfa_walk_through_against_a_real_server(
    database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    email = f"mfa-{tmp_path.name}@example.com"
    password = "correct horse battery"  # noqa: S105 - the page's
    script = (
        example("mfa-walk-through")
        .replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        .replace("alice@example.com", email)
    )
    with serving(database_url, data_dir, tmp_path, port=port) as server:
        with httpx.Client(base_url=server.base_url) as http:
            assert http.post("/users", json={"email": email, "password": password}).is_success
            form = {"grant_type": "password", "username": email, "password": password}
            access_token = http.post("/token", data=form).json()["access_token"]
            run = run_shell(script, env={**os.environ, "AT": access_token}, cwd=tmp_path)
            assert run.returncode == 0, run.stderr
            assert http.post("/token", data=form).status_code == 200  # TOTP is off again
    printed = run.stdout.splitlines()
    assert printed[0].startswith("otpauth://totp/")
    assert printed[1:] == [
        '{"error":"mfa_required","mfa_methods":["totp","recovery_code"]}',
        '["pwd","otp","mfa"]',
        "204",
    ]


def test_passkey_options_against_a_real_server(
    database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    script = example("passkey-options").replace("localhost:8000", f"localhost:{port}")
    env = {"AUTHAPI_ISSUER": f"http://localhost:{port}"}  # passkeys need a host name
    with serving(database_url, data_dir, tmp_path, port=port, env=env):
        run = run_shell(script, env=dict(os.environ), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    options = json.loads(run.stdout)
    assert options["rpId"] == "localhost"
    assert options["userVerification"] == "required"
    assert "allowCredentials" not in options or options["allowCredentials"] == []
    assert len(options["challenge"]) >= 43  # 32 random bytes, base64url
