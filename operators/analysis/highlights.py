"""Highlight scores: how much each moment is worth watching, and why.

Four signals, each mapped to ``[0, 1]`` and fused into one score per segment:

- **a sound that stands out**: the AudioSet event whose score rose most above its own mean over
  the source's last ``baseline_ns`` (any event: a bark, a horn, an alarm, music starting, a
  crash, cheering), speech, silence and room tone left out. A stadium's crowd or a bar's music
  that never stops is its own baseline and stops counting; a source's first segment is only
  baseline (its room tone is not an event), an event from the second one on counts. Mapped from
  ``event_from`` (0) to ``event_full`` (1);
- **loudness rise**: the segment's level above the source's own running baseline (median of the
  last ``baseline_ns`` of sound, floored at ``quiet_floor_db`` so digital silence does not make
  every sound a rise): 0 at ``rise_from_db``, 1 at ``rise_full_db``;
- **visual activity**: motion above the source's running median, and cuts coming faster than
  usual (a broadcast cuts to replays and reaction shots at the big moments);
- **speech emphasis**: speech that is loud against the baseline, or exclaimed.

The weights (``HighlightConfig``) make a sound that stands out the main evidence and a loudness rise its
strongest corroboration: a rise alone, however long, stays below the default ``min_score`` (0.3),
and so do visual activity or emphasis alone, so a busy edit or a music swell without a reaction
is not called a highlight; loud exclaimed speech just reaches it. ``event_from`` and
``event_full`` were set on the dev split of ``bench/quality.py`` only.

The scorer is causal with a look-ahead of one segment: segment t is scored when segment t+1 has
been seen (or at ``flush``), and its score blends in its neighbours' so an event that straddles a
window boundary is not split in two. Baselines only ever look back. The same object serves a file
(all segments at once) and a live stream (one at a time).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import cache
from typing import Sequence

import numpy as np

from operators.base import Operator, Resources
from operators.models.classes import ROOM_CLASSES, SPEECH_CLASSES
from operators.records import NS_PER_SECOND, Scored, Span

AMBIENCE = ROOM_CLASSES | {
    "Noise", "Static", "White noise", "Pink noise", "Hum", "Mains hum", "Wind noise (microphone)", "Silence", "Sound effect",
    "Echo", "Reverberation",
}  # fmt: skip
"""AudioSet classes that describe the room or the recording, not something happening in it."""

EXCITEMENT = {
    "Cheering": "cheering", "Applause": "applause", "Clapping": "clapping", "Crowd": "crowd",
    "Hubbub, speech noise, speech babble": "crowd noise", "Chatter": "chatter",
    "Laughter": "laughter", "Belly laugh": "laughter", "Giggle": "laughter", "Chuckle, chortle": "laughter",
    "Shout": "shouting", "Yell": "shouting", "Screaming": "screaming", "Children shouting": "shouting",
    "Battle cry": "shouting", "Whoop": "whooping", "Roar": "roaring",
    "Whistle": "whistle", "Whistling": "whistling", "Vuvuzela": "vuvuzela", "Air horn, truck horn": "air horn",
    "Siren": "siren", "Civil defense siren": "siren", "Police car (siren)": "siren", "Ambulance (siren)": "siren",
    "Fire engine, fire truck (siren)": "siren", "Emergency vehicle": "siren", "Alarm": "alarm",
    "Gunshot, gunfire": "gunshot", "Machine gun": "gunfire", "Fusillade": "gunfire", "Artillery fire": "gunfire",
    "Explosion": "explosion", "Burst, pop": "bang", "Boom": "boom", "Fireworks": "fireworks", "Firecracker": "firecracker",
    "Glass": "breaking glass", "Shatter": "shattering",
}  # fmt: skip
"""AudioSet classes that mark excitement, and the words a reason uses for them."""


@dataclass(frozen=True, slots=True)
class HighlightConfig:
    weight_event: float = 0.55
    weight_loudness: float = 0.25
    weight_visual: float = 0.12
    weight_speech: float = 0.08
    event_from: float = 0.1
    event_full: float = 0.4
    """A sound counts from ``event_from`` above its baseline and fully at ``event_full`` (YAMNet's
    float graph, max-pooled over a 2-s window: a clear bark or horn scores 0.5-0.9, a faint one
    0.1-0.3)."""
    above_room_db: float = 3.0
    """A sound counts from this far above the room tone (the quietest tenth of the last minute's
    segments without speech, once five are known) and fully from twice as far: a hiss that the
    classifier names "breathing" is the room."""
    rise_from_db: float = 3.0
    rise_full_db: float = 15.0
    quiet_floor_db: float = -50.0
    baseline_ns: int = 60 * NS_PER_SECOND
    neighbour_weight: float = 0.25
    """Share of a segment's score taken from its stronger neighbour (the look-ahead)."""

    def __post_init__(self) -> None:
        weights = (self.weight_event, self.weight_loudness, self.weight_visual, self.weight_speech)
        if min(weights) < 0 or not 0.99 < sum(weights) < 1.01:
            raise ValueError(f"highlight weights must be non-negative and sum to 1, got {weights}")
        if (self.rise_full_db <= self.rise_from_db or self.event_full <= self.event_from
                or not 0 <= self.neighbour_weight < 1):
            raise ValueError(f"highlight config out of range: {self}")


