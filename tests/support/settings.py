"""The app's settings as tests make them: from arguments only, never from a developer's
`.env` or environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from authapi.config import Settings

# Password hashing at a fraction of the production cost, for tests that hash many
# times (or must hash quickly to race each other); the argon2id scheme stays the same.
CHEAP_HASHES: dict[str, Any] = {"argon2_memory_cost": 1024, "argon2_time_cost": 1}


def make_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        data_dir=data_dir,
        **overrides,  # type: ignore[arg-type]
    )
