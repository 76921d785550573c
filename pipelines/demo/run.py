"""``vidscope demo``: build a video offline from real photos, speech and crowd recordings, ingest
it, and show what a few text queries find next to what is really there."""

from __future__ import annotations

import argparse
import json

from indexers.index import SegmentIndex
from pipelines.demo import synth
from pipelines.console import out, print_ingest_summary, print_moments, run_ingest

QUERIES = ("a cat", "a cup of coffee", "rocket launch", "crowd cheering", "motorcycle")


def run_demo(args: argparse.Namespace) -> int:
    from pipelines.query import open_searcher

    media_dir = args.data / "demo-media"
    media_dir.mkdir(parents=True, exist_ok=True)
    video = media_dir / "vidscope-demo.mp4"
    if not video.exists():
        say = (lambda *a: None) if args.json else (lambda *a: out(*a, flush=True))
        say(f"building {video} from real photos, espeak-ng speech and crowd recordings ...")
        script = synth.demo_script()
        truth = synth.build_video(video, script.scenes, script.sounds, width=640, height=360, fps=30)
    else:
        truth = synth.GroundTruth.load(video)
    if not args.json:
        print_truth(truth)
    code, summary = run_ingest([str(video)], args)
    if code:
        return code
    if not args.json:
        print_ingest_summary(summary)
    report = {"ingest": summary, "queries": {}}
    with open_searcher(args.data) as searcher:
        for query in (*QUERIES, *(p.text for p in truth.speech[:2])):
            moments = searcher.search(query, top_k=2)
            if args.json:
                report["queries"][query] = [m.to_json() for m in moments]
                continue
            out(f'\nvidscope search "{query}"')
            print_moments([m.to_json() for m in moments], as_json=False)
    from indexers.highlights import find_highlights
    from pipelines.ingest.analysis import DEFAULT_MIN_SCORE
    from pipelines.query import load_summary

    with SegmentIndex(args.data) as index:
        source = index.store.find_source(str(video))
        highlights = [h.to_json() for h in find_highlights(index, source_id=source.source_id, min_score=DEFAULT_MIN_SCORE)]
    _, summary = load_summary(args.data, str(video))
    report["highlights"], report["summary"] = highlights, summary.to_json()
    if args.json:
        out(json.dumps(report, indent=2))
        return 0
    lines = [f"  {h['start']:5.1f}-{h['end']:5.1f} s  score {h['score']:.2f}  {h['reason']}" for h in highlights]
    out("\nvidscope highlights\n" + ("\n".join(lines) or "  none"))
    out(f"\nvidscope summary {video.name}\n")
    out(summary.render(video.name))
    out(f"\nTry your own: vidscope search \"...\" --data {args.data}  (also: highlights, summary {video.name}, "
          f"ask {video.name} \"QUESTION\")")
    out(f"Watch it: vidscope serve --data {args.data}, then open http://127.0.0.1:8765/ "
        f"(or: vidscope export {video.name} 20 26 -o moment.mp4)")
    return 0


def print_truth(truth: synth.GroundTruth) -> None:
    out(f"\nWhat the demo video holds ({truth.duration_seconds:.0f} s):")
    for shot in truth.shots:
        out(f"  {shot.start_seconds:5.1f}-{shot.end_seconds:5.1f} s  picture: {shot.photo}")
    for phrase in truth.speech:
        out(f"  {phrase.start_seconds:5.1f}-{phrase.end_seconds:5.1f} s  speech: \"{phrase.text}\"")
    for sound in truth.sounds:
        out(f"  {sound.start_seconds:5.1f}-{sound.end_seconds:5.1f} s  sound: {sound.kind}")
    out()
