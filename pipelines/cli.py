"""The command line: ``vidscope ingest | live | publish | search | similar | highlights | summary | ask | export |
serve | demo``.

Every command takes ``--data DIR`` (default ``./vidscope-data`` or ``$VIDSCOPE_DATA``) and
``--json`` (machine-readable output on stdout). Errors go to stderr with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
from pathlib import Path

from pipelines import console
from pipelines.console import _clock, ingest_config, out, print_ingest_summary, print_moments, run_ingest, use_profile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

log = logging.getLogger("vidscope")


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", type=Path, default=Path(os.environ.get("VIDSCOPE_DATA", "vidscope-data")),
                        help="data folder holding the index (default ./vidscope-data or $VIDSCOPE_DATA)")
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    common.add_argument("--redis", default=os.environ.get("VIDSCOPE_REDIS"),
                        help="keep metadata and vectors in Redis (redis://host:port/db), shared by several workers "
                             "(default $VIDSCOPE_REDIS; none: SQLite in the data folder)")
    common.add_argument("--server", default=os.environ.get("VIDSCOPE_SERVER"),
                        help="search, highlights, summary: ask a running `vidscope serve` at this URL instead of opening "
                             "the data folder (default $VIDSCOPE_SERVER; token from $VIDSCOPE_API_TOKEN)")
    common.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    return common


def _ingest_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fps", type=float, default=1.0, help="frames sampled per second of video (default 1)")
    p.add_argument("--sample", choices=("exact", "keyframes"), default="exact",
                   help="exact (default): the frame at each sample instant; keyframes (triage, several times "
                        "faster): the nearest keyframe, decoding nothing else, so instants are approximate")
    p.add_argument("--window", type=float, default=2.0, help="segment length in seconds (default 2)")
    p.add_argument("--no-speech", action="store_true", help="skip speech recognition")
    p.add_argument("--speech-model", choices=("tiny.en", "base"), default="tiny.en")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where encoders run; auto picks CUDA when torch sees a GPU")
    p.add_argument("--ray-address", default=None, help="join an existing Ray cluster (default: start a local one)")
    p.add_argument("--sources-in-flight", type=int, default=2, help="files decoded concurrently (default 2)")
    p.add_argument("--profile", choices=("offline", "clip", "vlm"), default="offline",
                   help="models that describe the moments: offline (packaged, default), clip (CLIP/SigLIP joint "
                        "image-text search) or vlm (a vision-language model writes captions and summaries)")
    p.add_argument("--model", default=None, help="clip/vlm: a hub name or a local folder (with --endpoint: the served model's name)")
    p.add_argument("--endpoint", default=None,
                   help="vlm: an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1 (key from $VIDSCOPE_VLM_API_KEY)")


def duration_seconds(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``24h``, ``7d`` as seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    try:
        value = float(number) * unit
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 30m, 24h, 7d)") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"a duration must be positive, got {text!r}")
    return value


def size_bytes(text: str) -> int:
    """``500M``, ``20G``, ``1T`` (powers of 1024), or bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    upper = text.upper().removesuffix("B")
    number, unit = (upper[:-1], units[upper[-1]]) if upper and upper[-1] in units else (upper, 1)
    try:
        value = int(float(number) * unit)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500M, 20G)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a size must be positive, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(prog="vidscope", description="Search and skim video by what is seen, heard and said.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", parents=[common], help="index files, folders and globs")
    p.add_argument("paths", nargs="+",
                   help="files, folders (searched recursively), glob patterns, http(s):// URLs or s3://BUCKET/PREFIX")
    p.add_argument("--force", action="store_true", help="re-process sources already indexed")
    p.add_argument("--s3-endpoint", default=os.environ.get("VIDSCOPE_S3_ENDPOINT"),
                   help="s3:// inputs: an S3-compatible store's URL, e.g. http://minio:9000 (default $VIDSCOPE_S3_ENDPOINT, "
                        "or AWS; credentials from the usual AWS variables or profile)")
    _ingest_options(p)

    p = sub.add_parser("live", parents=[common], help="ingest a live stream until stopped (Ctrl-C or SIGTERM)")
    p.add_argument("urls", nargs="+", metavar="URL",
                   help="udp://, rtsp://, rtmp://, http(s):// (HLS), srt://, or anything FFmpeg reads live; several share "
                        "the workers. Or one kafka://HOST:PORT/TOPIC: every stream published there (see publish)")
    p.add_argument("--name", action="append", default=[],
                   help="a stream's name, once per URL in order; restarting with the same name continues it "
                        "(not with kafka://: streams are named by their message keys)")
    p.add_argument("--group", default=None,
                   help="kafka:// only: the consumer group (default vidscope-<store id>: workers sharing a store share it)")
    p.add_argument("--events", default=None, metavar="kafka://HOST:PORT/TOPIC",
                   help="also publish each highlight as a JSON event to this Kafka topic (schema: pipelines/kafka/events.py)")
    p.add_argument("--chapter-seconds", type=float, default=120.0,
                   help="summarise every this many seconds of a stream as a chapter event (default 120)")
    p.add_argument("--record", action="store_true",
                   help="keep each stream's packets (rolling MPEG-TS, stream copy) in DATA/recordings/NAME, so that "
                        "its moments can be watched and exported")
    p.add_argument("--retain", type=duration_seconds, default=None, metavar="DURATION",
                   help="with --record: keep at least this much of each stream (one ~10-s file more at most), "
                        "the oldest deleted first (e.g. 90s, 30m, 24h, 7d)")
    p.add_argument("--retain-size", type=size_bytes, default=None, metavar="SIZE",
                   help="with --record: keep at most this much disk per stream (e.g. 500M, 20G)")
    p.add_argument("--max-queue", type=int, default=30,
                   help="segments waiting for the encoders before the oldest is dropped (default 30)")
    _ingest_options(p)

    p = sub.add_parser("publish", parents=[common], help="put a file or stream on a Kafka topic as MPEG-TS chunks")
    p.add_argument("source", help="a media file or URL")
    p.add_argument("target", metavar="kafka://HOST:PORT/TOPIC")
    p.add_argument("--name", required=True, help="the stream's name (the messages' key)")
    p.add_argument("--fast", action="store_true", help="as fast as possible instead of in real time")

    p = sub.add_parser("search", parents=[common], help="moments that match a text query, best first")
    p.add_argument("text")
    p.add_argument("--top-k", type=int, default=5)

    p = sub.add_parser("similar", parents=[common], help="moments that look like the one at a time of a source")
    p.add_argument("source", help="a source's name, path or id")
    p.add_argument("at", type=float, help="seconds into the source")
    p.add_argument("--top-k", type=int, default=5)

    p = sub.add_parser("highlights", parents=[common], help="highlight moments with scores and why, best first")
    p.add_argument("text", nargs="?", default=None, help="only highlights matching this text (e.g. 'applause')")
    p.add_argument("--source", default=None, help="one source: its path, name or id (default: all)")
    p.add_argument("--min-score", type=float, default=None, help="score a highlight needs, 0-1 (default 0.3)")
    p.add_argument("--top-k", type=int, default=10)

    p = sub.add_parser("summary", parents=[common], help="the summary of a source: overview, chapters, highlights")
    p.add_argument("source", help="the source's path, name or id")

    p = sub.add_parser("ask", parents=[common], help="answer a question about a source from its best-matching moments")
    p.add_argument("source", help="the source's path, name or id")
    p.add_argument("question")
    p.add_argument("--top-k", type=int, default=3, help="moments the answer is drawn from (default 3)")

    p = sub.add_parser("export", parents=[common], help="a span of a source as an MP4 clip")
    p.add_argument("source", help="the source's path, name or id")
    p.add_argument("start", type=float, help="seconds into the source, as search prints them")
    p.add_argument("end", type=float)
    p.add_argument("-o", "--output", type=Path, required=True, help="the MP4 file to write")
    p.add_argument("--mode", choices=("auto", "copy", "encode"), default="auto",
                   help="copy the packets (needs a keyframe at START), encode again (exact anywhere), or auto: "
                        "copy when the cut allows (default)")

    p = sub.add_parser("serve", parents=[common], help="the HTTP API and web app")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback; others need a token)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", default=os.environ.get("VIDSCOPE_API_TOKEN"),
                   help="the bearer token clients must send (default $VIDSCOPE_API_TOKEN; required off loopback)")
    p.add_argument("--cors-origin", action="append", default=[],
                   help="allow browser pages from this origin to call the API (repeatable; default none)")
    p.add_argument("--ray-address", default=None,
                   help="run the API as a Ray Serve deployment on this cluster (\"auto\", host:port) instead of in this process")
    p.add_argument("--replicas", type=int, default=1, help="with --ray-address: API replicas (default 1)")
    p.add_argument("--shards", type=int, default=1,
                   help="with --ray-address: split the vectors by source over this many shard deployments, searched "
                        "together and merged exactly (default 1: every replica holds the whole index)")

    p = sub.add_parser("demo", parents=[common], help="build a demo video offline, ingest it, show what it finds")
    _ingest_options(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    console.RESULTS, sys.stdout = sys.stdout, sys.stderr  # see console.RESULTS
    redis_before = os.environ.get("VIDSCOPE_REDIS")
    ray_before = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    try:
        return _main(argv)
    finally:
        ray = sys.modules.get("ray")
        if not ray_before and ray is not None and ray.is_initialized():
            ray.shutdown()  # what this command started ends with it: its last log lines (a lost node's) go to stderr too
        sys.stdout = console.RESULTS
        # _main points this process's indexes at --redis through the environment; a caller that
        # runs several commands in one process (the tests) must not see the next one inherit it.
        if redis_before is None:
            os.environ.pop("VIDSCOPE_REDIS", None)
        else:
            os.environ["VIDSCOPE_REDIS"] = redis_before


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.redis:  # every index this process opens uses it (indexers.index.SegmentIndex reads it)
        os.environ["VIDSCOPE_REDIS"] = args.redis
    else:
        os.environ.pop("VIDSCOPE_REDIS", None)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "ingest":
            return cmd_ingest(args)
        if args.command == "live":
            return cmd_live(args)
        if args.command == "publish":
            return cmd_publish(args)
        if args.command == "search":
            return cmd_search(args)
        if args.command == "similar":
            return cmd_similar(args)
        if args.command == "highlights":
            return cmd_highlights(args)
        if args.command == "summary":
            return cmd_summary(args)
        if args.command == "ask":
            return cmd_ask(args)
        if args.command == "export":
            return cmd_export(args)
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "demo":
            from pipelines.demo.run import run_demo

            return run_demo(args)
    except KeyboardInterrupt:
        print("vidscope: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError, sqlite3.Error) as exc:
        if args.verbose:
            raise
        where = f"the index database in {args.data}: " if isinstance(exc, sqlite3.Error) else ""
        print(f"vidscope: {where}{exc}", file=sys.stderr)
        return 2
    return 2


def cmd_ingest(args: argparse.Namespace) -> int:
    code, summary = run_ingest(args.paths, args, force=args.force)
    if args.json:
        out(json.dumps(summary, indent=2))
    else:
        print_ingest_summary(summary)
    return code


def cmd_live(args: argparse.Namespace) -> int:
    from pipelines.live.cameras import LiveOptions, run_live

    if args.max_queue < 2:
        raise ValueError("--max-queue must be at least 2")
    if not args.chapter_seconds >= 4:
        raise ValueError("--chapter-seconds must be at least 4 (two windows)")
    config = ingest_config(args)
    if args.events:
        from pipelines.kafka.streams import parse_kafka_url

        parse_kafka_url(args.events)  # a wrong URL fails now, not at the first highlight
    # Checked before the data folder is touched: a bad name or URL leaves nothing behind.
    options = LiveOptions(tuple(args.urls), tuple(args.name), max_queue=args.max_queue, events_url=args.events,
                          group=args.group, chapter_seconds=args.chapter_seconds, record=args.record,
                          retain_seconds=args.retain, retain_bytes=args.retain_size)
    use_profile(args.data, config.profile)
    reports = run_live(args.data, config, options, ray_address=args.ray_address)
    if args.json:
        out(json.dumps(reports, indent=2))
    for r in [] if args.json else reports:
        out(f"{r['name']}: {r['segments_indexed']} segments indexed in {r['wall_seconds']:.0f} s"
              + (f" ({r['error']})" if r["error"] else ""))
    return 1 if any(r["error"] for r in reports) else 0


def cmd_publish(args: argparse.Namespace) -> int:
    import threading
    import signal as signals

    from pipelines.kafka.streams import publish

    stop = threading.Event()
    signals.signal(signals.SIGTERM, lambda *_: stop.set())
    report = publish(args.source, args.target, name=args.name, realtime=not args.fast, stop=stop)
    if args.json:
        out(json.dumps({"name": args.name, "messages": report.messages, "bytes": report.bytes,
                          "wall_seconds": round(report.wall_seconds, 3)}, indent=2))
    else:
        out(f"{args.name}: {report.messages} messages, {report.bytes / 1e6:.1f} MB in {report.wall_seconds:.1f} s")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from pipelines.query import open_searcher

    if args.top_k < 1:
        raise ValueError("--top-k must be at least 1")
    if args.server:
        from pipelines.remote import get_json

        found = get_json(args.server, "search", {"q": args.text, "top_k": args.top_k})["results"]
        print_moments(found, as_json=args.json)
        return 0
    with open_searcher(args.data) as searcher:
        print_moments([m.to_json() for m in searcher.search(args.text, top_k=args.top_k)], as_json=args.json)
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    """More like this: the frame encoder's features of the segment at ``at`` against every other."""
    from operators.records import seconds_to_ns
    from pipelines.query import find_source, open_searcher

    if args.top_k < 1:
        raise ValueError("--top-k must be at least 1")
    with open_searcher(args.data) as searcher:
        source = find_source(searcher.index, args.source)
        t_ns = seconds_to_ns(args.at)
        here = searcher.index.store.segments_of_source(source.source_id, start_ns=t_ns, end_ns=t_ns + 1)
        if not here:
            raise ValueError(f"{source.name} has no indexed moment at {args.at:g} s")
        print_moments([m.to_json() for m in searcher.similar_images(here[0].segment_id, top_k=args.top_k)],
                      as_json=args.json)
    return 0


def cmd_highlights(args: argparse.Namespace) -> int:
    from indexers.highlights import find_highlights
    from indexers.index import SegmentIndex
    from pipelines.ingest.analysis import DEFAULT_MIN_SCORE
    from pipelines.query import data_folder, find_source, open_searcher

    min_score = DEFAULT_MIN_SCORE if args.min_score is None else args.min_score
    options = dict(min_score=min_score, top_k=args.top_k)
    if args.server:
        from pipelines.remote import get_json

        source_id = get_json(args.server, "sources", {"key": args.source})["sources"][0]["source_id"] if args.source else None
        docs = get_json(args.server, "highlights", {"q": args.text, "source": source_id, **options})["results"]
        return _print_highlights(docs, args, min_score)
    if args.text is not None:
        with open_searcher(args.data) as searcher:
            source_id = find_source(searcher.index, args.source).source_id if args.source else None
            found = find_highlights(searcher.index, source_id=source_id, text=args.text, searcher=searcher, **options)
    else:
        with SegmentIndex(data_folder(args.data), read_only=True) as index:
            source_id = find_source(index, args.source).source_id if args.source else None
            found = find_highlights(index, source_id=source_id, **options)
    return _print_highlights([h.to_json() for h in found], args, min_score)


def _print_highlights(docs: list[dict], args: argparse.Namespace, min_score: float) -> int:
    if args.json:
        out(json.dumps(docs, indent=2))
        return 0
    if not docs:
        out(f"no highlights scoring {min_score} or more" + (f" that match {args.text!r}" if args.text else ""))
    for rank, doc in enumerate(docs, 1):
        out(f"{rank}. {doc['source']}  {_clock(doc['start'])}-{_clock(doc['end'])}  score {doc['score']:.2f}  "
              f"{doc['reason']}  [{', '.join(doc['labels'])}]")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    if args.server:
        from pipelines.remote import get_json

        source_id = get_json(args.server, "sources", {"key": args.source})["sources"][0]["source_id"]
        doc = get_json(args.server, f"sources/{source_id}/summary")
        out(json.dumps({k: v for k, v in doc.items() if k != "rendered"}, indent=2) if args.json else doc["rendered"])
        return 0
    from pipelines.query import load_summary

    source, summary = load_summary(args.data, args.source)
    if args.json:
        out(json.dumps({"source": source.name, "uri": source.uri, **summary.to_json()}, indent=2))
    else:
        out(summary.render(source.name))
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from pipelines.query import ask

    if args.top_k < 1:
        raise ValueError("--top-k must be at least 1")
    answer = ask(args.data, args.source, args.question, top_k=args.top_k)
    out(json.dumps(answer.to_json(), indent=2) if args.json else answer.text)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from indexers.clips import cut_source
    from indexers.index import SegmentIndex
    from operators.records import seconds_to_ns
    from pipelines.query import data_folder, find_source

    with SegmentIndex(data_folder(args.data), read_only=True) as index:
        source = find_source(index, args.source)
    if args.output.is_dir():
        raise ValueError(f"{args.output} is a folder: give the clip's file name")
    try:
        report = cut_source(args.data, source, seconds_to_ns(args.start), seconds_to_ns(args.end), args.output,
                            mode=args.mode)
    except LookupError as exc:
        raise ValueError(str(exc)) from None
    doc = {"source": source.name, "source_id": source.source_id, "path": str(report.path), "mode": report.mode,
           "start": report.start_ns / 1e9, "end": report.end_ns / 1e9, "video_frames": report.video_frames}
    out(json.dumps(doc, indent=2) if args.json else
        f"{report.path}: {source.name} {_clock(doc['start'])}-{_clock(doc['end'])} ({report.mode}, "
        f"{report.video_frames} frames)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from pipelines.query import data_folder
    from pipelines.serve.app import ServeConfig, serve

    config = ServeConfig(data_folder(args.data), host=args.host, port=args.port, token=args.token or None,
                         cors_origins=tuple(args.cors_origin))
    if args.ray_address:
        from pipelines.serve.on_ray import serve_on_ray

        print(f"vidscope: serving {args.data} on Ray Serve ({args.replicas} replicas, {args.shards} shards) at "
              f"http://{args.host}:{args.port}/", file=sys.stderr)
        serve_on_ray(config, ray_address=args.ray_address, replicas=args.replicas, shards=args.shards)
        return 0
    if args.replicas != 1 or args.shards != 1:
        raise ValueError("--replicas and --shards need --ray-address (one process serves without Ray)")
    print(f"vidscope: serving {args.data} on http://{args.host}:{args.port}/", file=sys.stderr)
    serve(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
