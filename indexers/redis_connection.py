"""How ``indexers.redis_store`` talks to Redis: one client per URL and key prefix, and whole
operations retried across a dropped connection (see that module's doc for what is safe to repeat).

Reconnection: a dropped connection or a server that is briefly away (a restart) is retried for
about 5 s with growing pauses, then ``RedisUnavailableError`` names the URL (its password masked).
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterator, Sequence, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

_RECONNECT_DELAYS_S = (0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0)  # ~5.5 s: longer than a restart
_MAX_CONFLICTS = 100  # re-plans after a concurrent write before giving up
_BATCH_MARK_S = 600
_CONNECT_TIMEOUT_S = 2.0
_SOCKET_TIMEOUT_S = 60.0  # one EXEC of a large batch must fit
_T = TypeVar("_T")


class RedisUnavailableError(ConnectionError):
    """Redis could not be reached at the configured URL (at start, or for longer than the retries)."""


def shown(url: str) -> str:
    """``url`` with its password masked, fit for errors and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class RedisConnection:
    """A Redis client under one key prefix, with reads and optimistic writes that outlast a
    restart. Thread-safe: redis-py's pool gives each call its own connection."""

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix, self.shown = prefix, shown(url)
        try:
            # No retries inside redis-py: read/write retry whole operations, knowing which ones are
            # safe to repeat; a second layer would hide that.
            self.client = redis.Redis.from_url(url, socket_connect_timeout=_CONNECT_TIMEOUT_S,
                                               socket_timeout=_SOCKET_TIMEOUT_S, retry=Retry(NoBackoff(), 0))
        except ValueError as exc:
            raise ValueError(f"{self.shown} is not a usable Redis URL: {exc}") from None

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def ping(self) -> bool:
        """Whether Redis answers now (one try, no retries: for a caller waiting out an outage)."""
        try:
            return bool(self.client.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    def close(self) -> None:
        self.client.close()

    def _pause(self, delays: Iterator[float], exc: Exception, what: str) -> None:
        """Sleep before the next try after a connection error, or raise once the retries are spent."""
        delay = next(delays, None)
        if delay is None:
            raise RedisUnavailableError(f"lost Redis at {self.shown} while trying to {what} and could not "
                                        f"reconnect within {sum(_RECONNECT_DELAYS_S):.1f} s: {exc}") from exc
        log.warning("Redis at %s: %s while trying to %s; retrying in %.2f s", self.shown, exc, what, delay)
        time.sleep(delay)

    def read(self, what: str, read: Callable[[], _T]) -> _T:
        """Run ``read`` (which only reads, so repeating it is harmless), reconnecting as needed."""
        delays = iter(_RECONNECT_DELAYS_S)
        while True:
            try:
                return read()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self._pause(delays, exc, what)

    def write(self, what: str, watch: Sequence[str], plan: Callable[[], tuple[_T, Callable]],
              *, mark: str | None = None) -> _T:
        """Optimistic read-modify-write: ``WATCH`` the prefix's ``meta`` hash and the keys ``plan``
        reads, let it read and return ``(result, queue)``, run ``queue(pipe)`` inside
        ``MULTI``/``EXEC``; re-plan when another client changed a watched key, pause and reconnect
        when the connection drops.

        ``mark``: a key set inside the transaction, checked after a drop before re-planning,
        for writes whose result would be lost by re-planning against their own effect.
        """
        delays = iter(_RECONNECT_DELAYS_S)
        conflicts = 0
        sent: list[_T] = []  # the result of a plan whose EXEC went out and may have run
        while True:
            try:
                if sent and mark is not None and self.client.exists(mark):
                    return sent[-1]
                sent.clear()
                with self.client.pipeline() as pipe:
                    pipe.watch(self.key("meta"), *watch)
                    result, queue = plan()
                    pipe.multi()
                    queue(pipe)
                    if mark is not None:
                        pipe.set(mark, b"1", ex=_BATCH_MARK_S)
                    sent.append(result)
                    pipe.execute()
                return result
            except redis.WatchError:
                # Another writer came first, or the connection died while watching (redis-py says
                # so with a WatchError too); the marker check above tells the two apart.
                conflicts += 1
                if conflicts > _MAX_CONFLICTS:
                    raise RuntimeError(f"Redis at {self.shown}: could not {what}: other writers changed the "
                                       f"same keys {_MAX_CONFLICTS} times in a row") from None
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self._pause(delays, exc, what)
