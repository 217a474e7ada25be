"""`WorkspaceStore(..., write_behind=True)`: row calls return at once, a thread writes them.

The anchor is MLflow's `synchronous=False` logging: a client that records from a training
loop does not wait for the database. Row calls are validated and queued as inside a
transaction (`write_queue`); a background thread flushes the queue every
`FLUSH_INTERVAL_S`, a caller flushes it itself when it holds `MAX_QUEUED_ROWS` rows (the
bound on memory, and back-pressure on a writer faster than the database), and every read or
other write through the store flushes it first (reads see the calls made before them).
`flush()`, `close()` and interpreter exit drain it.

What a crash can lose: the rows queued since the last flush (at most `FLUSH_INTERVAL_S`
plus one flush of calls, and never more than `MAX_QUEUED_ROWS` rows); committed rows and
artifact files are never lost. A flush that fails loses its batch: the error is raised, as
`WriteBehindError` naming how many rows were not written, by the next call (or `flush()`,
or `close()`), never swallowed.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Callable

from nirs4all_store.errors import WriteBehindError
from nirs4all_store.facade.write_queue import WriteQueue

FLUSH_INTERVAL_S = 0.25
MAX_QUEUED_ROWS = 20_000


class WriteBehind:
    """The queue of a write-behind store and the thread that flushes it."""

    def __init__(
        self,
        flush: Callable[[WriteQueue], None],
        *,
        interval: float = FLUSH_INTERVAL_S,
        max_rows: int = MAX_QUEUED_ROWS,
    ) -> None:
        self.queue = WriteQueue()
        #: Held while a call adds to the queue or a flush detaches its batch.
        self.lock = threading.RLock()
        self._flush = flush
        self._flushing = threading.Lock()  # batches are written one at a time, in order
        self._interval = interval
        self._max_rows = max_rows
        self._error: WriteBehindError | None = None
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(
            target=self._loop, name="nirs4all-store write-behind", daemon=True
        )
        self._thread.start()
        _drain_at_exit(self)

    def _loop(self) -> None:
        while not self._stopped:
            self._wake.wait(self._interval)
            self._wake.clear()
            self.drain()

    def drain(self) -> None:
        """Write what is queued now (in the calling thread); a failure is kept for `check`."""
        with self._flushing:
            with self.lock:
                batch = self.queue.detach()
            if not len(batch):
                return
            try:
                self._flush(batch)
            except Exception as exc:
                with self.lock:
                    self.queue.known.forget()  # its pipelines and chains were not written
                    if self._error is None:
                        self._error = WriteBehindError(
                            f"a write-behind flush failed: {len(batch)} queued row(s) were not "
                            f"written ({type(exc).__name__}: {exc})"
                        )
                        self._error.__cause__ = exc

    def added(self) -> None:
        """After a call queued rows: flush in the caller when the queue is full."""
        if len(self.queue) >= self._max_rows:
            self.drain()

    def check(self) -> None:
        """Raise the error of a failed flush (once)."""
        if self._error is not None:
            with self.lock:
                error, self._error = self._error, None
            if error is not None:
                raise error

    def close(self) -> None:
        """Stop the thread, write what is queued, raise a pending error."""
        if not self._stopped:
            self._stopped = True
            self._wake.set()
            if threading.current_thread() is not self._thread:
                self._thread.join()
        self.drain()
        self.check()


def _drain_at_exit(behind: WriteBehind) -> None:
    """Drain `behind` when the interpreter exits (unless it was closed before).

    A flush at exit failed at first: pyarrow imports pandas on its first Arrow insert, and
    pandas imports concurrent.futures.thread, which registers a thread-pool exit hook, which
    is refused once shutdown has begun ("can't register atexit after shutdown"; the whole
    batch was lost). Importing that module now, while registering is allowed, makes the
    later import a no-op."""
    import concurrent.futures.thread  # noqa: F401  (see above)

    ref = weakref.ref(behind)

    def hook() -> None:
        alive = ref()
        if alive is not None and not alive._stopped:
            alive.close()

    atexit.register(hook)
