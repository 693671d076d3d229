"""Serving the app over HTTP: waitress in one process, or gunicorn's pre-forked workers.

- ``workers == 1`` (or not Linux): waitress, one process with a pool of threads.
- ``workers > 1`` on Linux: gunicorn, a master that forks ``workers`` processes with
  ``threads`` threads each. The master holds no app and no index (cli.py opens it once to
  check it, and closes it, before serving): each worker builds the app after the fork,
  opens the index read-only and follows CURRENT on its own, so a reindex switches every
  worker over without a restart; and the master has no thread a fork could copy
  mid-operation.

Either way the listening socket is opened here first, so a busy port or a bad address is
one clear ``ServeError`` before any server starts, and the servers' own error answers
(a malformed request, a request line or header block past the limits below) carry the
project's JSON error body instead of their text/plain or HTML pages.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

# The longest request line either server accepts, in bytes as sent (percent-encoded):
# gunicorn's own maximum, and common (nginx's default buffer is 8 KB). It is the first
# limit a long URL meets: 1,000 characters of q fit when ASCII, 910 of them when each
# takes 9 bytes encoded (a 3-byte UTF-8 character). Longer: 414, with the JSON body.
MAX_REQUEST_LINE = 8190
MAX_HEADER_FIELDS = 100
MAX_HEADER_FIELD_SIZE = 8190
# waitress has one limit for the whole head (request line + headers); past it: 431.
MAX_REQUEST_HEAD = 64 * 1024
# After answering a request it will not read, the server reads and drops what the client
# is still sending (this long at most) before closing: closing a socket with unread input
# sends a reset, which can make the client lose the answer.
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 2**20
# gunicorn gives a thread to a request only once its head has arrived whole (up to this
# many bytes: then its parser answers 414/431); a client that sends it slowly waits on
# the worker's poller, and is closed after HEAD_SECONDS without a whole head.
HEAD_BYTES = 65536
HEAD_SECONDS = 10.0
# Requests answered on one kept-alive connection before it is closed (as nginx's
# keepalive_requests), so connections spread over the workers again (_limit_keepalive):
# with 100, the busiest of 2 workers did up to 63% of the work under 16 clients; with 20,
# 52-53% (bench/bench_serve.py, 1M specs). A reconnection on loopback costs ~0.1 ms.
KEEPALIVE_REQUESTS = 20


# Every response carries these (README, "Security"), the servers' own error answers
# included. The page loads only its own CSS and script (no inline code, so no
# 'unsafe-inline'), talks only to its own API, cannot be framed, and sends no referrer to
# the tarball hosts it links to.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class ServeError(Exception):
    """The server cannot start: the address is busy, unknown or not ours to use."""


def error_body(status: int, message: str) -> bytes:
    """The JSON error body of the API, for errors the servers answer themselves."""
    return json.dumps({"error": {"status": status, "message": message}}).encode()


# The headers of those answers.
ERROR_HEADERS = [("Content-Type", "application/json"), *SECURITY_HEADERS.items()]


def listen(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A socket listening on host:port; ServeError saying what to do if it cannot."""
    where = f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError, OverflowError) as exc:
        raise ServeError(f"cannot listen on {where}: unknown address ({exc})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        why = (exc.strerror or str(exc)).lower()
        raise ServeError(
            f"cannot listen on {where}: {why}; pick another with --port or SEARCHER_PORT"
        ) from None
    return sock


def serve(
    make_app: Callable[[], WSGIApplication],
    sock: socket.socket,
    *,
    workers: int,
    threads: int,
) -> None:
    """Serve the WSGI app make_app() builds on a listening socket until SIGTERM or Ctrl-C."""
    if workers > 1 and sys.platform.startswith("linux"):
        _serve_gunicorn(make_app, sock, workers, threads)
    else:
        _serve_waitress(make_app(), sock, threads)


# Connections being drained at once, per process; past it they are closed at once.
_lingering = threading.BoundedSemaphore(16)


def linger(sock: socket.socket) -> None:
    """Drain a connection we are closing (after an error answer, or a gunicorn close with
    input unread), in the background, then close it.

    The answer has been sent; the client may still be sending a request we will not
    read. Closing with unread input makes the kernel send a reset, which can destroy the
    answer before the client reads it; so we stop sending, read and drop its input for a
    bounded time, and only then close. The server closes its own descriptor as usual:
    we drain a duplicate, in a thread, so no server thread or event loop waits on it.
    """
    if not _lingering.acquire(blocking=False):
        return
    try:
        copy = sock.dup()
    except OSError:
        _lingering.release()
        return
    threading.Thread(target=_drain, args=(copy,), name="linger", daemon=True).start()


def _drain(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(0.2)
        deadline, dropped = time.monotonic() + LINGER_SECONDS, 0
        while time.monotonic() < deadline and dropped < LINGER_BYTES:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            dropped += len(chunk)
    except OSError:
        pass
    finally:
        sock.close()
        _lingering.release()


# -- waitress -----------------------------------------------------------------------------


def _serve_waitress(app: WSGIApplication, sock: socket.socket, threads: int) -> None:
    from waitress.channel import HTTPChannel
    from waitress.server import TcpWSGIServer
    from waitress.task import ErrorTask

    class JsonErrorTask(ErrorTask):
        """waitress's own error answers (bad request, head too large, ...) as JSON."""

        def execute(self) -> None:
            error = self.request.error
            body = error_body(error.code, f"{error.reason}: {error.body}")
            self.status = f"{error.code} {error.reason}"
            self.response_headers.extend(ERROR_HEADERS)
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)
            self.channel.answered_error = True

    class Channel(HTTPChannel):
        error_task_class = JsonErrorTask
        answered_error = False

        def handle_close(self) -> None:
            # The connection closes after an error answer: let the client read it.
            if self.answered_error and self.socket is not None:
                self.answered_error = False
                linger(self.socket)
            super().handle_close()

    class Server(TcpWSGIServer):
        channel_class = Channel

    server = Server(
        app,
        _sock=sock,
        bind_socket=False,
        sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()),
        threads=threads,
        ident="searcher",
        max_request_header_size=MAX_REQUEST_HEAD,
    )

    def stop(signum: int, frame: object) -> NoReturn:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