@dataclass(frozen=True, slots=True)
class Signals:
    """What the scorer needs to know of one segment (from the fused record and the shot detector)."""

    segment_id: int
    source_id: str
    span: Span
    events: Scored
    loudness_db: float | None  # None: no audio track
    motion: float = 0.0
    cuts: int = 0
    transcript: str = ""
    audio_scores: np.ndarray | None = None  # float32 [521]: every AudioSet class (``events`` names the best few)


@dataclass(frozen=True, slots=True)
class HighlightScore:
    """A segment's highlight score in ``[0, 1]``, the words for what made it (``labels``, most
    telling first) and a short reason a person reads ("crowd cheering, 14 dB above the last minute")."""

    segment_id: int
    source_id: str
    span: Span
    score: float
    labels: tuple[str, ...]
    reason: str

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"a highlight score lies in [0, 1], got {self.score}")


@dataclass(slots=True)
class _Raw:
    signals: Signals
    score: float
    labels: tuple[str, ...]
    reason: str


class HighlightScorer(Operator[Signals, HighlightScore]):
    """Stateful: one per source, fed its segments in time order; emits each one segment late."""

    name = "highlights"

    def __init__(self, config: HighlightConfig = HighlightConfig()) -> None:
        super().__init__(resources=Resources(cpus=0.05, memory_mb=64), batch_size=1)
        self.config = config
        self._levels: deque[tuple[int, float]] = deque()  # (start_ns, loudness) of recent sound
        self._room: deque[tuple[int, float]] = deque()  # (start_ns, loudness) of recent segments without speech
        self._heard: deque[tuple[int, dict[str, float]]] = deque()  # (start_ns, event scores) of recent segments
        self._motions: deque[tuple[int, float]] = deque()
        self._cut_times: deque[int] = deque()
        self._cut_count = 0
        self._seen_ns = 0
        self._pending: list[_Raw] = []  # the last two raw scores: the one to emit and its look-ahead
        self._previous_raw = 0.0

    @property
    def emit_delay_ns(self) -> int:
        """One segment: a score waits for its successor."""
        return self._pending[-1].signals.span.duration_ns if self._pending else 0

    def process(self, batch: Sequence[Signals]) -> list[HighlightScore]:
        out = []
        for signals in batch:
            self._pending.append(self._raw(signals))
            if len(self._pending) == 2:
                out.append(self._emit(self._pending[0], following=self._pending[1].score))
                self._pending.pop(0)
        return out

    def flush(self) -> list[HighlightScore]:
        out = [self._emit(raw, following=0.0) for raw in self._pending]
        self._pending = []
        return out

    def _emit(self, raw: _Raw, *, following: float) -> HighlightScore:
        w = self.config.neighbour_weight
        score = (1 - w) * raw.score + w * max(self._previous_raw, following)
        self._previous_raw = raw.score
        s = raw.signals
        return HighlightScore(s.segment_id, s.source_id, s.span, round(float(np.clip(score, 0.0, 1.0)), 4), raw.labels, raw.reason)

    def _raw(self, s: Signals) -> _Raw:
        cfg = self.config
        baseline = self._baseline(s.span.start_ns)
        event_names, event_score = self._standing_out(s)
        heard = float(np.clip((event_score - cfg.event_from) / (cfg.event_full - cfg.event_from), 0, 1))
        room_db = self._room_tone_db(s.span.start_ns)
        if room_db is not None and s.loudness_db is not None:  # what only the room tone's level reaches is the room
            heard *= float(np.clip((s.loudness_db - room_db - cfg.above_room_db) / cfg.above_room_db, 0, 1))
        rise_db = None if s.loudness_db is None or baseline is None else s.loudness_db - max(baseline, cfg.quiet_floor_db)
        loud = 0.0 if rise_db is None else float(np.clip((rise_db - cfg.rise_from_db) / (cfg.rise_full_db - cfg.rise_from_db), 0, 1))
        visual, visual_word = self._visual(s)
        speaking = bool(s.events) and s.events[0][0] in SPEECH_CLASSES
        emphasis = 0.0
        if speaking and "!" in s.transcript:
            emphasis = 1.0 if loud > 0.3 else 0.6
        if speaking:
            loud = 0.0  # someone talking louder than the room tone is not an event; exclaiming may be
        score = cfg.weight_event * heard + cfg.weight_loudness * loud + cfg.weight_visual * visual + cfg.weight_speech * emphasis
        labels, parts = [], []
        if heard >= 0.3:
            labels.extend(event_names)
            parts.append(" and ".join(event_names))
        if loud > 0:
            labels.append("loud")
            parts.append(f"{rise_db:.0f} dB above the last minute")
        if visual >= 0.3:
            labels.append(visual_word)
            parts.append(visual_word)
        if emphasis:
            labels.append("emphatic speech")
            parts.append("emphatic speech")
        self._remember(s)
        reason = ", ".join(parts) if parts else "nothing stands out"
        return _Raw(s, score, tuple(labels), reason[0].upper() + reason[1:])

    def _standing_out(self, s: Signals) -> tuple[list[str], float]:
        """The events that rose above their mean over the recent segments (at most three, in
        words, most first), and by how much the first rose."""
        while self._heard and self._heard[0][0] < s.span.start_ns - self.config.baseline_ns:
            self._heard.popleft()
        past = [scores for _, scores in self._heard]
        if not past:  # a source's first segment is its baseline: its room tone is not an event
            return [], 0.0
        if s.audio_scores is not None and all(isinstance(p, np.ndarray) and p.shape == s.audio_scores.shape for p in past):
            rises = self._rises_of_all(s.audio_scores, np.mean(past, axis=0))
        else:  # only the named events are known (a store written before class scores were kept)
            past_events = [p if isinstance(p, dict) else {} for p in past]
            rises = [(name, score - sum(p.get(name, 0.0) for p in past_events) / len(past))
                     for name, score in s.events if name not in SPEECH_CLASSES and name not in AMBIENCE]
        if not rises:
            return [], 0.0
        rises.sort(key=lambda item: -item[1])
        names = list(dict.fromkeys(_words(name) for name, rise in rises[:3] if rise >= self.config.event_from))
        if {"crowd", "cheering"} <= set(names):
            names = ["crowd cheering", *(n for n in names if n not in ("crowd", "cheering"))]
        return names or [_words(rises[0][0])], rises[0][1]

    @staticmethod
    def _rises_of_all(scores: np.ndarray, mean: np.ndarray) -> list[tuple[str, float]]:
        """The rise above its recent mean (over all 521 classes, so the baseline is exact) of each
        of the segment's ten strongest event classes: what stands out is what is heard most and
        new, not a faint class that merely went from nothing to little (speech and room left out)."""
        names, countable = _audio_classes(scores.shape[0])
        strongest = np.argsort(-np.where(countable, scores, -np.inf), kind="stable")[:10]
        return [(names[i], float(scores[i] - mean[i])) for i in strongest if countable[i]]

    def _room_tone_db(self, now_ns: int) -> float | None:
        """The level of the quietest tenth of the source's segments without speech over the
        baseline window: its room tone, once five are known (fewer say nothing about it)."""
        while self._room and self._room[0][0] < now_ns - self.config.baseline_ns:
            self._room.popleft()
        return float(np.percentile([level for _, level in self._room], 10)) if len(self._room) >= 5 else None

    def _baseline(self, now_ns: int) -> float | None:
        while self._levels and self._levels[0][0] < now_ns - self.config.baseline_ns:
            self._levels.popleft()
        return float(np.median([level for _, level in self._levels])) if self._levels else None

    def _visual(self, s: Signals) -> tuple[float, str]:
        """Motion above this source's running median, and the recent cut rate against its own."""
        window_ns = self.config.baseline_ns
        while self._motions and self._motions[0][0] < s.span.start_ns - window_ns:
            self._motions.popleft()
        typical = float(np.median([m for _, m in self._motions])) if self._motions else s.motion
        motion = float(np.clip((s.motion - max(typical, 0.01)) / max(2 * typical, 0.03), 0, 1))
        while self._cut_times and self._cut_times[0] < s.span.start_ns - 10 * NS_PER_SECOND:
            self._cut_times.popleft()
        recent = len(self._cut_times) + s.cuts  # cuts in the last ~10 s
        seen_s = max(self._seen_ns / NS_PER_SECOND, 10.0)
        usual = self._cut_count / seen_s * 10.0  # cuts per 10 s so far
        cutting = float(np.clip((recent - max(usual, 1.0) * 2) / 3, 0, 1))
        return (motion, "fast motion") if motion >= cutting else (cutting, "rapid cuts")

    def _remember(self, s: Signals) -> None:
        self._heard.append((s.span.start_ns, s.audio_scores if s.audio_scores is not None else dict(s.events)))
        if s.loudness_db is not None and s.loudness_db > -90 and not (s.events and s.events[0][0] in SPEECH_CLASSES):
            self._room.append((s.span.start_ns, s.loudness_db))
        if s.loudness_db is not None and s.loudness_db > -90:
            self._levels.append((s.span.start_ns, s.loudness_db))
        self._motions.append((s.span.start_ns, s.motion))
        self._cut_times.extend([s.span.start_ns] * s.cuts)
        self._cut_count += s.cuts
        self._seen_ns = max(self._seen_ns, s.span.end_ns)


