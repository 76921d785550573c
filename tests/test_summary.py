"""Summaries: chapters from cuts, key sentences by MMR, and the offline summariser on hand-made
segment facts with the real MiniLM text encoder.

The hand-made source (``SOURCE_FACTS``) is 24 s in 2-s segments with cuts at 8 and 16 s: a cat
(0-8 s), an espresso (8-16 s) and a rocket (16-24 s, with applause). Room tone ("Inside, small
room") and speech are heard throughout; a little music (0.05) once. What is said: two sentences
about the cat, the same sentence about coffee twice (once with "please"), and "the rocket is
ready for launch!" cut across two segments. One highlight, 18-22 s, for the applause.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from operators.analysis.highlights import HighlightMoment
from operators.records import NS_PER_SECOND, Span
from operators.analysis.summary import (
    SegmentFacts, Summariser, Summary, SummaryConfig, SummaryInput, chapter_spans, clock, mmr, notable_sounds, part_bounds,
)  # fmt: skip
from operators.models.text import TextEncoder

S = NS_PER_SECOND


# -- chapters ------------------------------------------------------------------------------------------


def seconds(spans: list[Span]) -> list[tuple[float, float]]:
    return [(s.start_ns / S, s.end_ns / S) for s in spans]


def test_a_short_source_gets_a_chapter_per_shot():
    spans = chapter_spans(48 * S, [8 * S * k for k in range(1, 6)])
    assert seconds(spans) == [(0, 8), (8, 16), (16, 24), (24, 32), (32, 40), (40, 48)]


def test_a_two_hour_source_with_many_cuts_gets_chapters_within_bounds_at_cuts():
    duration_ns = 2 * 3600 * S
    cuts = list(range(5 * S, duration_ns, 5 * S))
    config = SummaryConfig()
    spans = chapter_spans(duration_ns, cuts, config)
    assert spans[0].start_ns == 0 and spans[-1].end_ns == duration_ns
    assert all(a.end_ns == b.start_ns for a, b in zip(spans, spans[1:]))
    assert all(config.min_chapter_ns <= s.duration_ns <= config.max_chapter_ns for s in spans)
    assert all(s.start_ns in set(cuts) for s in spans[1:])  # every chapter starts at a cut
    # Past max_chapters (40) shots the target is a fortieth of the source (3 min, within 4 s-5 min);
    # a chapter closes at the first cut past 3/4 of it: between 2 h / 3 min = 40 and 2 h / 2.25 min = 54.
    assert 40 <= len(spans) <= 54


def test_without_cuts_a_source_is_split_in_time():
    assert seconds(chapter_spans(48 * S, [])) == [(0, 8), (8, 16), (16, 24), (24, 32), (32, 48)]  # the tail may reach 2x
    long_shot = chapter_spans(60 * S, [50 * S])  # a 50-s shot: cut in time, then at the cut
    assert seconds(long_shot) == [(0, 8), (8, 16), (16, 24), (24, 32), (32, 40), (40, 50), (50, 60)]
    assert chapter_spans(0, [S]) == []


def test_a_cut_too_near_the_end_does_not_make_a_stub_chapter():
    assert seconds(chapter_spans(48 * S, [8 * S, 46 * S])) == [(0, 8), (8, 16), (16, 24), (24, 32), (32, 48)]


# -- key sentences ---------------------------------------------------------------------------------------


def with_gram(gram: np.ndarray) -> np.ndarray:
    """Unit vectors whose pairwise cosines are exactly ``gram`` (rows of its Cholesky factor)."""
    return np.linalg.cholesky(gram).astype(np.float64)


def sentence_vectors() -> np.ndarray:
    """Row 0 is the central sentence, row 1 nearly repeats it (cosine 0.98), rows 2-7 are other
    sentences: 0.5 from row 0, 0.45 from row 1, 0.4 from each other."""
    n = 8
    gram = np.full((n, n), 0.4)
    gram[0, 1] = gram[1, 0] = 0.98
    gram[0, 2:] = gram[2:, 0] = 0.5
    gram[1, 2:] = gram[2:, 1] = 0.45
    np.fill_diagonal(gram, 1.0)
    return with_gram(gram)


def test_mmr_picks_the_central_sentence_first_and_not_its_repeat_second():
    vectors = sentence_vectors()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    chosen = mmr(vectors, 3, 0.7)
    assert chosen[0] == 0
    assert 1 not in chosen  # the near-repeat is the second most central, yet never picked
    assert set(chosen[1:]) <= set(range(2, 8))
    # Without the novelty term the repeat comes second: the penalty is what keeps it out.
    assert mmr(vectors, 2, 1.0) == [0, 1]


def test_mmr_returns_at_most_what_there_is():
    vectors = with_gram(np.array([[1.0, 0.2], [0.2, 1.0]]))
    assert sorted(mmr(vectors, 5, 0.7)) == [0, 1]


# -- the offline summariser --------------------------------------------------------------------------------


CAT = (("tabby cat", 0.6), ("Egyptian cat", 0.25), ("tiger cat", 0.05))
COFFEE = (("espresso", 0.55), ("coffee mug", 0.3), ("cup", 0.05))
ROCKET = (("missile", 0.5), ("projectile", 0.3), ("space shuttle", 0.1))
ROOM = (("Speech", 0.7), ("Inside, small room", 0.3))
APPLAUSE = (("Applause", 0.5), ("Speech", 0.3), ("Inside, small room", 0.3))


def facts(i: int, labels, events=ROOM, transcript: str = "") -> SegmentFacts:
    return SegmentFacts(2 * i * S, (2 * i + 2) * S, f"segment {i}", labels, events, transcript)


SOURCE_FACTS = (
    facts(0, CAT, transcript="the cat is sleeping on the sofa."), facts(1, CAT, transcript="she sleeps all day long."),
    facts(2, CAT), facts(3, CAT, (("Music", 0.05), *ROOM)),
    facts(4, COFFEE, transcript="a fresh cup of coffee."), facts(5, COFFEE, transcript="a fresh cup of coffee please."),
    facts(6, COFFEE), facts(7, COFFEE),
    facts(8, ROCKET, transcript="the rocket is ready"), facts(9, ROCKET, APPLAUSE, transcript="for launch!"),
    facts(10, ROCKET, APPLAUSE), facts(11, ROCKET, APPLAUSE),
)  # fmt: skip
APPLAUSE_MOMENT = HighlightMoment("rocket", Span(18 * S, 22 * S), 0.7, ("applause", "loud"),
                                  "Applause, 12 dB above the last minute", (101, 102))
ITEM = SummaryInput("rocket", "rocket.mp4", 24 * S, SOURCE_FACTS, (8 * S, 16 * S), (APPLAUSE_MOMENT,))


@pytest.fixture(scope="module")
def summary() -> Summary:
    encoder = TextEncoder(device="cpu")
    summariser = Summariser(text_encoder=encoder)
    summariser.setup()
    (out,) = summariser.process([ITEM])
    return out


def test_notable_sounds_leave_out_speech_room_tone_and_rare_sounds():
    assert notable_sounds(SOURCE_FACTS) == ["Applause"]  # 3 x 0.5 / 12 = 0.125; music 0.05 / 12 is rare
    assert notable_sounds(SOURCE_FACTS[:4]) == []


def test_chapters_follow_the_cuts_and_name_what_was_seen(summary):
    assert summary.profile == "offline" and summary.source_id == "rocket"
    assert seconds([c.span for c in summary.chapters]) == [(0, 8), (8, 16), (16, 24)]
    assert [c.labels for c in summary.chapters] == [("tabby cat", "Egyptian cat"), ("espresso", "coffee mug"),
                                                    ("missile", "projectile")]
    cat, coffee, rocket = (c.text for c in summary.chapters)
    assert cat.startswith("A tabby cat (or an Egyptian cat).")
    assert coffee.startswith("An espresso (or a coffee mug).")
    assert rocket.startswith("A missile (or a projectile).")
    assert "It shows a tabby cat, an espresso and a missile." in summary.text


def test_chapters_quote_what_was_said(summary):
    cat, coffee, rocket = (c.text for c in summary.chapters)
    assert "Someone says: “the cat is sleeping on the sofa.”" in cat or "Someone says: “she sleeps all day long.”" in cat
    assert "“a fresh cup of coffee" in coffee
    assert "Someone says: “the rocket is ready for launch!”" in rocket  # one sentence across two segments
    assert "Someone speaks through part of it" in summary.text


def test_key_lines_skip_a_repeated_sentence(summary):
    key = summary.text.split("Key lines: ", 1)[1]
    for line in ("the cat is sleeping on the sofa.", "she sleeps all day long.", "the rocket is ready for launch!"):
        assert f"“{line}”" in key
    # Four key lines from five sentences: the one left out is one of the two coffee sentences.
    coffee = [line for line in ("“a fresh cup of coffee.”", "“a fresh cup of coffee please.”") if line in key]
    assert len(coffee) == 1


def test_notable_sounds_are_mentioned_and_ordinary_ones_are_not(summary):
    cat, coffee, rocket = (c.text for c in summary.chapters)
    assert "Applause can be heard." in rocket
    assert "can be heard" not in cat and "can be heard" not in coffee
    assert "applause can also be heard" in summary.text
    everything = " ".join([summary.text, cat, coffee, rocket]).lower()
    for ordinary in ("small room", "inside", "speech", "music"):
        assert ordinary not in everything


def test_the_highlight_is_in_the_timeline_with_its_time(summary):
    assert summary.timeline == (APPLAUSE_MOMENT,)
    rocket = summary.chapters[2].text
    assert rocket.endswith("Highlight at 0:18: applause, 12 dB above the last minute.")
    assert "1 highlight; the strongest at 0:18 (applause, 12 dB above the last minute)." in summary.text
    assert "Highlight" not in summary.chapters[0].text + summary.chapters[1].text


def test_json_round_trip(summary):
    data = json.loads(json.dumps(summary.to_json()))
    assert data["chapters"][1] == {"start": 8.0, "end": 16.0, "text": summary.chapters[1].text,
                                   "labels": ["espresso", "coffee mug"]}
    assert data["timeline"] == [{"start": 18.0, "end": 22.0, "score": 0.7, "labels": ["applause", "loud"],
                                 "reason": "Applause, 12 dB above the last minute"}]
    back = Summary.from_json(data)
    assert back.chapters == summary.chapters
    assert back.text == summary.text and back.profile == "offline" and back.source_id == "rocket"
    assert back.to_json() == summary.to_json()
    (moment,) = back.timeline
    assert moment.span == APPLAUSE_MOMENT.span and moment.segment_ids == ()  # ids are not kept in JSON


def test_render_shows_chapter_times(summary):
    text = summary.render("rocket.mp4")
    lines = text.splitlines()
    assert lines[0] == "rocket.mp4" and lines[2] == summary.text
    assert "  0:00-0:08  A tabby cat" in text
    assert "  0:08-0:16  An espresso" in text
    assert "  0:16-0:24  A missile" in text
    assert "Highlights:\n  0:18-0:22  0.70  Applause, 12 dB above the last minute" in text


def test_clock():
    assert [clock(t) for t in (0, 8 * S, 75 * S + S // 2, 3600 * S, 3725 * S)] == ["0:00", "0:08", "1:15", "1:00:00", "1:02:05"]


def summarise(item: SummaryInput, config: SummaryConfig = SummaryConfig()) -> Summary:
    summariser = Summariser(text_encoder=TextEncoder(device="cpu"), config=config)
    summariser.setup()
    return summariser.summarise(item)


def test_adjacent_shots_of_the_same_thing_are_one_chapter():
    cat_again = tuple(facts(i, CAT) for i in range(4, 8))  # a cut between two shots of the cat
    item = SummaryInput("cats", "cats.mp4", 24 * S, SOURCE_FACTS[:4] + cat_again + SOURCE_FACTS[8:], (8 * S, 16 * S), ())
    assert seconds([c.span for c in summarise(item).chapters]) == [(0, 16), (16, 24)]


def test_a_chapter_that_gathers_shots_names_each_shot_in_order():
    # 6 shots of 4 s, at most 3 chapters: each chapter holds two shots and says both subjects.
    shots = (CAT, COFFEE, ROCKET, CAT, COFFEE, ROCKET)
    segments = tuple(facts(2 * k + j, labels) for k, labels in enumerate(shots) for j in range(2))
    item = SummaryInput("reel", "reel.mp4", 24 * S, segments, tuple(4 * S * k for k in range(1, 6)), ())
    config = SummaryConfig(max_chapters=3, min_chapter_ns=4 * S)
    chapters = summarise(item, config).chapters
    assert seconds([c.span for c in chapters]) == [(0, 8), (8, 16), (16, 24)]
    assert [c.text.split(".")[0] for c in chapters] == ["A tabby cat, then an espresso", "A missile, then a tabby cat",
                                                        "An espresso, then a missile"]


def test_a_chapter_quotes_the_gist_of_what_is_said(summary):
    cat = summary.chapters[0].text
    assert "“the cat is sleeping on the sofa.” “she sleeps all day long.”" in cat  # two sentences: quotes_per_chapter


# -- chapters of chapters ------------------------------------------------------------------------------


def test_parts_are_cut_where_neighbouring_chapters_differ_most():
    # 20 chapters on three topics (0-6, 7-13, 14-19): parts of about 8 are cut at the topic changes,
    # not at the even split (7 and 13), and every chapter is in exactly one part.
    topic = [0] * 7 + [1] * 7 + [2] * 6
    vectors = np.eye(3, 16, dtype=np.float32)[topic] + 0.01 * np.arange(20, dtype=np.float32)[:, None] * np.eye(1, 16, 5)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert part_bounds(vectors, 8) == [(0, 6), (7, 13), (14, 19)]
    assert part_bounds(vectors[:8], 8) == [(0, 7)]  # no more than a part: one
    same = np.tile(np.eye(1, 16, dtype=np.float32), (17, 1))  # nothing to tell them apart: the even split
    assert part_bounds(same, 8) == [(0, 5), (6, 10), (11, 16)]


def test_a_long_source_gets_parts_that_tell_their_chapters_and_nest_them():
    # 24 shots of 4 s in three runs of eight (animals, drinks, vehicles), one sentence a run, one
    # highlight in the second: three parts of eight chapters, each naming its subjects and quote.
    runs = [(("tabby cat", 0.7),), (("lion", 0.7),), (("golden retriever", 0.7),), (("zebra", 0.7),)], \
           [(("espresso", 0.7),), (("red wine", 0.7),), (("cup", 0.7),), (("beer bottle", 0.7),)], \
           [(("fire engine", 0.7),), (("school bus", 0.7),), (("sports car", 0.7),), (("tractor", 0.7),)]
    said = {0: "the animals rest in the shade.", 9: "a glass of wine before dinner.", 17: "the bus leaves the station."}
    segments = tuple(facts(2 * shot + j, runs[shot // 8][shot % 4], transcript=said.get(shot, "") if j == 0 else "")
                     for shot in range(24) for j in range(2))
    moment = HighlightMoment("long", Span(44 * S, 48 * S), 0.6, ("applause",), "Applause", (1,))
    item = SummaryInput("long", "long.mp4", 96 * S, segments, tuple(4 * S * k for k in range(1, 24)), (moment,))
    out = summarise(item, SummaryConfig(max_chapters=40, min_chapter_ns=4 * S))
    assert len(out.chapters) == 24
    assert [(p.first, p.last) for p in out.parts] == [(0, 7), (8, 15), (16, 23)]
    assert seconds([p.span for p in out.parts]) == [(0, 32), (32, 64), (64, 96)]
    first, second, third = (p.text for p in out.parts)
    assert first.startswith("Chapters 1-8. A tabby cat, a lion, a golden retriever and a zebra.")
    assert "“the animals rest in the shade.”" in first and "highlight" not in first
    assert "“a glass of wine before dinner.”" in second and "1 highlight, the strongest at 0:44 (applause)." in second
    assert "an espresso" in second.lower() and "a fire engine" in third.lower()
    text = out.render("long.mp4")
    assert "  Part 2, 0:32-1:04: Chapters 9-16." in text
    assert text.index("Part 2") < text.index("    0:32-0:36  An espresso") < text.index("Part 3")
    back = Summary.from_json(json.loads(json.dumps(out.to_json())))
    assert back.parts == out.parts
    assert summarise(ITEM).parts == ()  # three chapters need no parts
