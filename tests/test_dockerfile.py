"""The Dockerfile's own commands, run here without Docker so that they cannot rot:
the builder stage's install steps in a fresh virtual environment, then the image's
start command and its HEALTHCHECK.

Paths of the image (/opt/venv, /build, /wheels, /data, /app) are mapped into a
temporary directory; the runtime stage's RUN (creating the non-root user) is the only
step skipped, since it changes the machine's users.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
IMAGE_PATHS = re.compile(r"(?<![\w.-])/(opt/venv|build|wheels|data|app)(?=[/\s\"':]|$)")
INSTALL_TIMEOUT = 600.0
START_TIMEOUT = 60.0


@dataclass
class Stage:
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse(dockerfile: Path) -> list[Stage]:
    """Instructions by stage; continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            words = rest.split()
            stages.append(Stage(words[-1] if "AS" in (w.upper() for w in words) else "final"))
        else:
            stages[-1].instructions.append((keyword.upper(), rest.strip()))
    return stages


class Image:
    """The image's file system and environment, mapped into `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        bin_dir = root / "host-bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "python").symlink_to(sys.executable)  # the image's `python`
        self._base_env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHAPI_")}
        self._base_env["PATH"] = f"{bin_dir}:{self._base_env['PATH']}"
        self.start_stage()

    def start_stage(self) -> None:
        """A stage starts from the base image: the files stay, the settings do not."""
        self.env = dict(self._base_env)
        self.workdir = self.root

    def path(self, text: str) -> str:
        return IMAGE_PATHS.sub(lambda match: f"{self.root}/{match.group(1)}", text)

    def expand(self, value: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: self.env.get(m.group(1), ""), value)

    def apply(self, keyword: str, argument: str) -> None:
        if keyword == "ENV":
            for item in shlex.split(argument):
                name, _, value = item.partition("=")
                self.env[name] = self.path(self.expand(value))
        elif keyword == "WORKDIR":
            self.workdir = Path(self.path(argument))
            self.workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY" and not argument.startswith("--from"):
            source, destination = shlex.split(argument)
            target = self.workdir / destination
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(ROOT / source, target)
        elif keyword == "RUN":
            result = subprocess.run(  # noqa: S603 - the Dockerfile's own command
                ["/bin/sh", "-c", self.path(argument)],
                env=self.env,
                cwd=self.workdir,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
                check=False,
            )
            assert result.returncode == 0, f"RUN {argument}\n{result.stdout}\n{result.stderr}"

    def command(self, exec_form: str, port: int) -> list[str]:
        words: list[str] = json.loads(exec_form)
        return [self.path(word).replace("8000", str(port)) for word in words]


def test_the_image_installs_starts_and_is_healthy(tmp_path: Path) -> None:
    stages = parse(ROOT / "Dockerfile")
    assert [stage.name for stage in stages] == ["builder", "final"]
    image = Image(tmp_path)
    for keyword, argument in stages[0].instructions:
        image.apply(keyword, argument)

    final = dict(stages[1].instructions)
    user = final["USER"].split(":")[0]
    assert user.isdigit()  # numeric, so Kubernetes' runAsNonRoot can check it
    assert user != "0"
    image.start_stage()  # the venv is already where COPY --from=builder puts it
    for keyword, argument in stages[1].instructions:
        if keyword != "RUN":  # creates the non-root user: not on this machine
            image.apply(keyword, argument)

    port = free_port()
    start = image.command(final["CMD"], port)
    healthcheck = image.command(final["HEALTHCHECK"].split(" CMD ", 1)[1], port)
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(  # noqa: S603 - the Dockerfile's own command
        start, env=image.env, cwd=image.workdir, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while subprocess.run(healthcheck, env=image.env, capture_output=True).returncode:  # noqa: S603
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            if time.monotonic() > deadline:
                pytest.fail(
                    "the HEALTHCHECK never passed:\n" + (tmp_path / "serve.log").read_text()
                )
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        # The embedded database was migrated into the data volume.
        assert (tmp_path / "data" / "authapi.db").exists()
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
