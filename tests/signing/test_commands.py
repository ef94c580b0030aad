"""`authapi keys …` run as real processes, the way an operator runs them, on both
databases. The waits themselves are tested on the app's clock in test_rollover.py;
here: exit statuses, messages, and what the table then holds."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from authapi.signing.keys import load_key_file
from tests.support.database import clear_signing_keys
from tests.support.keys import KEK, write_pem, write_public_pem
from tests.support.servers import authapi_env, free_port, run_authapi

NOT_YET = 3  # the exit status of a step that is allowed later


@pytest.fixture
def env(database_url: str, data_dir: Path) -> Iterator[dict[str, str]]:
    """The command's environment, on an empty key table (emptied again afterwards, so
    that the keys made here reach no other test)."""
    asyncio.run(clear_signing_keys(database_url))
    yield authapi_env(database_url, data_dir)
    asyncio.run(clear_signing_keys(database_url))


def keys(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = run_authapi("keys", *args, env=env, cwd=cwd)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def listing(env: dict[str, str], cwd: Path) -> list[dict[str, Any]]:
    result = keys("list", "--json", env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def states(env: dict[str, str], cwd: Path) -> list[tuple[str, str]]:
    return [(row["kid"], row["state"]) for row in listing(env, cwd)]


class TestKeyCommands:
    def test_generate_roll_over_retire_and_their_refusals(
        self, env: dict[str, str], tmp_path: Path
    ) -> None:
        # An empty table: the first key signs at once (nothing was signed before it).
        first = keys("generate", env=env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert "as the current key" in first.stdout
        [(old, state)] = states(env, tmp_path)
        assert state == "current"

        second = keys("generate", "--algorithm", "ES256", env=env, cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        assert "as the next key: published, not signing" in second.stdout
        assert "`authapi keys rollover` from 20" in second.stdout
        [_, (new, state)] = states(env, tmp_path)
        assert state == "next"

        again = keys("generate", env=env, cwd=tmp_path)
        assert again.returncode == 1
        assert f"there is a next key already, {new}" in again.stderr

        early = keys("rollover", env=env, cwd=tmp_path)
        assert early.returncode == NOT_YET
        assert f"the next key {new} was published at" in early.stderr
        assert "resource servers may not have it before" in early.stderr
        assert states(env, tmp_path) == [(old, "current"), (new, "next")]

        for force in ((), ("--force",)):
            current = keys("retire", *force, "--", old, env=env, cwd=tmp_path)
            assert current.returncode == 1
            assert f"{old} is the current signing key" in current.stderr

        forced = keys("rollover", "--force", env=env, cwd=tmp_path)
        assert forced.returncode == 0, forced.stderr
        assert f"{new} is the current key" in forced.stdout
        assert f"{old} is retired (still published)" in forced.stdout
        assert states(env, tmp_path) == [(new, "current"), (old, "retired")]

        too_early = keys("retire", "--", old, env=env, cwd=tmp_path)
        assert too_early.returncode == NOT_YET
        assert f"tokens signed with {old} may be valid until" in too_early.stderr
        assert states(env, tmp_path) == [(new, "current"), (old, "retired")]

        removed = keys("retire", "--force", "--", old, env=env, cwd=tmp_path)
        assert removed.returncode == 0, removed.stderr
        assert states(env, tmp_path) == [(new, "current")]

        unknown = keys("retire", "--", old, env=env, cwd=tmp_path)
        assert unknown.returncode == 1
        assert f"there is no signing key {old}" in unknown.stderr

    def test_rotate_is_still_accepted_for_rollover(
        self, env: dict[str, str], tmp_path: Path
    ) -> None:
        # Runbooks written before the rename say `authapi keys rotate`.
        assert keys("generate", env=env, cwd=tmp_path).returncode == 0
        assert keys("generate", env=env, cwd=tmp_path).returncode == 0
        [(old, _), (new, _)] = states(env, tmp_path)

        early = keys("rotate", env=env, cwd=tmp_path)
        assert early.returncode == NOT_YET
        assert f"the next key {new} was published at" in early.stderr

        forced = keys("rotate", "--force", env=env, cwd=tmp_path)
        assert forced.returncode == 0, forced.stderr
        assert f"{new} is the current key" in forced.stdout
        assert states(env, tmp_path) == [(new, "current"), (old, "retired")]

    def test_list_shows_states_dates_and_no_private_material(
        self, env: dict[str, str], tmp_path: Path
    ) -> None:
        assert keys("generate", env=env, cwd=tmp_path).returncode == 0
        assert keys("generate", "--algorithm", "RS256", env=env, cwd=tmp_path).returncode == 0
        [current, pending] = listing(env, tmp_path)
        assert (current["state"], current["algorithm"]) == ("current", "EdDSA")
        assert (pending["state"], pending["algorithm"]) == ("next", "RS256")
        assert set(current) == {
            "kid",
            "algorithm",
            "state",
            "created_at",
            "activated_at",
            "retired_at",
            "next_step_from",
        }
        assert current["activated_at"] == current["created_at"]
        assert current["next_step_from"] is None  # nothing to wait for
        assert pending["activated_at"] is None
        assert pending["next_step_from"] > pending["created_at"]

        table = keys("list", env=env, cwd=tmp_path)
        assert table.returncode == 0
        header, *lines = table.stdout.splitlines()
        assert header.split()[:3] == ["KID", "ALG", "STATE"]
        assert [line.split()[:3] for line in lines] == [
            [current["kid"], "EdDSA", "current"],
            [pending["kid"], "RS256", "next"],
        ]
        assert "PRIVATE" not in table.stdout + json.dumps([current, pending])

    def test_import_a_pem_file(self, env: dict[str, str], tmp_path: Path) -> None:
        assert keys("generate", env=env, cwd=tmp_path).returncode == 0
        pem = write_pem(tmp_path / "imported.pem", ec.generate_private_key(ec.SECP256R1()))
        kid = load_key_file(pem).kid  # the RFC 7638 thumbprint

        current = keys("import", str(pem), "--current", env=env, cwd=tmp_path)
        assert current.returncode == NOT_YET  # a rollover like any other: it waits
        assert "resource servers may not have it" in current.stderr
        assert [state for _, state in states(env, tmp_path)] == ["current"]  # rolled back

        imported = keys("import", str(pem), env=env, cwd=tmp_path)
        assert imported.returncode == 0, imported.stderr
        assert f"added ES256 key {kid} as the next key" in imported.stdout
        twice = keys("import", str(pem), env=env, cwd=tmp_path)
        assert twice.returncode == 1
        assert f"key {kid} is stored already" in twice.stderr

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("public", "needs its private part"),
            ("garbage", "not a usable PEM key"),
        ],
    )
    def test_import_refuses_unusable_files(
        self, env: dict[str, str], tmp_path: Path, content: str, message: str
    ) -> None:
        path = tmp_path / "key.pem"
        if content == "public":
            write_public_pem(path, ed25519.Ed25519PrivateKey.generate())
        else:
            path.write_text("not a key")
        result = keys("import", str(path), env=env, cwd=tmp_path)
        assert result.returncode == 1
        assert message in result.stderr
        assert listing(env, tmp_path) == []


class TestKeyEncryptionKey:
    def test_a_wrong_kek_is_refused_by_rollover_and_stops_serve(
        self, env: dict[str, str], tmp_path: Path
    ) -> None:
        assert keys("generate", env=env, cwd=tmp_path).returncode == 0
        assert keys("generate", env=env, cwd=tmp_path).returncode == 0
        wrong = {**env, "AUTHAPI_KEY_ENCRYPTION_KEY": KEK}

        rolled = keys("rollover", "--force", env=wrong, cwd=tmp_path)
        assert rolled.returncode == 1
        assert "AUTHAPI_KEY_ENCRYPTION_KEY is not the key it was encrypted under" in rolled.stderr
        assert [state for _, state in states(env, tmp_path)] == ["current", "next"]

        serve = run_authapi("serve", "--port", str(free_port()), env=wrong, cwd=tmp_path)
        assert serve.returncode == 1
        assert "authapi: cannot decrypt the private part of signing key" in serve.stderr
        assert "AUTHAPI_KEY_ENCRYPTION_KEY is not the key it was encrypted under" in serve.stderr
        assert "Traceback" not in serve.stderr

    @pytest.mark.parametrize("kek", ["c2hvcnQ=", "not base64 at all!"])
    def test_a_malformed_kek_is_a_message(
        self, env: dict[str, str], tmp_path: Path, kek: str
    ) -> None:
        result = keys("generate", env={**env, "AUTHAPI_KEY_ENCRYPTION_KEY": kek}, cwd=tmp_path)
        assert result.returncode == 1
        assert "AUTHAPI_KEY_ENCRYPTION_KEY must be 32 random bytes, base64-encoded" in (
            result.stderr
        )
        assert kek not in result.stderr

    def test_development_generates_the_kek_into_the_data_dir(self, tmp_path: Path) -> None:
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        unmigrated = keys("generate", env=authapi_env(None, data_dir), cwd=tmp_path)
        assert unmigrated.returncode == 1
        assert "run `authapi migrate` first" in unmigrated.stderr
        migrated = run_authapi("migrate", env=authapi_env(None, data_dir), cwd=tmp_path)
        assert migrated.returncode == 0, migrated.stderr
        assert not (data_dir / "key-encryption.key").exists()

        result = keys("generate", env=authapi_env(None, data_dir), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        kek_file = data_dir / "key-encryption.key"
        assert kek_file.stat().st_mode & 0o777 == 0o600
        assert len(states(authapi_env(None, data_dir), tmp_path)) == 1
