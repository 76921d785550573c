"""``vidscope serve --ray-address``: the same FastAPI app (``create_app``) as a Ray Serve
deployment with replicas, behind Ray Serve's HTTP proxy on every node.

Each replica builds the app itself (Ray Serve calls the builder on the replica) and opens the
data folder there: the folder must be at the same path on every node that can host a replica
(a shared mount), or the metadata in Redis (``--redis``) with the FAISS files rebuilt in each
replica's memory.
"""

from __future__ import annotations

import logging
import signal
import threading

from pipelines.serve.app import ServeConfig, create_app

log = logging.getLogger("vidscope.serve")
APP_NAME = "vidscope"
REPLICA_CPUS = 0.5
"""What a replica reserves: a query is a few milliseconds of one core, mostly waiting on I/O."""
READY_WAIT_S = 2.0
"""How long /readyz of the API in front of shards waits on each shard's answer."""


def _build(config: ServeConfig, shards: int):
    """Runs on each API replica: the app over the replica's own open index, or, in front of
    shards, over the metadata alone, its searches asked of the shards (``indexers.shards``)."""
    if shards <= 1:
        return create_app(config)
    from ray import serve

    from indexers.shards import Shard
    from pipelines.serve.library import Library

    handles = [serve.get_deployment_handle(f"shard-{k}", app_name=APP_NAME) for k in range(shards)]

    def ask(method: str, *args) -> list:
        return [r.result() for r in [getattr(h, method).remote(*args) for h in handles]]

    def shards_ready() -> tuple[bool, str]:
        waiting = []
        for k, handle in enumerate(handles):
            try:
                handle.ready.remote().result(timeout_s=READY_WAIT_S)
            except TimeoutError:  # still opening (building its part of the indexes from the store)
                waiting.append(f"shard-{k}")
        return not waiting, f"waiting for {', '.join(waiting)} to open its vectors"

    return create_app(config, library=Library(config.data_dir, shard=Shard(0, 0), ask_shards=ask,
                                              shards_ready=shards_ready))


class ShardReplica:
    """One shard's vectors (``Library(shard=...)``), answering the two rounds of a search."""

    def __init__(self, data_dir: str, number: int, of: int) -> None:
        from indexers.shards import Shard
        from pipelines.serve.library import Library

        self.library = Library(data_dir, shard=Shard(number, of))

    def ready(self) -> bool:
        return True  # answered only once __init__ has opened the shard's vectors

    def candidates(self, queries: dict, n: int) -> dict:
        return self.library.candidates(queries, n)

    def moments_of(self, queries: dict, candidates: list[int], words: dict[int, float], top_k: int) -> list[dict]:
        return self.library.moments_of(queries, candidates, words, top_k)


def serve_on_ray(config: ServeConfig, *, ray_address: str, replicas: int = 1, shards: int = 1,
                 stop: threading.Event | None = None) -> None:
    """Deploy, then wait until ``stop`` is set (or SIGINT/SIGTERM); the deployment is deleted on
    the way out. ``shards`` > 1: the vectors split by source over that many shard deployments
    (``replicas`` each), the API replicas in front holding none."""
    if replicas < 1 or shards < 1:
        raise ValueError("--replicas and --shards must be at least 1")
    from ray import serve

    from pipelines.ingest.runtime import RuntimeConfig, start_ray

    start_ray(RuntimeConfig(ray_address=ray_address))
    _start_serve(config)
    options = dict(num_replicas=replicas, ray_actor_options={"num_cpus": REPLICA_CPUS}, health_check_period_s=5)
    api = serve.deployment(name="api", **options)(serve.ingress(lambda: _build(config, shards))())
    parts = [serve.deployment(ShardReplica, name=f"shard-{k}", **options).bind(str(config.data_dir), k, shards)
             for k in range(shards)] if shards > 1 else []
    serve.run(api.bind(*parts), name=APP_NAME, route_prefix="/", blocking=False)
    log.warning("vidscope serve: %d replica(s)%s on Ray at http://%s:%d/", replicas,
                f" of each of {shards} shards" if shards > 1 else "", config.host, config.port)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        serve.delete(APP_NAME)
        if not serve.status().applications:  # leave the cluster as found: no Serve of ours behind
            serve.shutdown()


def _start_serve(config: ServeConfig) -> None:
    """Start Ray Serve with our HTTP options. A Serve instance already running on the cluster
    keeps the options it was started with (Ray ignores new ones, with a log line): one that runs
    nothing is shut down and started again with ours; one that runs other applications on another
    address is an error, since this server would answer on a port nobody asked for."""
    from ray import serve

    wanted = {"host": config.host, "port": config.port}
    running = serve.status()
    if running.proxies and not running.applications:
        serve.shutdown()
    serve.start(http_options=wanted)
    from ray.serve.context import _get_global_client  # the running instance's options: no public API

    http = _get_global_client().http_config
    if (http.host, http.port) != (config.host, config.port):
        raise RuntimeError(f"Ray Serve already runs on this cluster at {http.host}:{http.port} with other "
                           f"applications ({', '.join(serve.status().applications)}); serve on --port {http.port} "
                           f"--host {http.host}, or stop it first (serve shutdown)")
