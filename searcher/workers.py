"""Worker processes for the reindex: one task at a time each, as JSON lines over pipes.

Each worker is ``python -m searcher.workers``: it reads one task per line on stdin, runs
``indexer.build_shard(**task)`` and answers one line on stdout, ``{"result": {...}}`` or
``{"error": "..."}``. Why not multiprocessing's pools: their queues hold POSIX semaphores
watched by a resource-tracker process, which prints "leaked semaphore" warnings after a
killed reindex, and a pool whose worker dies breaks as a whole (BrokenProcessPool) without
saying which task killed it. Here a worker is a plain child process:

- it exits at the end of its input, and within 0.2 s of its parent's death while busy
  (a killed reindex cannot stop it otherwise);
- it ignores SIGINT: Ctrl-C reaches the whole process group, and the reindex, not each
  worker, decides what stopping means (it terminates them);
- a worker that dies is reported with the task it was running and how it ended.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

# A task (the keyword arguments of indexer.build_shard) and its result, as JSON objects.
Task = dict[str, Any]
Result = dict[str, Any]
Worker = subprocess.Popen[bytes]


class WorkerError(Exception):
    """A task failed in a worker, or the worker died running it."""

    def __init__(self, task: Task, message: str, *, os_error: bool = False):
        super().__init__(message)
        self.task = task
        self.message = message
        self.os_error = os_error  # the task failed on a file operation (disk full, ...)


class WorkerPool:
    """`jobs` worker processes; run() spreads tasks over them and yields their results."""

    def __init__(self, jobs: int):
        package_root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        # The workers import searcher from where this process did, installed or not.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self._workers = [
            subprocess.Popen(
                [sys.executable, "-m", "searcher.workers", str(os.getpid())],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
            for _ in range(jobs)
        ]

    def run(self, tasks: list[Task]) -> Iterator[tuple[Task, Result]]:
        """(task, result) for every task, in the order they finish; WorkerError on failure."""
        queue = list(reversed(tasks))
        running: dict[Worker, Task] = {}
        selector = selectors.DefaultSelector()
        try:
            for worker in self._workers:
                if queue:
                    self._send(worker, queue.pop(), running)
                    selector.register(_pipes(worker)[1], selectors.EVENT_READ, worker)
            while running:
                for key, _ in selector.select():
                    worker = key.data
                    task = running.pop(worker)
                    yield task, self._receive(worker, task)
                    if queue:
                        self._send(worker, queue.pop(), running)
                    else:
                        selector.unregister(_pipes(worker)[1])
        finally:
            selector.close()

    @staticmethod
    def _send(worker: Worker, task: Task, running: dict[Worker, Task]) -> None:
        stdin, _ = _pipes(worker)
        try:
            stdin.write(json.dumps(task).encode() + b"\n")
            stdin.flush()
        except BrokenPipeError:
            code = worker.wait()
            raise WorkerError(task, f"the worker process died ({_how(code)})") from None
        running[worker] = task

    @staticmethod
    def _receive(worker: Worker, task: Task) -> Result:
        line = _pipes(worker)[1].readline()
        if not line:
            code = worker.wait()
            raise WorkerError(task, f"the worker process died ({_how(code)})")
        answer = json.loads(line)
        if "error" in answer:
            raise WorkerError(task, answer["error"], os_error=answer.get("os_error", False))
        result: Result = answer["result"]
        return result

    def close(self, *, kill: bool = False) -> None:
        """Stop the workers: at the end of their input, or at once (kill) after a failure."""
        for worker in self._workers:
            if kill:
                worker.terminate()
            with contextlib.suppress(OSError):  # a worker that died closed its end
                _pipes(worker)[0].close()
        for worker in self._workers:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            _pipes(worker)[1].close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.close(kill=exc_type is not None)


def _pipes(worker: Worker) -> tuple[IO[bytes], IO[bytes]]:
    """A worker's stdin and stdout (both pipes: see WorkerPool.__init__)."""
    assert worker.stdin is not None and worker.stdout is not None
    return worker.stdin, worker.stdout


def _how(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"exit code {code}"


def _exit_with_parent(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def main() -> None:
    """A worker's loop: read a task, build it, answer; until the input ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent(int(sys.argv[1]))
    # Answers go to the original stdout; anything else printing is sent to stderr, so
    # nothing but answers ever reaches the pipe.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    from searcher.indexer import build_shard

    for line in sys.stdin:
        task = json.loads(line)
        answer: dict[str, Any]
        try:
            answer = {"result": build_shard(**task)}
        except OSError as exc:
            answer = {"error": str(exc), "os_error": True}
        except Exception as exc:
            traceback.print_exc()
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