# -- gunicorn -----------------------------------------------------------------------------


def _serve_gunicorn(
    make_app: Callable[[], WSGIApplication], sock: socket.socket, workers: int, threads: int
) -> None:
    from gunicorn.app.base import BaseApplication

    options = {
        "bind": [f"fd://{sock.fileno()}"],
        "workers": workers,
        "threads": threads,
        "worker_class": _json_error_worker(),
        "limit_request_line": MAX_REQUEST_LINE,
        "limit_request_fields": MAX_HEADER_FIELDS,
        "limit_request_field_size": MAX_HEADER_FIELD_SIZE,
        "graceful_timeout": 10,
        "keepalive": 5,
        "pre_request": _limit_keepalive,
        "loglevel": "warning",
        "proc_name": "searcher",
        # gunicorn 27 runs a control server (a thread, and a socket at
        # ~/.gunicorn/gunicorn.ctl shared by every server of the user): we use neither.
        "control_socket_disable": True,
    }

    class Application(BaseApplication):
        def load_config(self) -> None:
            for name, value in options.items():
                self.cfg.set(name, value)

        def load(self) -> WSGIApplication:
            # In each worker, after the fork: the index is opened there, not here.
            return make_app()

    os.set_inheritable(sock.fileno(), True)
    Application().run()


def _close_off_the_loop(sock: socket.socket, graceful: bool = False) -> None:
    """A gunicorn connection's close(), without blocking the worker's event loop.

    gunicorn 27's threaded worker closes a finished connection "gracefully" on its main
    thread: it waits up to 2 s for the client to close its side. A client that keeps its
    socket open after a Connection: close answer froze every other connection of that
    worker meanwhile (5 of them in a row stalled it 10 s). linger() does the same wait on
    a duplicate of the socket, in a thread of its own.
    """
    if graceful and _unread(sock):  # else nothing can make the close a reset
        linger(sock)
    with contextlib.suppress(OSError):
        sock.close()


