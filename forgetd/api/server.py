"""Running the intake API: one uvicorn process, or several on one port with a listening socket each.

uvicorn's ``--workers`` share one listening socket, and the process that wakes first accepts every
pending connection: a client that opens its connections at once (a connection pool, a load generator)
can land wholly on one process while the others idle; ``benchmarks/intake_load.py`` saw half its runs
at one process's throughput. Here each process binds its own socket to the port with ``SO_REUSEPORT``,
and the kernel spreads new connections across them. The parent only supervises: SIGTERM or Ctrl-C
stops every process (each finishes its requests), and if one process dies the others are stopped too.
"""

from __future__ import annotations

import multiprocessing
import socket
import time
from collections.abc import Sequence
from multiprocessing.process import BaseProcess

import uvicorn

from forgetd.settings import Settings
from forgetd.supervision import wait_for_stop

STOP_GRACE_S = 30.0


def run_api(settings: Settings) -> None:
    if settings.api_workers == 1:
        _serve(settings, socket_=None)
        return
    context = multiprocessing.get_context("spawn")  # no state (threads, sockets, clients) inherited
    processes = [context.Process(target=_serve_on_own_socket, args=(settings,), name=f"forgetd-api-{i}")
                 for i in range(settings.api_workers)]
    for process in processes:
        process.start()
    try:
        status = wait_for_stop(lambda: _first_exited(processes))
    finally:
        _stop(processes)
    if status:
        raise SystemExit(status)


def _serve_on_own_socket(settings: Settings) -> None:
    _serve(settings, _reuse_port_socket(settings.api_host, settings.api_port))


def _serve(settings: Settings, socket_: socket.socket | None) -> None:
    from forgetd.api.app import create_app

    # No access log: every request is counted in the metrics and every state change is in the ledger's
    # audit trail; a line per request would cost the intake a tenth of its CPU, and operators the volume.
    config = uvicorn.Config(create_app(settings), host=settings.api_host, port=settings.api_port,
                            log_level="info", access_log=False)
    uvicorn.Server(config).run(sockets=[socket_] if socket_ else None)


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    listener = socket.socket(family, kind, protocol)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(address)
    listener.listen(2048)
    return listener


def _first_exited(processes: Sequence[BaseProcess]) -> str | None:
    exited = next((process for process in processes if not process.is_alive()), None)
    return f"API process {exited.name} exited with {exited.exitcode}" if exited else None


def _stop(processes: Sequence[BaseProcess]) -> None:
    for process in processes:
        if process.is_alive():
            process.terminate()  # SIGTERM: uvicorn finishes the requests it has, then exits
    deadline = time.monotonic() + STOP_GRACE_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
