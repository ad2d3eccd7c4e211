"""`tone serve`: the API under uvicorn, in ``TONE_API_WORKERS`` processes that share one port.

Each worker binds its own socket with ``SO_REUSEPORT``, so the kernel spreads new connections over the workers.
uvicorn's own ``workers=`` shares one listening socket instead, and one worker's event loop then accepts a burst of
connections alone: measured with wrk's 32 keep-alive connections, one of two workers took all of them and the other
stayed idle (``tone bench api``, docs/benchmarks.md).
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
from typing import Any

from tone.settings import Settings


def _listener(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto says TCP, and with it on,
    # a keep-alive response waited for the client's delayed ACK (docs/benchmarks.md, "Figures behind code").
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def uvicorn_config(settings: Settings) -> Any:
    """The uvicorn configuration of one worker: the app and the access log setting.

    uvicorn's "auto" choices take httptools' C parser and uvloop when installed; the api extra installs both
    (1.4-1.6x lookups/s, docs/benchmarks.md).
    """
    import uvicorn

    from serving.api import create_app

    return uvicorn.Config(create_app(settings), log_level="info", access_log=settings.api_access_log)


def _serve(settings: Settings, host: str, port: int, reuse_port: bool) -> None:
    """One worker: its own socket, its own app (Redis pools), uvicorn on it."""
    import uvicorn

    sock = _listener(host, port, reuse_port=reuse_port)
    uvicorn.Server(uvicorn_config(settings)).run(sockets=[sock])


def run(settings: Settings, host: str, port: int) -> None:
    """Serve until interrupted; with several workers, stop them all when one exits or on SIGINT/SIGTERM."""
    workers = settings.api_workers
    if workers == 1:
        _serve(settings, host, port, reuse_port=False)
        return
    _listener(host, port, reuse_port=True).close()  # a port in use fails here, once, not in every worker
    context = multiprocessing.get_context("spawn")  # a clean interpreter per worker: no inherited event loop
    procs = [context.Process(target=_serve, args=(settings, host, port, True), daemon=True) for _ in range(workers)]
    for p in procs:
        p.start()

    def stop(*_: Any) -> None:
        for p in procs:
            if p.is_alive():
                p.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(p.is_alive() for p in procs):
            procs[0].join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
        for p in procs:
            p.join(10)