def _peek(sock: socket.socket, size: int) -> bytes | None:
    """Up to size bytes waiting on the socket, left there; None when none are waiting
    (b"": the client closed its side). Other OSErrors propagate."""
    try:
        return sock.recv(size, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return None


def _unread(sock: socket.socket) -> bool:
    """Whether the client sent bytes we have not read (closing on them sends a reset)."""
    try:
        return bool(_peek(sock, 1))
    except OSError:  # the connection is gone
        return False


def _head_arrived(sock: socket.socket) -> bool:
    """Whether a whole request head (or more than HEAD_BYTES, or the end: the parser
    answers those) waits on the socket, looked at without reading it."""
    try:
        seen = _peek(sock, HEAD_BYTES)
    except OSError:
        return True  # gunicorn meets the error itself
    if seen is None:
        return False
    return not seen or len(seen) >= HEAD_BYTES or b"\r\n\r\n" in seen or b"\n\n" in seen


def _limit_keepalive(worker: Any, req: Any) -> None:
    """Close a connection after KEEPALIVE_REQUESTS requests (Connection: close).

    gunicorn's workers share one listening socket, and a kept-alive connection stays
    with the worker that accepted it: a client's connections opened at once can all land
    on one worker while the other idles. A connection that is closed now and then is
    opened again, and accepted by whichever worker gets to it first, the less busy one.
    """
    if req.req_number >= KEEPALIVE_REQUESTS:
        req.must_close = True


def _json_error_worker() -> type:
    """gunicorn's threaded worker, with a thread only for a request whose head has arrived,
    closes off its event loop, and JSON answers to the requests it rejects."""
    from gunicorn import util
    from gunicorn.http import errors
    from gunicorn.workers.gthread import _DEFER, ThreadWorker

    statuses = [
        # A header the app answered with that gunicorn refuses is the app's fault: 500.
        # (They are ParseExceptions, so they come before it.)
        (errors.InvalidResponseHeader, 500, "Internal Server Error"),
        (errors.InvalidResponseHeaderName, 500, "Internal Server Error"),
        (errors.LimitRequestLine, 414, "URI Too Long"),
        (errors.LimitRequestHeaders, 431, "Request Header Fields Too Large"),
        (errors.UnsupportedTransferCoding, 501, "Not Implemented"),
        (errors.ExpectationFailed, 417, "Expectation Failed"),
        (errors.ForbiddenProxyRequest, 403, "Forbidden"),
        (errors.ConfigurationProblem, 500, "Internal Server Error"),
        (errors.ParseException, 400, "Bad Request"),
    ]

    class JsonErrorWorker(ThreadWorker):
        def handle(self, conn: Any) -> Any:
            # gunicorn's thread reads the request head itself: clients sending headers a
            # byte a second held every thread (8 of them stopped a 2 x 4 server). Until
            # the head is whole, hand the connection back to the poller (_DEFER: it comes
            # back when more arrives); past HEAD_SECONDS, close it.
            if not hasattr(conn, "searcher_head_since"):  # a connection new to us
                conn.searcher_head_since = None
                conn.close = functools.partial(_close_off_the_loop, conn.sock)
            buffered = conn.parser is not None and conn.parser.unreader.buf.getvalue()
            if not buffered and not _head_arrived(conn.sock):
                now = time.monotonic()
                started = getattr(conn, "searcher_head_since", None)
                if started is None:
                    conn.searcher_head_since = now
                elif now - started > HEAD_SECONDS:
                    return False  # closed
                return _DEFER
            conn.searcher_head_since = None
            return super().handle(conn)

        def handle_error(
            self, req: Any, client: socket.socket, addr: Any, exc: BaseException
        ) -> None:
            status, reason = next(
                ((code, text) for kind, code, text in statuses if isinstance(exc, kind)),
                (500, "Internal Server Error"),
            )
            if status == 500:
                self.log.exception("error handling a request")
                message = "internal error; it has been logged"
            else:
                # Cut: a rejected request line may be 8 KB an attacker repeats.
                self.log.warning("invalid request from %s: %.200s", (addr or ("",))[0], exc)
                message = f"{reason}: {str(exc)[:200]}"
            body = error_body(status, message)
            headers = [("Connection", "close"), *ERROR_HEADERS, ("Content-Length", len(body))]
            head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(
                f"{name}: {value}\r\n" for name, value in headers
            )
            head += "\r\n"
            try:
                util.write_nonblock(client, head.encode("latin-1") + body)
            except OSError:
                self.log.debug("could not send the error answer")
            else:
                linger(client)

    return JsonErrorWorker
