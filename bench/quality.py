"""How good are highlights, shots and summaries, on videos whose content is known.

Two generated videos (pipelines/synth.py): real photos with camera moves and hard cuts, espeak-ng
speech, and real crowd and applause recordings placed over quiet and over speech. Both are
ingested with the real CLI (default profile), then:

- highlight recall: share of crowd/applause events that a highlight overlaps or comes within
  1.5 s of; precision: share of highlights that do so for some event (default --min-score);
- shot F1: detected cuts against the true ones, matched one to one within 0.5 s;
- summary mentions: share of the shots' subjects (any of the photo's words) and of the spoken
  phrases (at least 60% of their words, since Whisper mishears a word here and there) that the
  summary's text and chapters contain.

Targets (issue 3): recall >= 0.9 with precision >= 0.7; shot F1 >= 0.9; mentions >= 0.7.

    python bench/quality.py            # ~2 min on 2 cores, videos cached in bench/.cache/
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexers.highlights import find_highlights  # noqa: E402
from indexers.index import SegmentIndex  # noqa: E402
from pipelines.batch import DEFAULT_MIN_SCORE  # noqa: E402
from pipelines.synth import GroundTruth, Scene, Sound, Speech, build_video  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
TOLERANCE_EVENT_S = 1.5
TOLERANCE_CUT_S = 0.5


def scripts() -> dict[str, tuple[tuple[Scene, ...], tuple]]:
    """Two storyboards: events over quiet and over speech, shots of 5 to 12 s."""
    match = (
        tuple(Scene(p, d) for p, d in [("cat", 10), ("coffee", 9), ("rocket", 12), ("motorcycle", 8), ("palace", 10),
                                       ("cat", 7), ("rocket", 11), ("coffee", 9), ("motorcycle", 12), ("palace", 10),
                                       ("coffee", 12), ("cat", 10)]),
        (Speech("welcome to the final of the cup", 2.0), Sound("crowd", 15.0, 6.0),
         Speech("the rocket is ready for launch", 30.0), Sound("crowd", 31.0, 5.0),
         Sound("applause", 45.0, 5.0), Speech("a fresh cup of coffee", 58.0),
         Speech("the cat is watching you", 69.0), Sound("applause", 69.5, 4.0),
         Sound("crowd", 85.0, 7.0), Speech("a red motorcycle in the garage", 100.0), Sound("applause", 108.0, 4.0)),
    )
    show = (
        tuple(Scene(p, d) for p, d in [("palace", 6), ("cat", 5), ("motorcycle", 7), ("coffee", 6), ("rocket", 5),
                                       ("cat", 8), ("palace", 6), ("motorcycle", 5), ("coffee", 7), ("rocket", 6),
                                       ("cat", 6), ("palace", 8), ("coffee", 5)]),
        (Speech("good evening and welcome to the show", 1.0), Sound("applause", 5.0, 4.0),
         Speech("our first guest is a famous cat", 14.0), Sound("crowd", 22.0, 5.0),
         Speech("please welcome the rocket scientist", 35.0), Sound("applause", 37.5, 4.0),
         Sound("crowd", 52.0, 6.0), Speech("thank you all for coming tonight", 70.0), Sound("applause", 74.0, 4.0)),
    )
    return {"match": match, "show": show}


def build(name: str, scenes, sounds) -> Path:
    path = CACHE / f"quality-{name}-v1.mp4"
    if not path.exists():
        CACHE.mkdir(exist_ok=True)
        print(f"building {path.name} ...", flush=True)
        build_video(path, scenes, sounds, width=640, height=360, fps=30)
    return path


def near(a_start: float, a_end: float, b_start: float, b_end: float, tolerance: float) -> bool:
    return a_start - tolerance < b_end and b_start - tolerance < a_end


def shot_f1(found: list[float], truth: list[float]) -> tuple[float, int, int, int]:
    unmatched = sorted(truth)
    hits = 0
    for t in sorted(found):
        match = next((u for u in unmatched if abs(u - t) <= TOLERANCE_CUT_S), None)
        if match is not None:
            unmatched.remove(match)
            hits += 1
    precision = hits / len(found) if found else 1.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return f1, hits, len(found), len(truth)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def phrase_mentioned(phrase: str, text_words: set[str]) -> bool:
    said = words(phrase)
    return sum(w in text_words for w in said) / len(said) >= 0.6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE)
    parser.add_argument("--data", type=Path, default=None, help="reuse an ingested data folder")
    args = parser.parse_args()
    videos = {name: build(name, *script) for name, script in scripts().items()}
    data = args.data or Path(tempfile.mkdtemp(prefix="vidscope-quality-"))
    if args.data is None or not (data / "vidscope.sqlite3").exists():
        run = subprocess.run([sys.executable, "-m", "pipelines.cli", "ingest", *map(str, videos.values()), "--data", str(data),
                              "--json"], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        if run.returncode:
            print(run.stderr[-2000:], file=sys.stderr)
            return 1
        print(f"ingested: {json.loads(run.stdout)['segments']} segments into {data}")
    totals = dict(events=0, found=0, highlights=0, correct=0, cut_hits=0, cuts_found=0, cuts_true=0,
                  subjects=0, subjects_named=0, phrases=0, phrases_named=0)
    with SegmentIndex(data) as index:
        for name, path in videos.items():
            truth = GroundTruth.load(path)
            source = index.store.find_source(str(path))
            events = [(s.start_seconds, s.end_seconds, s.kind) for s in truth.sounds]
            highlights = [h.to_json() for h in find_highlights(index, source_id=source.source_id, min_score=args.min_score)]
            found = sum(any(near(s, e, h["start"], h["end"], TOLERANCE_EVENT_S) for h in highlights) for s, e, _ in events)
            correct = sum(any(near(s, e, h["start"], h["end"], TOLERANCE_EVENT_S) for s, e, _ in events) for h in highlights)
            cuts = [t / 1e9 for t, _ in index.store.get_cuts(source.source_id)]
            f1, hits, n_found, n_true = shot_f1(cuts, [s.start_seconds for s in truth.shots[1:]])
            summary = index.store.get_summary(source.source_id)
            text = " ".join([summary["text"], *(c["text"] for c in summary["chapters"])])
            text_words = set(words(text))
            subjects = {s.photo: s.expected_words for s in truth.shots}
            named = [photo for photo, expected in subjects.items() if any(w.lower() in text.lower() for w in expected)]
            phrases = [p.text for p in truth.speech]
            said = [p for p in phrases if phrase_mentioned(p, text_words)]
            print(f"\n== {name}: {truth.duration_seconds:.0f} s, {len(events)} events, {len(truth.shots) - 1} cuts")
            for h in sorted(highlights, key=lambda h: h["start"]):
                ok = any(near(s, e, h["start"], h["end"], TOLERANCE_EVENT_S) for s, e, _ in events)
                print(f"  highlight {h['start']:6.1f}-{h['end']:6.1f}  {h['score']:.2f}  {'event' if ok else 'NO EVENT'}  {h['reason']}")
            for s, e, kind in events:
                ok = any(near(s, e, h["start"], h["end"], TOLERANCE_EVENT_S) for h in highlights)
                print(f"  event     {s:6.1f}-{e:6.1f}  {kind:8s} {'found' if ok else 'MISSED'}")
            print(f"  shots: {hits} of {n_true} cuts found, {n_found} reported (F1 {f1:.2f})")
            print(f"  summary names {len(named)}/{len(subjects)} subjects (missing: {sorted(set(subjects) - set(named))}), "
                  f"{len(said)}/{len(phrases)} phrases (missing: {sorted(set(phrases) - set(said))})")
            for key, value in dict(events=len(events), found=found, highlights=len(highlights), correct=correct, cut_hits=hits,
                                   cuts_found=n_found, cuts_true=n_true, subjects=len(subjects), subjects_named=len(named),
                                   phrases=len(phrases), phrases_named=len(said)).items():
                totals[key] += value
    t = totals
    recall = t["found"] / t["events"]
    precision = t["correct"] / t["highlights"] if t["highlights"] else 1.0
    f1, _, _, _ = (0.0, 0, 0, 0) if not t["cuts_true"] else (
        2 * t["cut_hits"] / (t["cuts_found"] + t["cuts_true"]), 0, 0, 0)
    subjects = t["subjects_named"] / t["subjects"]
    phrases = t["phrases_named"] / t["phrases"]
    print("\n| measure | value | target |\n|---|---|---|")
    print(f"| highlight recall ({t['found']}/{t['events']} events) | {recall:.2f} | >= 0.9 |")
    print(f"| highlight precision ({t['correct']}/{t['highlights']} highlights) | {precision:.2f} | >= 0.7 |")
    print(f"| shot-boundary F1 ({t['cut_hits']} hits, {t['cuts_found']} found, {t['cuts_true']} true, 0.5 s) | {f1:.2f} | >= 0.9 |")
    print(f"| summary mentions subjects ({t['subjects_named']}/{t['subjects']}) | {subjects:.2f} | >= 0.7 |")
    print(f"| summary mentions spoken phrases ({t['phrases_named']}/{t['phrases']}) | {phrases:.2f} | >= 0.7 |")
    met = recall >= 0.9 and precision >= 0.7 and f1 >= 0.9 and subjects >= 0.7 and phrases >= 0.7
    print("all targets met" if met else "TARGETS NOT MET")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
