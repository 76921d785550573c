"""Highlight scores from hand-made signals, and highlight moments merged from hand-made scores.

Every segment is 2 s. ``talk(i)`` is quiet speech (-30 dBFS, "Speech" heard); ``cheer(i)`` is a
crowd cheering 15 dB louder (YAMNet's float graph: 0.6 Cheering, 0.4 Crowd). With the default
weights a cheer after talk scores 0.55 (a sound 0.6 above its baseline of 0, full from 0.4) + 0.25
(rise, full at 15 dB) = 0.8 raw; a segment's score takes 0.25 of its stronger neighbour's raw score, so the cheer
is emitted at 0.75 * 0.8 + 0.25 * 0 = 0.6 and the talk on either side of it at 0.25 * 0.8 = 0.2.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from operators.analysis.highlights import (
    EXCITEMENT, HighlightConfig, HighlightMoment, HighlightScore, HighlightScorer, Signals, merge_highlights,
)  # fmt: skip
from operators.records import NS_PER_SECOND, Span, segment_id

S = NS_PER_SECOND
SOURCE = "match"
QUIET_DB = -30.0


def signals(i: int, events=(("Speech", 0.8),), loudness_db: float | None = QUIET_DB, *, motion: float = 0.0, cuts: int = 0,
            transcript: str = "and the players walk back to their places") -> Signals:
    start_ns = 2 * i * S
    return Signals(segment_id(SOURCE, start_ns), SOURCE, Span(start_ns, start_ns + 2 * S), tuple(events), loudness_db,
                   motion, cuts, transcript)


def talk(i: int) -> Signals:
    return signals(i)


def cheer(i: int) -> Signals:
    return signals(i, (("Cheering", 0.6), ("Crowd", 0.4)), QUIET_DB + 15.0, transcript="")


def music(i: int, loudness_db: float = QUIET_DB) -> Signals:
    return signals(i, (("Music", 0.4),), loudness_db, transcript="")


def score_all(batch: list[Signals], config: HighlightConfig = HighlightConfig()) -> list[HighlightScore]:
    scorer = HighlightScorer(config)
    return scorer.process(batch) + scorer.flush()


def by_start(scores: list[HighlightScore]) -> dict[float, HighlightScore]:
    return {s.span.start_ns / S: s for s in scores}


# -- the scorer --------------------------------------------------------------------------------------


def test_a_loud_cheer_after_quiet_speech_is_a_highlight_and_says_why():
    scores = by_start(score_all([talk(i) for i in range(10)] + [cheer(10), talk(11)]))
    assert len(scores) == 12
    hit = scores[20.0]
    assert hit.score == pytest.approx(0.6) and hit.score > 0.3
    assert hit.labels == ("crowd cheering", "loud")
    assert any(EXCITEMENT["Cheering"] in label for label in hit.labels)
    assert hit.reason == "Crowd cheering, 15 dB above the last minute"
    assert "dB above the last minute" in hit.reason
    # Its neighbours borrow a quarter of it; quiet talk further away scores nothing.
    assert scores[18.0].score == pytest.approx(0.2) and scores[22.0].score == pytest.approx(0.2)
    assert all(scores[t].score == 0.0 for t in (0.0, 8.0, 16.0))
    assert scores[0.0].labels == () and scores[0.0].reason == "Nothing stands out"


def test_speech_alone_is_not_a_highlight():
    exclaimed = signals(10, transcript="what a save! unbelievable!")  # emphatic, but no louder
    scores = by_start(score_all([talk(i) for i in range(10)] + [exclaimed, talk(11)]))
    assert scores[20.0].score == pytest.approx(0.75 * 0.08 * 0.6)  # speech emphasis 0.6, weight 0.08
    assert scores[20.0].labels == ("emphatic speech",)
    assert max(s.score for s in scores.values()) < 0.3


def test_a_loudness_rise_of_what_was_already_playing_is_not_a_highlight():
    swell = music(10, QUIET_DB + 15.0)
    scores = by_start(score_all([music(i) for i in range(10)] + [swell, music(11)]))
    assert scores[20.0].score == pytest.approx(0.75 * 0.25)  # the full rise weighs 0.25; the music is not new
    assert scores[20.0].labels == ("loud",) and scores[20.0].reason == "15 dB above the last minute"
    assert max(s.score for s in scores.values()) < 0.3


def test_a_long_loudness_rise_of_the_same_sound_is_not_a_highlight_either():
    swell = [music(i, QUIET_DB + 15.0) for i in range(10, 14)]
    scores = by_start(score_all([music(i) for i in range(10)] + swell + [music(14)]))
    assert scores[22.0].score == pytest.approx(0.25)  # a full rise, its neighbours as loud: 0.25 at most
    assert max(s.score for s in scores.values()) < 0.3


def test_someone_talking_louder_is_not_a_highlight():
    scores = by_start(score_all([talk(i) for i in range(10)] + [signals(10, loudness_db=QUIET_DB + 15.0), talk(11)]))
    assert max(s.score for s in scores.values()) == 0.0


def test_music_that_starts_and_a_bark_under_speech_stand_out_from_their_source():
    starts = by_start(score_all([talk(i) for i in range(10)] + [music(10, QUIET_DB + 6.0), music(11, QUIET_DB + 6.0)]))
    assert starts[20.0].score > 0.3 and starts[20.0].labels[0] == "music"
    bark = signals(10, (("Speech", 0.9), ("Dog", 0.6), ("Bark", 0.5)), QUIET_DB)  # a dog barks while someone talks
    barked = by_start(score_all([talk(i) for i in range(10)] + [bark, talk(11)]))
    assert barked[20.0].score > 0.3 and barked[20.0].labels[0] == "dog"


def test_with_every_class_score_a_sound_that_was_always_there_is_not_counted_as_new():
    """``events`` names the best few classes; what fell outside them was 0 to the baseline. With
    all 521 scores the baseline knows an engine idling at 0.35 under the talk all along, and the
    bark that joins it is what rose."""
    from operators.models.audio_events import audio_class_names

    names = audio_class_names()

    def heard(i: int, **scores: float) -> Signals:
        full = np.zeros(len(names), np.float32)
        for name, p in scores.items():
            full[names.index(name.replace("_", " "))] = p
        top = tuple((n, float(full[names.index(n)])) for n in ("Speech", "Dog", "Bark") if full[names.index(n)] > 0)
        return dataclasses.replace(signals(i, top), audio_scores=full)  # the engine is never among the named events

    talk_over_engine = [heard(i, Speech=0.9, Engine=0.35) for i in range(10)]
    engine_louder = heard(10, Speech=0.9, Engine=0.4)  # the idling engine is no event
    bark = heard(12, Speech=0.9, Engine=0.35, Dog=0.6, Bark=0.5)
    scores = by_start(score_all(talk_over_engine + [engine_louder, heard(11, Speech=0.9, Engine=0.35), bark]))
    assert scores[20.0].score < 0.1
    assert scores[24.0].score > 0.3 and scores[24.0].labels[:2] == ("dog", "bark")
    # Without the full scores the same engine, once named, looks new: the named-events fallback.
    named_engine = signals(10, (("Speech", 0.9), ("Engine", 0.4)))
    assert by_start(score_all([talk(i) for i in range(10)] + [named_engine]))[20.0].score > 0.1


def test_a_crowd_that_never_stops_is_its_own_baseline():
    stadium = [signals(i, (("Cheering", 0.6), ("Crowd", 0.5)), QUIET_DB, transcript="") for i in range(40)]
    scores = by_start(score_all(stadium))
    assert max(scores[t].score for t in range(20, 80, 2)) < 0.3  # after the first seconds, the crowd is the room
    roar = signals(40, (("Cheering", 0.95), ("Crowd", 0.9), ("Whistle", 0.7)), QUIET_DB + 12.0, transcript="")
    assert by_start(score_all(stadium + [roar]))[80.0].score > 0.3  # a roar above it still stands out


def test_a_hiss_the_classifier_names_breathing_is_the_room_not_an_event():
    def hiss(i: int) -> Signals:
        return signals(i, (("Breathing", 0.7), ("Snort", 0.5)), -52.0, transcript="")

    opening = [hiss(i) for i in range(5)]  # the file opens on its room tone
    between = sorted([hiss(i) for i in range(6, 20, 2)] + [talk(i) for i in range(5, 20, 2)], key=lambda s: s.span.start_ns)
    scores = score_all(opening + between)
    assert max(s.score for s in scores) < 0.3  # hiss between phrases comes back at the room's level


def test_excitement_heard_without_a_rise_scores_less_than_with_one():
    calm_cheer = signals(10, (("Cheering", 0.6), ("Crowd", 0.4)), QUIET_DB, transcript="")
    quiet = by_start(score_all([talk(i) for i in range(10)] + [calm_cheer]))[20.0]
    loud = by_start(score_all([talk(i) for i in range(10)] + [cheer(10)]))[20.0]
    assert quiet.score == pytest.approx(0.75 * 0.55) and quiet.labels == ("crowd cheering",)
    assert loud.score > quiet.score


def test_scores_are_emitted_one_segment_late_and_flush_gives_the_rest():
    scorer = HighlightScorer()
    assert scorer.emit_delay_ns == 0
    assert scorer.process([talk(0)]) == []
    assert scorer.emit_delay_ns == 2 * S  # waiting for the successor of a 2-s segment
    (first,) = scorer.process([talk(1)])
    assert first.segment_id == talk(0).segment_id
    (second,) = scorer.process([cheer(2)])
    assert second.segment_id == talk(1).segment_id and second.score == pytest.approx(0.25 * 0.8)  # it saw the cheer ahead
    (last,) = scorer.flush()
    assert last.segment_id == cheer(2).segment_id
    assert scorer.flush() == []


def test_the_baseline_only_looks_back():
    past = [music(i) for i in range(10)] + [music(10, QUIET_DB + 10.0), music(11)]  # +10 dB at 20 s
    before = score_all(past)
    assert before[10].reason == "10 dB above the last minute" and before[10].score > 0.1
    # A long loud passage afterwards (40 s at +20 dB) would move a baseline that looked ahead to
    # -10 dBFS and erase that rise; looking back only, nothing before its neighbour changes.
    after = score_all(past + [music(i, QUIET_DB + 20.0) for i in range(12, 32)])
    assert after[:11] == before[:11]
    assert after[11].score == pytest.approx(0.25 * 0.25)  # only the look-ahead share (a rise past 15 dB counts fully)
    assert after[12].labels == ("loud",) and after[12].reason == "20 dB above the last minute"


def test_the_baseline_forgets_what_is_older_than_a_minute():
    loud_past = [signals(i, loudness_db=QUIET_DB + 15.0) for i in range(30)]  # 0-60 s loud
    quiet_minute = [talk(i) for i in range(30, 60)]  # 60-120 s quiet
    scores = by_start(score_all(loud_past + quiet_minute + [cheer(60)]))
    assert scores[120.0].reason == "Crowd cheering, 15 dB above the last minute"  # not 7.5 dB: the loud minute is gone


def test_digital_silence_is_floored_so_any_sound_is_not_a_rise():
    silence = [signals(i, (("Silence", 0.9),), -80.0, transcript="") for i in range(10)]
    sound = signals(10, (("Hum", 0.5),), -40.0, transcript="")  # room tone comes on: not an event
    scores = by_start(score_all(silence + [sound]))
    assert scores[20.0].reason == "10 dB above the last minute"  # above the -50 dBFS floor, not 40 dB
    assert scores[20.0].score < 0.3


def test_live_and_batch_give_the_same_scores():
    stream = [talk(i) for i in range(6)] + [cheer(6), cheer(7)] + [signals(8, motion=0.3, cuts=3)] + [talk(i) for i in range(9, 14)]
    batch = score_all(stream)
    live_scorer, live = HighlightScorer(), []
    for item in stream:
        live += live_scorer.process([item])
    live += live_scorer.flush()
    assert live == batch
    assert len(batch) == len(stream) and [s.segment_id for s in batch] == [s.segment_id for s in stream]
    assert max(batch, key=lambda s: s.score).segment_id in (cheer(6).segment_id, cheer(7).segment_id)


def test_config_checks_itself():
    with pytest.raises(ValueError, match="sum to 1"):
        HighlightConfig(weight_event=0.6)
    with pytest.raises(ValueError, match="out of range"):
        HighlightConfig(rise_from_db=15.0, rise_full_db=3.0)
    with pytest.raises(ValueError, match=r"lies in \[0, 1\]"):
        HighlightScore(1, SOURCE, Span(0, S), 1.2, (), "")


# -- merging into moments ------------------------------------------------------------------------------


def hs(i: int, score: float, labels: tuple[str, ...] = ("cheering", "loud"), source: str = SOURCE) -> HighlightScore:
    start_ns = 2 * i * S
    return HighlightScore(segment_id(source, start_ns), source, Span(start_ns, start_ns + 2 * S), score, labels,
                          f"reason {i}")


def spans_s(moments: list[HighlightMoment]) -> list[tuple[float, float]]:
    return [(m.span.start_ns / S, m.span.end_ns / S) for m in moments]


def test_adjacent_segments_above_min_score_merge_into_one_moment():
    scores = [hs(0, 0.1), hs(1, 0.5), hs(2, 0.7, ("cheering",)), hs(3, 0.4, ("loud",)), hs(4, 0.2)]
    shuffled = scores[:]
    random.Random(0).shuffle(shuffled)  # any order in
    (moment,) = merge_highlights(shuffled, min_score=0.3)
    assert spans_s([moment]) == [(2.0, 8.0)]
    assert moment.score == 0.7 and moment.reason == "reason 2"  # its best segment's
    assert moment.segment_ids == tuple(hs(i, 0).segment_id for i in (1, 2, 3))
    # cheering: 0.5 + 0.7 = 1.2; loud: 0.5 / 2 + 0.4 = 0.65
    assert moment.labels == ("cheering", "loud")


def test_a_gap_or_a_low_segment_splits_moments_best_first():
    gap = merge_highlights([hs(0, 0.5), hs(1, 0.6), hs(3, 0.9)], min_score=0.3)  # nothing scored for 4-6 s
    assert spans_s(gap) == [(6.0, 8.0), (0.0, 4.0)] and [m.score for m in gap] == [0.9, 0.6]
    low = merge_highlights([hs(0, 0.5), hs(1, 0.29), hs(2, 0.8)], min_score=0.3)
    assert spans_s(low) == [(4.0, 6.0), (0.0, 2.0)]
    assert merge_highlights([hs(0, 0.5), hs(1, 0.3), hs(2, 0.8)], min_score=0.3)[0].span == Span(0, 6 * S)  # 0.3 is enough


def test_a_cut_splits_visual_highlights_but_not_one_sound_going_on():
    cut = [int(2.1 * S)]  # nearest to the junction at 2 s
    visual = [hs(0, 0.5, ("fast motion",)), hs(1, 0.5, ("rapid cuts",))]
    assert spans_s(merge_highlights(visual, min_score=0.3)) == [(0.0, 4.0)]
    assert sorted(spans_s(merge_highlights(visual, cut, min_score=0.3))) == [(0.0, 2.0), (2.0, 4.0)]
    heard = [hs(0, 0.5, ("crowd cheering", "loud")), hs(1, 0.5, ("applause",))]
    assert spans_s(merge_highlights(heard, cut, min_score=0.3)) == [(0.0, 4.0)]
    mixed = [hs(0, 0.5, ("crowd cheering",)), hs(1, 0.5, ("fast motion",))]
    assert len(merge_highlights(mixed, cut, min_score=0.3)) == 2
    far = [int(5.0 * S)]  # nearest to the junction at 4 s, which is not inside this pair
    assert len(merge_highlights(visual + [hs(2, 0.1)], far, min_score=0.3)) == 1


def test_a_moment_is_no_longer_than_max_moment():
    scores = [hs(i, 0.5 + 0.01 * i) for i in range(5)]
    moments = merge_highlights(scores, min_score=0.3, max_moment_ns=6 * S)
    assert spans_s(moments) == [(6.0, 10.0), (0.0, 6.0)]  # best first: 0.54 before 0.52
    assert all(m.span.duration_ns <= 6 * S for m in moments)


def test_moments_come_best_first_and_nothing_below_min_score():
    scores = [hs(0, 0.4), hs(2, 0.9), hs(4, 0.6), hs(6, 0.2)]
    moments = merge_highlights(scores, min_score=0.3)
    assert [m.score for m in moments] == [0.9, 0.6, 0.4]
    assert merge_highlights(scores, min_score=0.95) == []
