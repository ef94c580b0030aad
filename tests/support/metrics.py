"""Reading GET /metrics: scrapes, and the change of a metric between two of them."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.factories import bearer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
METRICS_TOKEN = "scrape-secret-0123"  # noqa: S105 - a test's own


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics", headers=bearer(METRICS_TOKEN))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class Change:
    """The difference in one metric between two scrapes."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.before: Samples = {}
        self.after: Samples = {}

    async def __aenter__(self) -> Change:
        self.before = await scrape(self.client)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.after = await scrape(self.client)

    def __call__(self, name: str, **labels: str) -> float:
        return value(self.after, name, **labels) - value(self.before, name, **labels)
