"""What a scenario hands back: figures per run, their medians, and the targets."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); nan if empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Target:
    """A figure's goal from issue 6: `key` (a figure) `op` `threshold`."""

    key: str
    op: Literal[">=", "<=", "<"]
    threshold: float

    def met(self, value: float) -> bool:
        if value != value:  # nan: not measured
            return False
        if self.op == ">=":
            return value >= self.threshold
        if self.op == "<=":
            return value <= self.threshold
        return value < self.threshold

    def text(self, unit: str = "") -> str:
        op = {">=": "≥", "<=": "≤", "<": "<"}[self.op]
        return f"{op} {self.threshold:g}{unit}"


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str = ""


@dataclass
class ScenarioResult:
    """Filled in by a scenario; `error` set when it crashed (the report shows it and
    the command exits non-zero)."""

    name: str
    title: str
    what: str
    figures: list[Figure]
    targets: list[Target] = field(default_factory=list)
    runs: list[dict[str, float]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    stolen_share: float = float("nan")  # of the machine's CPU time, by the hypervisor

    def median(self, key: str) -> float:
        values = [run[key] for run in self.runs if key in run and run[key] == run[key]]
        return statistics.median(values) if values else float("nan")

    def target_for(self, key: str) -> Target | None:
        return next((target for target in self.targets if target.key == key), None)
