"""What every benchmark group reports: figures against a bar, and the timing helpers they share."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

REPEATS = 3


@dataclass
class Figure:
    name: str
    value: str
    ratio: float | None
    bar: str
    met: bool | None
    command: str = "make bench"  # the narrowest command that measures it: `make bench ONLY=<group>`


def best_of(run: Callable[[], object], repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def interleaved(baseline: Callable[[], object], measured: Callable[[], object], repeats: int) -> tuple[float, float]:
    """The best time of each, run in turns: a machine busier for a while slows both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for run, kept in zip((baseline, measured), times, strict=True):
            start = time.perf_counter()
            run()
            kept.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def cpu_of(run: Callable[[], object]) -> float:
    start = time.process_time()
    run()
    return time.process_time() - start
