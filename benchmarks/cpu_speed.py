"""How fast this machine's CPUs run, moment by moment: the machine's own stalls.

    .venv/bin/python benchmarks/cpu_speed.py [--seconds 30] [--interval 0.01]

On a virtual machine the host may take the CPUs away for a while; a guest
of some hypervisors (Firecracker's, here) is not told: ``/proc/stat``'s
steal time stays 0 and the time shows up as ordinary run time of whatever
was running. A latency measured across such a stall is the machine's, not
the server's. This samples it directly: one process per CPU, pinned to it
and real-time scheduled (``SCHED_FIFO``, when permitted) so that none of
the benchmark's own processes delays it, runs a fixed unit of work (about
0.3 ms at full speed) every ``--interval`` seconds and records how long it
took. A unit that takes more than ``SLOW`` times its CPU's median ran on a
CPU the host had taken back; those samples, widened by one interval on
each side and merged across CPUs (and when less than ``JOIN`` apart), are
the machine's stalls.

Alone it prints the stalls of ``--seconds`` seconds of an idle machine.
``benchmarks/chat.py`` runs it beside its send loop (``start`` and
``finish``; about 3 % of each CPU at the default interval) and reports the
latency of the messages clear of any stall next to that of all of them.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

SLOW = 2.0  # a unit this many times its CPU's median ran on a taken CPU
JOIN = 0.1  # seconds: stalls closer than this are one
DEFAULT_INTERVAL = 0.01  # seconds between two units on a CPU: ~3 % of it
UNIT_LOOPS = 6000  # iterations of the unit: ~0.3 ms on the reference machine


def _unit(loops: int) -> int:
    total = 0
    for i in range(loops):
        total += i
    return total


def trace(cpu: int, seconds: float, interval: float, loops: int = UNIT_LOOPS) -> list[tuple[float, float]]:
    """``(wall time of the start, seconds the unit took)`` for each unit run
    on ``cpu`` for ``seconds``, one every ``interval`` seconds."""
    os.sched_setaffinity(0, {cpu})
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (PermissionError, AttributeError):
        pass  # then it competes with the load like any process: stalls read longer
    samples = []
    end = time.time() + seconds
    while (now := time.time()) < end:
        started = time.perf_counter()
        _unit(loops)
        samples.append((now, time.perf_counter() - started))
        time.sleep(interval)
    return samples


@dataclass
class Stall:
    """A span when at least one CPU ran its unit at under 1/``SLOW`` of its
    median speed: ``start`` and ``end`` (wall seconds), ``speed`` the
    slowest unit's share of its median speed (0.25: four times slower)."""

    start: float
    end: float
    speed: float


def stalls(samples: dict[int, list[tuple[float, float]]], interval: float) -> list[Stall]:
    """The stalls of every CPU's ``trace``, those less than ``JOIN`` seconds
    apart merged into one."""
    marks = []
    for per_cpu in samples.values():
        if not per_cpu:
            continue
        median = statistics.median(d for _, d in per_cpu)
        marks += [(t - interval, t + d + interval, median / d) for t, d in per_cpu if d > SLOW * median]
    merged: list[Stall] = []
    for start, end, speed in sorted(marks):
        if merged and start <= merged[-1].end + JOIN:
            last = merged[-1]
            last.end, last.speed = max(last.end, end), min(last.speed, speed)
        else:
            merged.append(Stall(start, end, speed))
    return merged


def start(seconds: float, interval: float = DEFAULT_INTERVAL) -> list[subprocess.Popen]:
    """One tracing process per CPU this process may run on, for ``seconds``;
    ``finish`` collects them."""
    return [subprocess.Popen([sys.executable, __file__, "--trace-cpu", str(cpu), "--seconds", str(seconds),
                              "--interval", str(interval)], stdout=subprocess.PIPE, text=True)
            for cpu in sorted(os.sched_getaffinity(0))]


def finish(processes: list[subprocess.Popen]) -> dict[int, list[tuple[float, float]]]:
    """The samples of ``start``'s processes, by CPU (waits for them)."""
    result = {}
    for process in processes:
        out, _ = process.communicate()
        data = json.loads(out)
        result[data["cpu"]] = [tuple(s) for s in data["samples"]]
    return result


def summary(samples: dict[int, list[tuple[float, float]]], interval: float, origin: float) -> dict:
    """What the report says of a trace: per CPU the median unit (ms) and its
    slow units; the stalls (seconds after ``origin``, length in ms, slowest
    speed in %) and their share of the traced time."""
    found = stalls(samples, interval)
    medians = {cpu: statistics.median(d for _, d in s) for cpu, s in samples.items() if s}
    span = max((t for s in samples.values() for t, _ in s), default=origin) - min(
        (t for s in samples.values() for t, _ in s), default=origin)
    return {
        "cpus": {cpu: {"median_unit_ms": round(medians[cpu] * 1000, 3), "units": len(s),
                       "slow_units": sum(1 for _, d in s if d > SLOW * medians[cpu])}
                 for cpu, s in samples.items() if s},
        "stalls": [{"at_s": round(st.start - origin, 2), "ms": round((st.end - st.start) * 1000),
                    "slowest_speed_pct": round(st.speed * 100)} for st in found],
        "stalled_share_pct": round(100 * sum(st.end - st.start for st in found) / span, 1) if span else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL, help="seconds between two units on a CPU")
    parser.add_argument("--trace-cpu", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trace_cpu is not None:
        print(json.dumps({"cpu": args.trace_cpu, "samples": trace(args.trace_cpu, args.seconds, args.interval)}))
        return
    origin = time.time()
    load_before = os.getloadavg()[0]
    samples = finish(start(args.seconds, args.interval))
    result = summary(samples, args.interval, origin)
    gaps = [b["at_s"] - a["at_s"] for a, b in zip(result["stalls"], result["stalls"][1:], strict=False)]
    result["median_gap_between_stalls_s"] = round(statistics.median(gaps), 2) if gaps else None
    result["load_average_1m"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
