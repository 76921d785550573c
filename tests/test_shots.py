"""Shot boundaries and motion: on a rendered video whose cuts are known, and on hand-made thumbnails
whose change from one to the next is set exactly.

Hand-made thumbnails are 64x36 (the decoder's default) and come 5 per second. Most are grey
pictures whose every pixel lies between 132 and 188: all of them fall in the same value bin and
carry no hue or saturation, so their colour histograms are identical and the detector's change
between two of them is exactly ``(1 - correlation of their 16x9 layouts) / 4``. ``turned(layout, c)``
makes a layout with correlation ``c`` to another: a change of ``(1 - c) / 4``, from 0 (c = 1) to
0.5 (c = -1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from operators.media.align import Aligner
from operators.media.decode import DecodeConfig, Decoder
from operators.records import NS_PER_SECOND, Segment, Span
from operators.analysis.shots import ShotConfig, ShotDetector, ShotResult
from pipelines.demo.synth import GroundTruth, Scene, build_video

S = NS_PER_SECOND
STEP_NS = S // 5  # 5 thumbnails per second
H, W = 36, 64


# -- hand-made thumbnails -----------------------------------------------------------------------------


def unit(layout: np.ndarray) -> np.ndarray:
    layout = layout - layout.mean()
    return layout / np.linalg.norm(layout)


def random_layout(rng: np.random.Generator) -> np.ndarray:
    return unit(rng.standard_normal((9, 16)))


def turned(layout: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    """A layout whose correlation with ``layout`` is exactly ``c``: change ``(1 - c) / 4``."""
    other = random_layout(rng)
    other = unit(other - (other * layout).sum() * layout)
    return c * layout + np.sqrt(1.0 - c * c) * other


def grey(layout: np.ndarray) -> np.ndarray:
    """The layout drawn in 4x4-px cells of grey 132-188 (one value bin: histograms never change)."""
    cells = 160.0 + 28.0 * layout / np.abs(layout).max()
    image = np.round(np.kron(cells, np.ones((4, 4)))).astype(np.uint8)
    return np.repeat(image[..., None], 3, axis=2)


def colour_field(colour: tuple[tuple[int, int, int], float], shift_px: int = 0, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """A saturated colour brightening along its own direction (degrees: 0 to the right, 90 down),
    panned ``shift_px`` to the right, plus gaussian noise."""
    rgb, degrees = colour
    y, x = np.mgrid[0:H, 0:W + 64]
    direction = np.array([np.cos(np.radians(degrees)), np.sin(np.radians(degrees))])
    along = direction[0] * (x / W) + direction[1] * (y / H)
    ramp = 0.35 + 0.65 * (along - along.min()) / np.ptp(along)
    image = np.array(rgb, np.float64) * ramp[..., None]
    image = image[:, 64 - shift_px : 64 - shift_px + W]
    if noise:
        image = image + np.random.default_rng(seed).normal(0, noise, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def segment(images: list[np.ndarray], start_ns: int = 0, window_ns: int | None = None, source: str = "s") -> Segment:
    """A segment holding ``images`` as thumbnails every 0.2 s from ``start_ns`` (no frames, no audio)."""
    pts = start_ns + STEP_NS * np.arange(len(images), dtype=np.int64)
    end_ns = start_ns + (window_ns if window_ns is not None else STEP_NS * len(images))
    return Segment(source, Span(start_ns, end_ns), np.zeros((0, H, W, 3), np.uint8), np.zeros(0, np.int64), None,
                   thumbnails=np.stack(images), thumbnail_pts_ns=pts)


def detect(images: list[np.ndarray], config: ShotConfig = ShotConfig()) -> tuple[ShotResult, ShotDetector]:
    detector = ShotDetector(config)
    (result,) = detector.process([segment(images)])
    return result, detector


def at(index: int) -> int:
    """Time of the thumbnail at ``index``."""
    return index * STEP_NS


RED, BLUE, GREEN, YELLOW = ((220, 40, 30), 0.0), ((30, 60, 220), 180.0), ((40, 200, 60), 90.0), ((230, 210, 40), 270.0)
"""Four shots that differ in colour and in composition (where the bright side is), as real shots do.
Colour alone moves the change by at most 1/6 (hue is one of three histograms, weighted 0.5)."""


def test_a_panning_noisy_picture_has_no_cut_and_little_motion():
    images = [colour_field(RED, shift_px=k, noise=4.0, seed=k) for k in range(40)]  # 8 s, 1 px per step
    result, detector = detect(images)
    assert result.cuts_ns == () and result.cut_scores == ()
    assert 0.0 < result.motion < 0.05
    assert detector.threshold() == pytest.approx(0.3)  # a calm source: the floor, min_score


def test_an_abrupt_change_of_picture_is_a_cut_at_its_first_thumbnail():
    images = [colour_field(RED, k, 3.0, k) for k in range(12)] + [colour_field(BLUE, k, 3.0, 100 + k) for k in range(10)]
    result, _ = detect(images)
    assert result.cuts_ns == (at(12),)  # 2.4 s: the first blue thumbnail
    assert result.cut_scores[0] > 0.5
    assert result.motion < 0.05  # the cut itself is not motion


def test_a_second_change_closer_than_min_shot_is_dropped():
    pictures = [colour_field(RED)] * 10 + [colour_field(BLUE)] * 2 + [colour_field(GREEN)] * 3 + [colour_field(YELLOW)] * 5
    # red 0-2 s, blue at 2.0 s, green at 2.4 s (0.4 s later), yellow at 3.0 s (0.6 s after the blue)
    result, _ = detect(pictures)
    assert result.cuts_ns == (at(10), at(15))
    # The green change alone would be a cut: only the spacing drops it.
    result_unspaced, _ = detect(pictures, ShotConfig(min_shot_ns=0))
    assert result_unspaced.cuts_ns == (at(10), at(12), at(15))


def test_a_busy_source_raises_the_threshold_so_moderate_changes_are_not_cuts():
    rng = np.random.default_rng(7)
    busy = [random_layout(rng)]
    for k in range(49):  # 10 s of a picture that keeps changing by 0.1, 0.15, 0.2, 0.25, 0.3, 0.1, ...
        change = 0.1 + 0.05 * (k % 5)
        busy.append(turned(busy[-1], 1.0 - 4.0 * change, rng))
    moderate = turned(busy[-1], -0.6, rng)  # the next picture: a change of 0.4

    busy_result, busy_detector = detect([grey(layout) for layout in busy])
    assert busy_result.cuts_ns == ()  # changes of 0.3, a cut in a still source, are usual here
    assert busy_result.motion == pytest.approx(0.2, abs=0.01)
    assert busy_detector.threshold() == pytest.approx(0.2 + 6 * 0.05, abs=0.02)  # median + 6 MAD
    (after,) = busy_detector.process([segment([grey(moderate)], start_ns=at(50))])
    assert after.cuts_ns == ()

    still = [busy[-1]] * 50  # the same last picture, held still for 10 s
    still_result, still_detector = detect([grey(layout) for layout in still])
    assert still_result.cuts_ns == () and still_result.motion < 1e-6
    assert still_detector.threshold() == pytest.approx(0.3)
    (after,) = still_detector.process([segment([grey(moderate)], start_ns=at(50))])
    assert after.cuts_ns == (at(50),) and after.cut_scores[0] == pytest.approx(0.4, abs=0.01)

    # A real cut (grey to a saturated colour) still stands out of the busy source.
    (hard,) = busy_detector.process([segment([colour_field(RED)] * 3, start_ns=at(51))])
    assert hard.cuts_ns == (at(51),)


def test_the_first_changes_of_a_source_need_a_strict_threshold():
    rng = np.random.default_rng(1)
    layout = random_layout(rng)
    detector = ShotDetector()
    assert detector.threshold() == 0.5  # nothing seen yet
    # A change of 0.4 as the third thumbnail: too early to know the source, not a cut.
    (early,) = detector.process([segment([grey(layout)] * 2 + [grey(turned(layout, -0.6, rng))])])
    assert early.cuts_ns == ()


def test_state_crosses_segment_boundaries():
    red = [colour_field(RED, k, 3.0, k) for k in range(10)]
    blue = [colour_field(BLUE, k, 3.0, 50 + k) for k in range(10)]
    first, second = segment(red, 0, 2 * S), segment(blue, 2 * S, 2 * S)
    detector = ShotDetector()
    results = detector.process([first]) + detector.process([second])
    assert [r.cuts_ns for r in results] == [(), (2 * S,)]  # the cut is the second segment's first thumbnail
    assert [r.segment_id for r in results] == [first.id, second.id]
    # A detector that never saw the first segment has nothing to compare the first blue with.
    (alone,) = ShotDetector().process([second])
    assert alone.cuts_ns == ()


def test_min_shot_spacing_crosses_segment_boundaries():
    pictures = [colour_field(RED)] * 9 + [colour_field(BLUE)] + [colour_field(GREEN)] * 10  # blue 1.8 s, green 2.0 s
    detector = ShotDetector()
    results = detector.process([segment(pictures[:10], 0, 2 * S), segment(pictures[10:], 2 * S, 2 * S)])
    assert [r.cuts_ns for r in results] == [(at(9),), ()]  # green only 0.2 s after the blue cut


def test_results_and_config_check_themselves():
    with pytest.raises(ValueError, match="fall outside"):
        ShotResult(1, Span(0, 2 * S), (2 * S,), (0.9,), 0.0)
    with pytest.raises(ValueError, match="one score per cut"):
        ShotResult(1, Span(0, 2 * S), (S,), (), 0.0)
    for bad in (dict(min_score=0.0), dict(min_score=1.0), dict(sensitivity=0), dict(history=4), dict(min_shot_ns=-1)):
        with pytest.raises(ValueError, match="shot config out of range"):
            ShotConfig(**bad)


# -- a rendered video ----------------------------------------------------------------------------------


SCENES = (Scene("cat", 2.5), Scene("coffee", 3.1), Scene("rocket", 1.9), Scene("palace", 2.5))
"""Four shots of real photos, each a slow zoom or pan: hard cuts at 2.5, 5.6 and 7.5 s (10 s in all)."""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, GroundTruth, list[Segment], list[ShotResult]]:
    path = tmp_path_factory.mktemp("shots") / "four_shots.mp4"
    truth = build_video(path, SCENES, audio=False)
    with Decoder(path, DecodeConfig(thumbnails_per_second=5.0)) as decoder:
        aligner = Aligner("four_shots", has_video=True, has_audio=False)
        segments = []
        for item in decoder:
            segments += aligner.process([item])
        segments += aligner.flush(decoder.video_end_ns)
    detector = ShotDetector()
    results = [r for s in segments for r in detector.process([s])]
    return path, truth, segments, results


def test_rendered_cuts_are_found_within_a_third_of_a_second_and_nothing_else(rendered):
    _, truth, segments, results = rendered
    expected = [shot.start_seconds for shot in truth.shots[1:]]
    assert expected == pytest.approx([2.5, 5.6, 7.5])  # the truth says what was rendered
    assert len(segments) == 5 and all(len(s.thumbnails) >= 9 for s in segments)
    found = [t / S for r in results for t in r.cuts_ns]
    assert len(found) == len(expected), found
    for want, got in zip(expected, found):
        assert abs(got - want) <= 0.3, (want, found)
    assert all(score >= 0.3 for r in results for score in r.cut_scores)


def test_rendered_slow_camera_moves_are_little_motion(rendered):
    _, _, _, results = rendered
    assert all(0.0 < r.motion < 0.05 for r in results), [r.motion for r in results]


def test_rendered_results_belong_to_their_segments(rendered):
    _, _, segments, results = rendered
    assert [r.segment_id for r in results] == [s.id for s in segments]
    assert all(s.span.contains(t) for s, r in zip(segments, results) for t in r.cuts_ns)