@cache
def _audio_classes(n: int) -> tuple[tuple[str, ...], np.ndarray]:
    """YAMNet's class names and which of them may stand out (not speech, silence or room tone)."""
    from operators.models.audio_events import audio_class_names  # the class map only: no model is loaded

    names = audio_class_names()
    if len(names) != n:
        raise ValueError(f"{n} audio class scores, but the audio classifier has {len(names)} classes")
    return names, np.array([name not in SPEECH_CLASSES and name not in AMBIENCE for name in names])


def _words(name: str) -> str:
    """A reason's words for an AudioSet class: "Dog" -> "dog", "Vehicle horn, car horn, honking" -> "vehicle horn"."""
    return EXCITEMENT.get(name) or name.split(",")[0].split(" (")[0].lower()


@dataclass(frozen=True, slots=True)
class HighlightMoment:
    """Adjacent highlight segments of one source merged into one clip; it scores its best segment
    and gives that segment's reason, with every label met along the clip."""

    source_id: str
    span: Span
    score: float
    labels: tuple[str, ...]
    reason: str
    segment_ids: tuple[int, ...]


def merge_highlights(scores: Sequence[HighlightScore], cuts_ns: Sequence[int] = (), *, min_score: float,
                     max_moment_ns: int = 60 * NS_PER_SECOND) -> list[HighlightMoment]:
    """Moments from one source's segment scores (any order), best first.

    Consecutive segments scoring at least ``min_score`` join while the clip stays within
    ``max_moment_ns``. A hard cut (at the junction nearest to it) ends a moment, unless the sound
    that made both sides a highlight goes on across it: a crowd that keeps cheering over a cut to
    the replay is one event."""
    ordered = sorted(scores, key=lambda s: s.span.start_ns)
    junctions = {_nearest_junction(ordered, t) for t in cuts_ns}
    runs: list[list[HighlightScore]] = []
    for i, score in enumerate(ordered):
        if score.score < min_score:
            continue
        run = runs[-1] if runs else None
        if (run is not None and run[-1] is ordered[i - 1] and run[-1].span.end_ns == score.span.start_ns
                and score.span.end_ns - run[0].span.start_ns <= max_moment_ns
                and (i not in junctions or _same_sound(run[-1], score))):
            run.append(score)
        else:
            runs.append([score])
    moments = [_moment(run) for run in runs]
    return sorted(moments, key=lambda m: (-m.score, m.span.start_ns))


def _nearest_junction(ordered: Sequence[HighlightScore], t_ns: int) -> int:
    """Index i of the segment whose start (the junction between i-1 and i) lies nearest ``t_ns``."""
    starts = np.array([s.span.start_ns for s in ordered], np.int64)
    return int(np.argmin(np.abs(starts - t_ns))) if len(starts) else -1


def _same_sound(a: HighlightScore, b: HighlightScore) -> bool:
    """Both sides were made highlights by what was heard (a cheer that turns to applause is one event)."""
    seen = {"fast motion", "rapid cuts", "emphatic speech"}
    return any(label not in seen for label in a.labels) and any(label not in seen for label in b.labels)


def _moment(run: Sequence[HighlightScore]) -> HighlightMoment:
    best = max(run, key=lambda s: s.score)
    weight: dict[str, float] = {}
    for s in run:
        for rank, label in enumerate(s.labels):
            weight[label] = weight.get(label, 0.0) + s.score / (1 + rank)
    labels = tuple(sorted(weight, key=lambda label: -weight[label]))
    return HighlightMoment(best.source_id, Span(run[0].span.start_ns, run[-1].span.end_ns), best.score, labels,
                           best.reason, tuple(s.segment_id for s in run))
