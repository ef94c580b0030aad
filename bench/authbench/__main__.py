"""`python -m authbench [--quick] [--profile] [--only NAME ...]`: run the scenarios,
write RESULTS.md (full: bench/RESULTS.md; quick: bench/.work/quick/RESULTS.md;
profile: bench/.work/profile/). Exit status 1 if any scenario crashed; speed is never
asserted. scripts/bench installs what this needs and then runs it."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from types import FrameType

from authbench import machine, report, servers
from authbench.config import make_config
from authbench.scenarios import SCENARIOS

PROFILED = ("access", "peer", "refresh")


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run: tiny sizes, 1 run")
    parser.add_argument(
        "--profile",
        action="store_true",
        help=f"py-spy the server during {', '.join(PROFILED)} (1 run each)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="nice value of the servers and load generators, e.g. -10 on a machine "
        "shared with other work (root); PostgreSQL keeps its own (0)",
    )
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), help="these scenarios")
    parser.add_argument(
        "--skip", nargs="+", choices=list(SCENARIOS), default=[], help="all but these"
    )
    parser.add_argument("--output", type=Path, help="directory for RESULTS.md")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def terminated(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # so that the servers are stopped

    signal.signal(signal.SIGTERM, terminated)
    if args.nice and not servers.set_priority(args.nice):
        say(f"could not set nice {args.nice} (root?); running at normal priority")
        args.nice = 0
    config = make_config(args.quick, args.output, profile=args.profile, nice=args.nice)
    names = args.only or (list(PROFILED) if args.profile else list(SCENARIOS))
    names = [name for name in names if name not in args.skip]
    if config.client_cpu is not None:
        os.sched_setaffinity(0, {config.client_cpu})
    command = shlex.join(["scripts/bench", *(argv if argv is not None else sys.argv[1:])])
    started = time.monotonic()
    facts = machine.facts()
    results, loads = [], []
    try:
        for name in names:
            scenario = SCENARIOS[name]
            result = scenario.describe(config)
            loads.append(f"{name}: {machine.load_average()}")
            say(f"== {name} ({config.mode}): {result.what}")
            begun = time.monotonic()
            ticks = machine.cpu_ticks()
            try:
                scenario.measure(config, result)
            except Exception:  # noqa: BLE001 - recorded, reported, and the exit status says it
                result.error = traceback.format_exc()
                say(f"   CRASHED:\n{result.error}")
            finally:
                servers.stop_all()
                result.seconds = time.monotonic() - begun
                result.stolen_share = machine.stolen_share(ticks, machine.cpu_ticks())
            for figure in result.figures:
                say(f"   {figure.label}: {report.number(result.median(figure.key))}{figure.unit}")
            results.append(result)
    finally:
        servers.stop_all()
    loads.append(f"end: {machine.load_average()}")
    seconds = time.monotonic() - started
    config.output_dir.mkdir(parents=True, exist_ok=True)
    text = report.render(config, facts, results, loads, command, seconds)
    config.results_md.write_text(text)
    raw = {"facts": facts, "loads": loads, "results": [asdict(result) for result in results]}
    config.raw_json.parent.mkdir(parents=True, exist_ok=True)
    config.raw_json.write_text(json.dumps(raw, indent=2, default=str) + "\n")
    say(f"written: {config.results_md} ({seconds:.0f} s)")
    crashed = [result.name for result in results if result.error]
    if crashed:
        say(f"crashed: {', '.join(crashed)}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
