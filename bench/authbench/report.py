"""RESULTS.md: the summary table (medians, targets), the machine, the commands, and
every run's figures."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

from authbench.config import BenchConfig
from authbench.results import ScenarioResult


def number(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def summary_rows(result: ScenarioResult) -> list[str]:
    if result.error:
        last = result.error.strip().splitlines()[-1][:150]
        return [f"| {result.title} | **crashed**: {last} | | | | | |"]
    rows = []
    for figure in result.figures:
        value = result.median(figure.key)
        runs = ", ".join(number(run[figure.key]) for run in result.runs if figure.key in run)
        target = result.target_for(figure.key)
        goal = verdict = quotient = ""
        if target is not None:
            goal = target.text(figure.unit.strip() if figure.unit.startswith(" ") else "")
            quotient = number(value / target.threshold)
            verdict = "**met**" if target.met(value) else "**not met**"
        cells = [result.title, figure.label, f"{number(value)}{figure.unit}", runs]
        rows.append("| " + " | ".join([*cells, goal, quotient, verdict]) + " |")
    return rows


# Above this share of the CPU time stolen by the hypervisor, latencies are not the code's.
NOISY_STEAL = 0.05


def percent(share: float) -> str:
    return "—" if math.isnan(share) else f"{share * 100:.1f} %"


def machine_lines(
    facts: dict[str, Any],
    config: BenchConfig,
    loads: Sequence[str],
    results: Sequence[ScenarioResult],
) -> list[str]:
    pg = facts["postgres"]
    packages = ", ".join(f"{name} {version}" for name, version in facts["packages"].items())
    peer = ", ".join(f"{name} {version}" for name, version in facts["peer_packages"].items())
    simplejwt = ", ".join(
        f"{name} {version}" for name, version in facts["simplejwt_packages"].items()
    )
    source = facts["source"]
    code = f"commit {source['commit']}"
    if source["uncommitted"]:
        code += f", with uncommitted changes to {source['uncommitted']}"
    return [
        f"- CPU: {facts['cpu_model']}, {facts['cpus']} cores; memory {facts['memory']}",
        f"- Pinning: every server on CPU {config.server_cpu} (`taskset`), every load "
        f"generator (wrk, the Python drivers, the bench itself) on CPU {config.client_cpu}; "
        "PostgreSQL's backends are not pinned"
        + (f"; servers and load generators at nice {config.nice}." if config.nice else "."),
        f"- OS: {facts['os']}, Linux {facts['kernel']}; Python {facts['python']}; {facts['wrk']}",
        f"- authapi's packages: {packages}",
        f"- the peer's packages (bench/.work/peer-venv): {peer or 'not installed'}",
        f"- the simplejwt peer's packages (bench/.work/simplejwt-venv): "
        f"{simplejwt or 'not installed'}",
        f"- PostgreSQL: {pg['version']}; shared_buffers {pg['shared_buffers']}, "
        f"synchronous_commit {pg['synchronous_commit']}, max_connections {pg['max_connections']}",
        f"- Code measured: {code}",
        f"- Load average (1, 5, 15 min) before each scenario: {'; '.join(loads)}",
        "- CPU time stolen by the hypervisor (`steal` in /proc/stat, a share of all the "
        "machine's CPU time) during each scenario: "
        + "; ".join(f"{result.name} {percent(result.stolen_share)}" for result in results),
    ]


def render(
    config: BenchConfig,
    facts: dict[str, Any],
    results: Sequence[ScenarioResult],
    loads: Sequence[str],
    command: str,
    seconds: float,
) -> str:
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    shared = max(float(load.split(": ", 1)[-1].split()[0]) for load in loads) if loads else 0.0
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{command}` on {date} in {seconds / 60:.1f} min ({config.mode} mode: "
        f"medians of {config.runs} run(s) per scenario). Do not edit: rerun the command. "
        "How to read it: bench/README.md.",
        "",
    ]
    if shared > 0.5:
        lines += [
            f"**The machine was shared** with other work during this run (1-minute load "
            f"average up to {shared:.2f} on {facts['cpus']} cores, see Machine): absolute "
            "figures are noisy; the targets are ratios taken within each run.",
            "",
        ]
    stolen = [result for result in results if result.stolen_share > NOISY_STEAL]
    if stolen:
        lines += [
            "**The hypervisor took CPU time from this machine** during "
            + ", ".join(f"{result.name} ({percent(result.stolen_share)})" for result in stolen)
            + " (see Machine): its CPUs stood still at moments the run could not see, so "
            "latencies, the p99s most, are noisier there than the code makes them.",
            "",
        ]
    lines += [
        "## Summary",
        "",
        "| scenario | figure | median | runs | target | median ÷ target | |",
        "|---|---|---:|---|---|---:|---|",
    ]
    for result in results:
        lines += summary_rows(result)
    lines += ["", "## Machine", "", *machine_lines(facts, config, loads, results), ""]
    lines += ["## Scenarios", ""]
    for result in results:
        lines += [
            f"### {result.title} (`{result.name}`, {result.seconds:.0f} s)",
            "",
            result.what,
            "",
        ]
        if result.error:
            lines += ["**Crashed:**", "", "```", result.error.strip()[-3000:], "```", ""]
        if result.commands:
            lines += ["```sh", *result.commands, "```", ""]
        lines += [f"- {note}" for note in result.notes]
        if result.notes:
            lines.append("")
    return "\n".join(lines)
