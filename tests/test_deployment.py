"""The example deployment (compose.yaml, deploy/) stays consistent with the code: no
Docker engine here, so what can be checked without one is checked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from authapi.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return document


def instances() -> dict[str, Any]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if name.startswith("authapi-")
    }


def test_two_alike_instances_of_the_image_behind_the_proxy() -> None:
    services = instances()
    assert len(services) >= 2
    commands = {tuple(service["command"]) for service in services.values()}
    # In a container, all interfaces: the proxy reaches it on the backend network.
    assert commands == {("authapi", "serve", "--host", "0.0.0.0", "--port", "8000")}  # noqa: S104
    assert all(service["build"] == "." for service in services.values())
    upstreams = re.findall(r"server (authapi-\d+):8000", (ROOT / "deploy/nginx.conf").read_text())
    assert sorted(upstreams) == sorted(services)


def test_instances_start_after_the_migration_and_share_redis() -> None:
    services = compose()["services"]
    assert services["migrate"]["command"] == ["authapi", "migrate"]
    for service in instances().values():
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["environment"]["AUTHAPI_RATE_LIMIT_STORAGE"].startswith("redis://")


def test_every_setting_named_is_one_authapi_reads() -> None:
    known = {f"AUTHAPI_{name.upper()}" for name in Settings.model_fields}
    for service in instances().values():
        assert set(service["environment"]) <= known
    example = (ROOT / "deploy/example.env").read_text()
    assert set(re.findall(r"^(AUTHAPI_\w+)=", example, re.MULTILINE)) <= known


def test_only_the_proxy_trusted_for_forwarded_addresses() -> None:
    proxy_address = compose()["services"]["proxy"]["networks"]["backend"]["ipv4_address"]
    for service in instances().values():
        assert service["environment"]["AUTHAPI_TRUSTED_PROXIES"] == proxy_address
    assert (
        "proxy_set_header X-Forwarded-For $remote_addr;" in (ROOT / "deploy/nginx.conf").read_text()
    )


def test_prometheus_scrapes_every_instance_with_the_metrics_token() -> None:
    for service in instances().values():
        assert "AUTHAPI_METRICS_TOKEN" in service["environment"]
        assert "AUTHAPI_METRICS_PUBLIC" not in service["environment"]
    assert re.search(r"^AUTHAPI_METRICS_TOKEN=", (ROOT / "deploy/example.env").read_text(), re.M)
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    [job] = prometheus["scrape_configs"]
    assert job["authorization"]["type"] == "Bearer"
    assert job["authorization"]["credentials_file"]
    [targets] = [group["targets"] for group in job["static_configs"]]
    assert sorted(targets) == sorted(f"{name}:8000" for name in instances())
