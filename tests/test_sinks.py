"""Live event sinks never hold the driver up: events wait in a bounded outbox while a sink is
down (a real Tansu broker killed and started again) and go out, in order, when it returns."""

import json
import time

from operators.analysis.highlights import HighlightScore
from operators.records import Span
from pipelines.live.outputs import HighlightEvents, Outbox, kafka_sink
from test_kafka_io import read_topic
from test_live import wait_for

S = 1_000_000_000


def crowd(i: int) -> HighlightScore:
    return HighlightScore(i, "live-cam", Span(i * 2 * S, (i + 1) * 2 * S), 0.8, ("crowd cheering",), "Crowd cheering")


def quiet(i: int) -> HighlightScore:
    return HighlightScore(i, "live-cam", Span(i * 2 * S, (i + 1) * 2 * S), 0.1, (), "")


def test_events_wait_while_the_broker_is_down_and_go_out_in_order_when_it_returns(tmp_path):
    from kafka_fixture import TansuBroker, tansu_binary  # a broker of its own, to kill

    broker = TansuBroker(tansu_binary(), tmp_path / "tansu.log")
    broker.start()
    outbox = Outbox("kafka", kafka_sink(f"kafka://{broker.bootstrap}/events"))
    events = HighlightEvents("cam", 1_795_000_000 * S, tmp_path / "cam.events.jsonl", sinks=[outbox])
    try:
        events.push(crowd(0))
        events.push(quiet(1))
        wait_for(lambda: outbox.sent == 1, 30, "the first event on the topic")
        broker.kill()
        took = []
        for i in range(2, 8, 2):  # three more moments while the broker is down
            started = time.monotonic()
            events.push(crowd(i))
            events.push(quiet(i + 1))
            took.append(time.monotonic() - started)
        assert max(took) < 0.5, took  # the driver never waits on a sink
        time.sleep(2)
        assert outbox.sent == 1 and outbox.waiting == 3
        broker.start()  # same port; its memory storage starts empty
        wait_for(lambda: outbox.waiting == 0, 120, "the held events to go out")
        records = read_topic(broker.bootstrap, "events", 3, timeout_s=30)
        starts = [json.loads(r.value)["stream_start"] for r in records]
        assert starts[-3:] == [4.0, 8.0, 12.0], starts  # in order, none lost (at least once: a resend may repeat one)
        file_starts = [json.loads(line)["stream_start"] for line in (tmp_path / "cam.events.jsonl").read_text().splitlines()]
        assert file_starts == [0.0, 4.0, 8.0, 12.0]  # the file has every event at once
    finally:
        assert outbox.close(timeout_s=5) == 0
        broker.kill()


def test_an_outbox_is_bounded_drops_the_oldest_and_says_how_many_never_went(tmp_path):
    class Down:  # a sink that is never reachable
        def send(self, event, key):
            raise ConnectionError("no route to host")

        def flush(self):
            pass

        def close(self):
            pass

    outbox = Outbox("test", Down, max_events=2, retry_s=0.05)
    started = time.monotonic()
    for i in range(5):
        outbox.put({"type": "highlight", "source": "cam", "stream_start": float(i)})
    assert time.monotonic() - started < 0.1
    assert outbox.dropped == 3 and outbox.waiting == 2
    wait_for(lambda: outbox.failures >= 2, 5, "retries")
    assert outbox.close(timeout_s=0.2) == 2
