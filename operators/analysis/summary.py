"""Summaries as people read them: chapters with their times, a few sentences for the whole source,
and the timeline of highlights.

Chapters follow the shots: a shot is a chapter (adjacent ones merged when they show the same
thing) until a source has more than ``max_chapters`` shots; then a chapter gathers the shots of
about a ``max_chapters``-th of the source, cut where the picture changes, and says the subject of
each shot it holds in order, so a 90-s clip and a 90-min match are both covered end to end. A
long shot is cut in time, about an eighth of the source (8 s to 5 min). Past eight chapters they
are gathered in parts (chapters of chapters), cut where neighbouring chapters differ most, each
told in one line: its subjects, its most central sentence, its highlights.

The ``offline`` profile writes from what was detected: per chapter what was seen most (visual
labels weighted by confidence over its segments), the sounds that stand out, its most
representative sentence and its highlights; for the whole source the subjects in order, the
sound, the key sentences and the highlights. Key sentences are chosen by maximal marginal
relevance over their MiniLM embeddings: central to what is said overall (mean similarity to the
other sentences), but not repeating one another.

With a ``vlm`` backend the model writes each chapter's line and the overview from the same
material (segment captions included); times and the timeline stay computed, never generated.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from operators.base import Operator, Resources
from operators.analysis.highlights import HighlightMoment
from operators.records import NS_PER_SECOND, Scored, Span
from operators.models.text import TextEncoder
from operators.models.vlm import Prompt, VlmBackend, VlmConfig, load_backend

log = logging.getLogger(__name__)

QUIET_SOUNDS = {"Speech", "Silence", "Narration, monologue", "Conversation", "Male speech, man speaking",
                "Female speech, woman speaking", "Speech synthesizer", "Radio", "Echo", "Reverberation"}  # fmt: skip
"""Audio events too ordinary to mention (speech is quoted instead), with the room-tone classes
("Inside, small room", "Outside, urban or manmade"): a summary says what stands out."""
NOTABLE_SOUND_SCORE = 0.08
"""A sound is mentioned when its mean score over the segments described reaches this."""


@dataclass(frozen=True, slots=True)
class SegmentFacts:
    """What the summary may use of one segment (a stored segment, shorn of its vectors)."""

    start_ns: int
    end_ns: int
    description: str
    labels: Scored
    events: Scored
    transcript: str


@dataclass(frozen=True, slots=True)
class SummaryInput:
    source_id: str
    name: str
    duration_ns: int
    segments: tuple[SegmentFacts, ...]  # in time order
    cuts_ns: tuple[int, ...]
    highlights: tuple[HighlightMoment, ...]
    start_ns: int = 0
    """Where the part summarised starts (a live stream's chapter: ``[start_ns, duration_ns)``)."""


@dataclass(frozen=True, slots=True)
class Chapter:
    span: Span
    text: str
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Part:
    """Chapters of chapters: ``chapters[first:last + 1]`` of a long source, told in one line."""

    span: Span
    text: str
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class Summary:
    source_id: str
    text: str
    chapters: tuple[Chapter, ...]
    timeline: tuple[HighlightMoment, ...]  # in time order
    profile: str
    """Who wrote ``text``: "vlm" (the model), or "offline" (the offline profile, or a model that
    wrote nothing: the offline wording then stands in, and a warning says so)."""
    parts: tuple[Part, ...] = ()
    """Empty while a source has at most ``SummaryConfig.chapters_per_part`` chapters."""

    def to_json(self) -> dict:
        return {
            "source_id": self.source_id,
            "profile": self.profile,
            "text": self.text,
            "chapters": [{"start": c.span.start_seconds, "end": c.span.end_seconds, "text": c.text, "labels": list(c.labels)}
                         for c in self.chapters],
            "timeline": [{"start": h.span.start_seconds, "end": h.span.end_seconds, "score": h.score,
                          "labels": list(h.labels), "reason": h.reason} for h in self.timeline],
            "parts": [{"start": p.span.start_seconds, "end": p.span.end_seconds, "text": p.text,
                       "chapters": [p.first, p.last]} for p in self.parts],
        }

    @classmethod
    def from_json(cls, data: dict) -> Summary:
        def span(item: dict) -> Span:
            return Span(round(item["start"] * NS_PER_SECOND), round(item["end"] * NS_PER_SECOND))

        chapters = tuple(Chapter(span(c), c["text"], tuple(c["labels"])) for c in data["chapters"])
        timeline = tuple(HighlightMoment(data["source_id"], span(h), h["score"], tuple(h["labels"]), h["reason"], ())
                         for h in data["timeline"])
        parts = tuple(Part(span(p), p["text"], *p["chapters"]) for p in data.get("parts", ()))  # older summaries have none
        return cls(data["source_id"], data["text"], chapters, timeline, data["profile"], parts)

    def render(self, name: str) -> str:
        """The summary as a person reads it in a terminal (a long source's chapters under its parts)."""
        lines = [f"{name}", "", self.text, "", "Chapters:"]
        chapter_lines = [f"  {clock(c.span.start_ns)}-{clock(c.span.end_ns)}  {c.text}" for c in self.chapters]
        if not self.parts:
            lines += chapter_lines
        for number, part in enumerate(self.parts, 1):
            lines.append(f"  Part {number}, {clock(part.span.start_ns)}-{clock(part.span.end_ns)}: {part.text}")
            lines += ["  " + line for line in chapter_lines[part.first:part.last + 1]]
        if self.timeline:
            lines += ["", "Highlights:"]
            lines += [f"  {clock(h.span.start_ns)}-{clock(h.span.end_ns)}  {h.score:.2f}  {h.reason}" for h in self.timeline]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class SummaryConfig:
    min_chapter_ns: int = 4 * NS_PER_SECOND
    max_chapter_ns: int = 5 * 60 * NS_PER_SECOND
    max_chapters: int = 40
    """Shots become chapters up to this many; past it, chapters gather shots (see the module doc)."""
    chapters_per_source: int = 8
    """A shot longer than twice an eighth of the source (8 s to ``max_chapter_ns``) is cut in time."""
    key_sentences: int = 4
    quotes_per_chapter: int = 2
    chapters_per_part: int = 8
    """Past this many chapters they are gathered in parts of about as many (chapters of chapters),
    each cut where neighbouring chapters differ most in what they show (TextTiling's idea)."""
    mmr_lambda: float = 0.7
    """Relevance against novelty when picking key sentences: 1 picks the most central ones even if
    they say the same thing; 0 picks the most different ones even if marginal."""


class Summariser(Operator[SummaryInput, Summary]):
    """``offline`` when ``vlm`` is None, else the model writes the prose."""

    name = "summary"

    def __init__(self, *, text_encoder: TextEncoder | None = None, vlm: VlmConfig | None = None,
                 config: SummaryConfig = SummaryConfig(), resources: Resources | None = None) -> None:
        super().__init__(resources=resources or Resources(cpus=0.1, memory_mb=256), batch_size=1)
        self.text_encoder = text_encoder or TextEncoder()
        self.vlm = vlm
        self.config = config
        self._backend: VlmBackend | None = None

    def setup(self) -> None:
        self.text_encoder.setup()
        if self.vlm is not None:
            self._backend = load_backend(self.vlm)

    def process(self, batch: Sequence[SummaryInput]) -> list[Summary]:
        return [self.summarise(item) for item in batch]

    def summarise(self, item: SummaryInput) -> Summary:
        start = item.start_ns
        spans = [Span(span.start_ns + start, span.end_ns + start) for span in
                 chapter_spans(item.duration_ns - start, [t - start for t in item.cuts_ns], self.config)]
        spans = self._same_thing_merged(spans, item.segments, item.cuts_ns)
        sentences = _sentences(item.segments)
        key = self._key_sentences(sentences)
        timeline = tuple(sorted(item.highlights, key=lambda h: h.span.start_ns))
        chapters = []
        for span in spans:
            inside = [s for s in item.segments if span.start_ns <= s.start_ns < span.end_ns]
            if not inside:  # a live stream that was down: nothing to tell
                continue
            quotes = [text for start, text in sentences if span.start_ns <= start < span.end_ns]
            chapter_highlights = [h for h in timeline if span.start_ns <= h.span.start_ns < span.end_ns]
            shots = _shot_subjects(span, inside, item.cuts_ns)
            chapters.append(self._chapter(span, inside, self._key_sentences(quotes, self.config.quotes_per_chapter),
                                          chapter_highlights, shots))
        text = self._model_overview(item, chapters, key) if self._backend is not None else ""
        written_by = "vlm" if text else "offline"  # who wrote the overview, said in the summary
        return Summary(item.source_id, text or self._overview(item, chapters, key, timeline), tuple(chapters), timeline,
                       written_by, self._parts(chapters, sentences, timeline))

    def _parts(self, chapters: Sequence[Chapter], sentences: list[tuple[int, str]],
               timeline: Sequence[HighlightMoment]) -> tuple[Part, ...]:
        """Runs of about ``chapters_per_part`` chapters, each told by its subjects, its most
        central sentence and its highlights."""
        per = self.config.chapters_per_part
        if len(chapters) <= per:
            return ()
        parts = []
        shown = [", ".join(c.labels) or c.text for c in chapters]  # what each shows: the prose's boilerplate would blur it
        for first, last in part_bounds(self.text_encoder.embed(shown), per):
            span = Span(chapters[first].span.start_ns, chapters[last].span.end_ns)
            subjects = list(dict.fromkeys(label for c in chapters[first:last + 1] for label in c.labels[:1]))
            quotes = self._key_sentences([text for start, text in sentences if span.start_ns <= start < span.end_ns], 1)
            moments = [h for h in timeline if span.start_ns <= h.span.start_ns < span.end_ns]
            words = [f"Chapters {first + 1}-{last + 1}."]
            if subjects:
                more = len(subjects) - 4
                words.append(f"{_upper_first(_join([_article(x) for x in subjects[:4]]))}" + (f" and {more} more." if more > 0 else "."))
            if quotes:
                words.append(f"Someone says: “{quotes[0]}”")
            if moments:
                best = max(moments, key=lambda h: h.score)
                words.append(f"{len(moments)} highlight{'s' if len(moments) != 1 else ''}, the strongest at "
                             f"{clock(best.span.start_ns)} ({_lower_first(best.reason)}).")
            parts.append(Part(span, " ".join(words), first, last))
        return tuple(parts)

    def _same_thing_merged(self, spans: list[Span], segments: Sequence[SegmentFacts], cuts_ns: Sequence[int]) -> list[Span]:
        """Adjacent chapters that each show one and the same subject, joined (within ``max_chapter_ns``)."""
        merged: list[tuple[Span, str | None]] = []
        for span in spans:
            subjects = _shot_subjects(span, [s for s in segments if span.start_ns <= s.start_ns < span.end_ns], cuts_ns)
            subject = subjects[0] if len(subjects) == 1 else None
            if merged and subject is not None and merged[-1][1] == subject \
                    and span.end_ns - merged[-1][0].start_ns <= self.config.max_chapter_ns:
                merged[-1] = (Span(merged[-1][0].start_ns, span.end_ns), subject)
            else:
                merged.append((span, subject))
        return [span for span, _ in merged]

    def _key_sentences(self, sentences, k: int | None = None) -> list[str]:
        texts = [s if isinstance(s, str) else s[1] for s in sentences]
        k = k or self.config.key_sentences
        if len(texts) <= 1:
            return texts[:k]
        vectors = self.text_encoder.embed(texts)
        chosen = mmr(vectors, k, self.config.mmr_lambda)
        return [texts[i] for i in sorted(chosen)]  # in the order they were said

    def _chapter(self, span: Span, segments: Sequence[SegmentFacts], quotes: list[str],
                 highlights: Sequence[HighlightMoment], shots: Sequence[str] = ()) -> Chapter:
        seen = dominant(segment.labels for segment in segments)[:2]
        heard = notable_sounds(segments)[:2]
        if self._backend is not None:
            material = " ".join(s.description for s in segments)
            prompt = (f"Detected in a video from {clock(span.start_ns)} to {clock(span.end_ns)}: {material}\n"
                      "Describe this part of the video in one sentence.")
            written = self._backend.generate([Prompt(prompt)])[0].strip()
            if written:
                return Chapter(span, written, tuple(seen))
            log.warning("the vlm wrote nothing for %s-%s: that chapter is in the offline wording",
                        clock(span.start_ns), clock(span.end_ns))
        parts = []
        if len(shots) > 1:  # a chapter that gathers shots names each one's subject, in order
            parts.append(f"{_upper_first(', then '.join(_article(s) for s in shots))}.")
        elif seen:
            parts.append(_shows(seen))
        if heard:
            parts.append(f"{_upper_first(_join([h.lower() for h in heard]))} can be heard.")
        if quotes:
            parts.append("Someone says: " + " ".join(f"“{q}”" for q in quotes))
        for moment in highlights:
            parts.append(f"Highlight at {clock(moment.span.start_ns)}: {_lower_first(moment.reason)}.")
        return Chapter(span, " ".join(parts) or "Nothing recognised.", tuple(seen))

    def _model_overview(self, item: SummaryInput, chapters: Sequence[Chapter], key: list[str]) -> str:
        """The model's overview; "" (and a warning) when it wrote nothing."""
        lines = "\n".join(f"{clock(c.span.start_ns)}-{clock(c.span.end_ns)}: {c.text}" for c in chapters)
        said = " ".join(f"“{s}”" for s in key)
        prompt = f"Chapters of the video {item.name}:\n{lines}\nKey things said: {said}\nSummarise the whole video in two or three sentences."
        written = self._backend.generate([Prompt(prompt)])[0].strip()
        if not written:
            log.warning("the vlm wrote no overview of %s: the summary is in the offline wording", item.name)
        return written

    def _overview(self, item: SummaryInput, chapters: Sequence[Chapter], key: list[str],
                  timeline: Sequence[HighlightMoment]) -> str:
        length = duration_words(item.duration_ns - item.start_ns)
        count = f"{len(chapters)} chapter{'s' if len(chapters) != 1 else ''}"
        if item.start_ns:
            parts = [f"From {clock(item.start_ns)} to {clock(item.duration_ns)}, in {count}."]
        else:
            parts = [f"A {length} video in {count}."]
        subjects = []
        for chapter in chapters:
            for label in chapter.labels[:1]:
                if label not in subjects:
                    subjects.append(label)
        if subjects:
            parts.append(f"It shows {_join([_article(s) for s in subjects])}.")
        heard = notable_sounds(item.segments)[:3]
        speech = sum(1 for seg in item.segments if seg.transcript) / max(1, len(item.segments))
        if speech > 0.2:
            parts.append(f"Someone speaks through {'most' if speech > 0.6 else 'part'} of it" +
                         (f"; {_join([h.lower() for h in heard])} can also be heard." if heard else "."))
        elif heard:
            parts.append(f"{_upper_first(_join([h.lower() for h in heard]))} can be heard.")
        if key:
            parts.append("Key lines: " + " ".join(f"“{s}”" for s in key))
        if timeline:
            best = max(timeline, key=lambda h: h.score)
            parts.append(f"{len(timeline)} highlight{'s' if len(timeline) != 1 else ''}; the strongest at "
                         f"{clock(best.span.start_ns)} ({_lower_first(best.reason)}).")
        return " ".join(parts)


def chapter_spans(duration_ns: int, cuts_ns: Sequence[int], config: SummaryConfig = SummaryConfig()) -> list[Span]:
    """Chapters over ``[0, duration_ns)``: cut at shot boundaries once a chapter is long enough
    (an eighth of the source, within the config's bounds), split in time when a shot is too long."""
    if duration_ns <= 0:
        return []
    target = int(np.clip(duration_ns // config.max_chapters, config.min_chapter_ns, config.max_chapter_ns))
    in_time = int(np.clip(duration_ns // config.chapters_per_source, 2 * config.min_chapter_ns, config.max_chapter_ns))
    bounds, start = [0], 0
    for cut in sorted(t for t in cuts_ns if 0 < t < duration_ns):
        while cut - start > 2 * in_time:  # a long shot: cut it in time
            start += in_time
            bounds.append(start)
        if cut - start >= target * 0.75 and duration_ns - cut >= max(target * 0.5, config.min_chapter_ns):
            bounds.append(cut)
            start = cut
    while duration_ns - start > 2 * in_time:
        start += in_time
        bounds.append(start)
    bounds.append(duration_ns)
    return [Span(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def part_bounds(vectors: np.ndarray, per: int) -> list[tuple[int, int]]:
    """``(first, last)`` chapter indices of parts of about ``per`` chapters (``vectors``: one
    L2-normalised row per chapter): each cut lies within a quarter part of the even split, where
    the chapters on either side are least alike."""
    n = len(vectors)
    count = -(-n // per)
    if count <= 1:
        return [(0, n - 1)] if n else []
    alike = np.einsum("ij,ij->i", vectors[:-1], vectors[1:])  # alike[i]: chapter i against i + 1
    reach = max(1, per // 4)
    starts = [0]
    for k in range(1, count):
        even = round(k * n / count)
        window = range(max(starts[-1] + 1, even - reach), min(n - 1, even + reach) + 1)
        starts.append(min(window, key=lambda b: (alike[b - 1], abs(b - even))) if len(window) else max(even, starts[-1] + 1))
    return [(a, b - 1) for a, b in zip(starts, [*starts[1:], n])]


def _shot_subjects(span: Span, segments: Sequence[SegmentFacts], cuts_ns: Sequence[int]) -> list[str]:
    """The subject of each shot inside ``span`` (its most seen label), in order, repeats joined."""
    edges = [span.start_ns, *sorted(t for t in cuts_ns if span.start_ns < t < span.end_ns), span.end_ns]
    subjects: list[str] = []
    for a, b in zip(edges, edges[1:]):
        top = dominant(s.labels for s in segments if a <= s.start_ns < b)[:1]
        if top and (not subjects or subjects[-1] != top[0]):
            subjects.append(top[0])
    return subjects


def mmr(vectors: np.ndarray, k: int, lam: float) -> list[int]:
    """Indices of ``k`` rows chosen by maximal marginal relevance: relevance is a row's mean cosine
    to all rows (centrality), the penalty its best cosine to rows already chosen."""
    n = len(vectors)
    similarity = vectors @ vectors.T
    centrality = (similarity.sum(axis=1) - 1.0) / max(1, n - 1)
    chosen: list[int] = []
    while len(chosen) < min(k, n):
        penalty = similarity[:, chosen].max(axis=1) if chosen else np.zeros(n)
        gain = lam * centrality - (1 - lam) * penalty
        gain[chosen] = -np.inf
        chosen.append(int(np.argmax(gain)))
    return chosen


def dominant(scored_lists, *, min_share: float = 0.1) -> list[str]:
    """Names ranked by their total score over many scored lists, those with a real share only."""
    totals: dict[str, float] = {}
    for scored in scored_lists:
        for name, score in scored:
            totals[name] = totals.get(name, 0.0) + score
    if not totals:
        return []
    whole = sum(totals.values())
    return [name for name in sorted(totals, key=lambda n: -totals[n]) if totals[name] >= min_share * whole]


def notable_sounds(segments: Sequence[SegmentFacts]) -> list[str]:
    """Sounds worth a mention over these segments, most present first: not speech or room tone,
    and present on average (a cheer heard in 2 of 40 segments of a chapter is a highlight's
    business, not the chapter's)."""
    totals: dict[str, float] = {}
    for segment in segments:
        for name, score in segment.events:
            if name not in QUIET_SOUNDS and not name.startswith(("Inside,", "Outside,")):
                totals[name] = totals.get(name, 0.0) + score
    n = max(1, len(segments))
    return [name for name in sorted(totals, key=lambda k: -totals[k]) if totals[name] / n >= NOTABLE_SOUND_SCORE]


def _sentences(segments: Sequence[SegmentFacts]) -> list[tuple[int, str]]:
    """What was said, cut into sentences, each with the start of the segment where it begins."""
    out: list[tuple[int, str]] = []
    current, start = [], None
    for segment in segments:
        for word in segment.transcript.split():
            if start is None:
                start = segment.start_ns
            current.append(word)
            if re.search(r"[.!?]$", word):
                out.append((start, " ".join(current)))
                current, start = [], None
        if not segment.transcript and current:  # a silent segment ends an unpunctuated sentence
            out.append((start, " ".join(current)))
            current, start = [], None
    if current:
        out.append((start, " ".join(current)))
    return [(t, s) for t, s in out if len(s.split()) >= 2]


def clock(t_ns: int) -> str:
    seconds = int(t_ns // NS_PER_SECOND)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def duration_words(duration_ns: int) -> str:
    seconds = duration_ns / NS_PER_SECOND
    if seconds < 90:
        return f"{round(seconds)}-second"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)}-minute"
    return f"{seconds / 3600:.1f}-hour"


def _article(label: str) -> str:
    return ("an " if label[0].lower() in "aeiou" else "a ") + label


def _join(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _lower_first(text: str) -> str:
    return text if text[:2].isupper() else text[:1].lower() + text[1:]


def _shows(labels: Sequence[str]) -> str:
    if len(labels) == 1:
        return f"{_upper_first(_article(labels[0]))}."
    return f"{_upper_first(_article(labels[0]))} (or {_article(labels[1])})."
