"""`vidscope publish` and live highlight events on a real Kafka-protocol broker (Tansu)."""

import json

from operators.analysis.highlights import HighlightScore
from operators.records import Span
from pipelines.cli import main
from pipelines.kafka.events import check_event
from pipelines.live.outputs import HighlightEvents, Outbox, kafka_sink
from pipelines.demo.synth import Scene, build_video
from test_kafka_io import read_topic, topic_url  # noqa: F401 - a fresh topic per call

pytest_plugins = ["kafka_fixture"]
S = 1_000_000_000


def test_publish_puts_a_file_on_a_topic_keyed_by_its_name(kafka_bootstrap, topic_url, tmp_path, capsys):  # noqa: F811
    video = tmp_path / "feed.mp4"
    build_video(video, (Scene("cat", 3.0),), (), width=320, height=240)
    topic, url = topic_url()
    capsys.readouterr()
    assert main(["publish", str(video), url, "--name", "feed", "--fast", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["messages"] >= 1 and report["bytes"] > 10_000
    records = read_topic(kafka_bootstrap, topic, report["messages"])
    assert {r.key for r in records} == {b"feed"} and all(r.value[0] == 0x47 and len(r.value) % 188 == 0 for r in records)
    assert main(["publish", str(video), "kafka://nowhere", "--name", "feed"]) == 2  # no topic in the URL


def test_live_highlight_events_go_to_the_topic_as_checked_json(kafka_bootstrap, topic_url, tmp_path):  # noqa: F811
    topic, url = topic_url()
    outbox = Outbox("kafka", kafka_sink(url))
    events = HighlightEvents("cam", 1_795_000_000 * S, tmp_path / "cam.events.jsonl", sinks=[outbox])

    def score(i: int, value: float) -> HighlightScore:
        return HighlightScore(i, "live-cam", Span(i * 2 * S, (i + 1) * 2 * S), value, ("crowd cheering", "loud"),
                              "Crowd cheering, 12 dB above the last minute")

    for i, value in enumerate([0.1, 0.6, 0.7, 0.1, 0.1, 0.5, 0.1]):
        events.push(score(i, value))
    assert outbox.close(timeout_s=30) == 0
    records = read_topic(kafka_bootstrap, topic, 2)
    sent = [json.loads(r.value) for r in records]
    for event in sent:
        check_event(event)
    assert [(e["stream_start"], e["stream_end"], e["score"]) for e in sent] == [(2.0, 6.0, 0.7), (10.0, 12.0, 0.5)]
    assert {r.key for r in records} == {b"cam"} and sent[0]["wall_start"].endswith("+00:00")
    assert [json.loads(line) for line in (tmp_path / "cam.events.jsonl").read_text().splitlines()] == sent


def test_a_highlight_that_never_ends_still_goes_out_every_minute(tmp_path):
    events = HighlightEvents("cam", 1_795_000_000 * S, tmp_path / "cam.events.jsonl", max_moment_ns=10 * S)
    for i in range(12):  # 24 s above the line
        events.push(HighlightScore(i, "live-cam", Span(i * 2 * S, (i + 1) * 2 * S), 0.6, ("crowd cheering",), "Crowd cheering"))
    assert [(e["stream_start"], e["stream_end"]) for e in events.sent] == [(0.0, 10.0), (10.0, 20.0)]  # 20-24 s still open
