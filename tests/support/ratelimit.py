"""What a refusal by a rate limit looks like (the contract's 429)."""

from __future__ import annotations

import httpx


def assert_rate_limited(response: httpx.Response, window: int = 60) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"] == "too_many_requests"
    assert set(response.json()) == {"error", "error_description"}
    assert 1 <= int(response.headers["retry-after"]) <= window
