"""Wall-clock timings of a run's stages, collected by name and logged as they happen.

Each timed section logs one INFO line when it starts and one with its seconds when it ends, on the
`drift.timing` logger (the run's log file and console show them):

    [drift.timing][INFO] encode/new/corpus ...
    [drift.timing][INFO] encode/new/corpus: 41.2 s
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("drift.timing")


class Timings(dict[str, float]):
    """`with timings("encode/old/corpus"): ...` adds the seconds spent under that name."""

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        logger.info("%s ...", name)
        start = time.perf_counter()
        failed = True
        try:
            yield
            failed = False
        finally:
            seconds = time.perf_counter() - start
            self[name] = self.get(name, 0.0) + seconds
            logger.info("%s: %.1f s%s", name, seconds, " (failed)" if failed else "")
