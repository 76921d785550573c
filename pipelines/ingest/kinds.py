"""What a source kind is: the contract between the ingest driver (``pipelines.ingest.driver``)
and its inputs (files in ``pipelines.ingest.batch``, cameras in ``pipelines.live.cameras``,
Kafka topics in ``pipelines.kafka.topic``), and what the driver says of each source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import ray

from operators.records import Segment
from pipelines.ingest.runtime import SourceReport
from pipelines.ingest.sources import SourceRef


@dataclass(slots=True)
class SourceOutcome:
    ref: SourceRef
    error: str | None = None
    report: SourceReport | None = None
    segments_indexed: int = 0
    skipped: bool = False
    segments_failed: int = 0
    """Segments given up after ``driver.MAX_ATTEMPTS`` (or that could not be written): not indexed."""
    restarts: int = 0
    """Times its reader died and was replaced."""


class SourceKind(Protocol):
    """What the driver asks of an input. Every call is made from the driver's thread."""

    live: bool
    """Runs until stopped: the driver saves as it goes, writes statuses and sends live events."""

    replays: bool
    """A new reader can read again what a dead one gave (a file): the driver then drops the
    source's segments not yet written and reopens at the first of them. False (a camera): what
    was read is all there is."""

    def start(self, cpus: float) -> list[ray.ObjectRef]:
        """Create the reader actors (``cpus`` each); returns what to wait on for them to be ready."""

    def take(self) -> list[SourceOutcome]:
        """Sources to start reading now (``[]`` when none is ready or no reader is free)."""

    def pending(self) -> bool:
        """More sources may come from ``take``: the run is not over while this is true."""

    def open(self, outcome: SourceOutcome):
        """The streaming generator of the source's segments, ending with a ``SourceReport``."""

    def reopen(self, outcome: SourceOutcome, resume_after_ns: int):
        """Its reader died: a generator from a fresh one that continues after ``resume_after_ns``
        (the end of what the driver pulled of it), or None to fail the source."""

    def on_segment(self, outcome: SourceOutcome, segment: Segment) -> None:
        """Each segment as it is pulled, in the source's time order, before it can be written."""

    def durable(self, outcome: SourceOutcome, t_ns: int, *, final: bool = False) -> None:
        """Every segment of the source before stream time ``t_ns`` is in the saved index
        (``final``: the source ended, wait until that is acted on)."""

    def release(self, outcome: SourceOutcome) -> None:
        """The driver is done with the source (its reader may take another)."""

    def status(self, outcome: SourceOutcome) -> dict | None:
        """The reader's view of a live source, for its status file; None if it cannot say now."""

    def stop(self) -> None:
        """Stop reading: every source ends after what was read, which is indexed."""


Progress = Callable[[int, float], None]
"""Called with (segments indexed so far, media seconds indexed so far)."""
