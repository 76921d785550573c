"""What the Redis store has to survive: a client dying mid-batch, a competing writer, a lost
reply, server restarts with and without persistence, a dropped connection, a server that stays
away, an unreachable URL. Each case that kills a server runs its own (tests/redis_fixture.py).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import redis

from indexers import redis_connection
from indexers.redis_store import RedisStore, RedisUnavailableError
from indexers.store import SourceInfo, VectorSpaceState
from operators.records import segment_id
from redis_fixture import fresh_prefix, free_port, needs_redis
from test_analysis_store import S
from test_index import DIM, basis, random_records, record
from test_redis_store import summarize

REPO = Path(__file__).resolve().parents[1]


CRASH_MID_EXEC = """
import os, sys
import redis.connection
from indexers.redis_store import RedisStore
from test_index import random_records

store = RedisStore(sys.argv[1], prefix=sys.argv[2])
real_send = redis.connection.AbstractConnection.send_packed_command

def send_half_then_die(self, command, check_health=True):
    data = b"".join(bytes(c) for c in ([command] if isinstance(command, bytes) else command))
    if b"MULTI" in data:  # the upsert's transaction: the server gets half of it, then the client is gone
        self._sock.sendall(data[: len(data) // 2])
        os._exit(17)
    return real_send(self, command, check_health)

redis.connection.AbstractConnection.send_packed_command = send_half_then_die
store.upsert_segments(random_records(20, seed=7, prefix="lost"))
"""


@needs_redis
def test_a_client_dying_mid_batch_leaves_nothing_of_it(redis_server):
    prefix = fresh_prefix()
    store = RedisStore(redis_server.url, prefix=prefix)
    kept = random_records(10)
    store.upsert_segments(kept)
    crash = subprocess.run([sys.executable, "-c", CRASH_MID_EXEC, redis_server.url, prefix], cwd=REPO,
                           env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"},
                           capture_output=True, text=True, timeout=60)
    assert crash.returncode == 17, crash.stderr
    assert store.count_segments() == 10
    assert store.vector_space("visual") == VectorSpaceState(dim=DIM, revision=1, count=10)
    lost = random_records(20, seed=7, prefix="lost")
    assert store.get_segments(r.segment_id for r in lost) == {} and store.segments_of_source("lost0") == []
    assert summarize(store.upsert_segments(lost))["visual"][0] == 2  # the store carries on where it was


@needs_redis
def test_a_write_landing_between_read_and_exec_makes_the_batch_replan(redis_server):
    prefix = fresh_prefix()
    mine, theirs = RedisStore(redis_server.url, prefix=prefix), RedisStore(redis_server.url, prefix=prefix)
    mine.upsert_segments([record("a", 0, visual=basis(1))])
    real_plan, planned = mine._plan_upsert, []

    def plan_then_be_overtaken(by_id, vectors):
        changes, queue = real_plan(by_id, vectors)
        planned.append([c.revision for c in changes])
        if len(planned) == 1:
            assert [c.revision for c in theirs.upsert_segments([record("b", 0, visual=basis(2))])] == [2]
        return changes, queue

    mine._plan_upsert = plan_then_be_overtaken
    changes = mine.upsert_segments([record("a", 2, visual=basis(3))])
    assert planned == [[2], [3]]  # planned revision 2, lost it to the other writer, re-planned
    assert summarize(changes) == {"visual": (3, [segment_id("a", 2 * S)], [], [])}
    assert mine.vector_space("visual") == VectorSpaceState(dim=DIM, revision=3, count=3)


@needs_redis
def test_a_reply_lost_after_exec_still_reports_the_batch(redis_server, monkeypatch):
    store = RedisStore(redis_server.url, prefix=fresh_prefix())
    real, ran = redis.client.Pipeline._execute_transaction, []

    def run_then_drop(self, connection, commands, raise_on_error):
        result = real(self, connection, commands, raise_on_error)
        ran.append(len(commands))
        if len(ran) == 1:
            raise redis.ConnectionError("Connection reset by peer (after EXEC ran)")
        return result

    monkeypatch.setattr(redis.client.Pipeline, "_execute_transaction", run_then_drop)
    records = random_records(6, sources=2)
    changes = store.upsert_segments(records)
    assert len(ran) == 1  # applied once, not again
    assert summarize(changes)["visual"] == (1, sorted(r.segment_id for r in records), [], [])
    assert store.vector_space("visual").revision == 1 and store.upsert_segments(records) == []


@needs_redis
def test_a_restart_with_an_append_only_file_is_ridden_out(aof_server, caplog):
    store = RedisStore(aof_server.url, prefix="p")
    source = SourceInfo("s", uri="/v/s.mp4", name="s.mp4", has_video=True, has_audio=True)
    store.upsert_source(source)
    store.upsert_segments(random_records(8))
    aof_server.kill()
    back = threading.Timer(0.3, aof_server.start)  # the server is down when the upsert starts, back 0.3 s later
    back.start()
    try:
        with caplog.at_level(logging.WARNING, logger="indexers.redis_connection"):
            changes = store.upsert_segments(random_records(8, seed=1, prefix="later"))
    finally:
        back.join()
    assert f"Redis at {aof_server.url}" in caplog.text and "retrying" in caplog.text
    assert {c.space: c.revision for c in changes} == dict.fromkeys(["visual", "audio", "speech", "all", "image"], 2)
    assert store.count_segments() == 16 and store.get_source("s") == source
    assert RedisStore(aof_server.url, prefix="p").store_id == store.store_id


@needs_redis
def test_a_restart_without_persistence_is_reported_not_papered_over(own_server):
    store = RedisStore(own_server.url, prefix="p")
    store.upsert_segments(random_records(4))
    own_server.kill()
    own_server.start()  # --save '' --appendonly no: it comes back empty
    assert store.count_segments() == 0  # reconnected, and reads see what is there
    lost = "lost this store's data.*restarted without persistence"
    with pytest.raises(RuntimeError, match=lost):
        store.upsert_segments(random_records(4))
    with pytest.raises(RuntimeError, match=lost):
        store.put_analysis("x", cuts=[], scores=[], summary=None)
    with pytest.raises(RuntimeError, match=lost):
        store.upsert_source(SourceInfo("x", uri="/x", name="x", has_video=True, has_audio=False))
    assert store.count_segments() == 0 and store.get_cuts("x") == [] and store.list_sources() == []
    assert RedisStore(own_server.url, prefix="p").store_id != store.store_id  # a new store starts afresh


@needs_redis
def test_a_dropped_connection_mid_iteration_is_picked_up_again(own_server):
    store = RedisStore(own_server.url, prefix="p")
    records = random_records(20)
    store.upsert_segments(records)
    pages = store.iter_vectors("visual", batch_rows=6)
    first = next(pages)
    admin = own_server.client()
    assert admin.client_kill_filter(_type="normal", skipme=True) >= 1  # the store's connection
    admin.close()
    ids = np.concatenate([first[0], *(ids for ids, _ in pages)])
    assert ids.tolist() == sorted(r.segment_id for r in records)
    assert store.count_segments() == 20


@needs_redis
def test_a_server_that_stays_away_ends_in_an_error_naming_it(own_server, monkeypatch):
    monkeypatch.setattr(redis_connection, "_RECONNECT_DELAYS_S", (0.01, 0.02))
    store = RedisStore(own_server.url, prefix="p")
    own_server.kill()
    gone = re.escape(f"lost Redis at {own_server.url}") + ".*could not reconnect within 0.0 s"
    with pytest.raises(RedisUnavailableError, match=gone):
        store.count_segments()
    with pytest.raises(RedisUnavailableError, match=gone):
        store.upsert_segments(random_records(2))


@needs_redis
def test_an_unreachable_url_fails_at_once_and_names_it_without_the_password():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(RedisUnavailableError) as raised:
        RedisStore(f"redis://:hunter2@127.0.0.1:{port}/0")
    assert time.monotonic() - started < 2.0
    message = str(raised.value)
    assert f"cannot reach Redis at redis://:***@127.0.0.1:{port}/0" in message and "hunter2" not in message
    assert isinstance(raised.value, ConnectionError)
    with pytest.raises(ValueError, match="http://127.0.0.1:1 is not a usable Redis URL"):
        RedisStore("http://127.0.0.1:1")
