"""Reading and checking an import file in a child process while this one writes.

A big import is two jobs of about the same size: reading the file and checking every
address (Python), and writing the rows (mostly SQLite). In one process they take turns; here
a forked child reads and checks the rows and hands them over in chunks, so on a machine
with two cores the reading of the next rows happens while the database writes the last.
On SQLite the child also stages each batch (staging.py): it writes the batch's rows into an
SQLite file of its own, and the writer copies them into the store in one statement; then
only the file's name crosses the pipe, and the child stays at most QUEUED_BATCHES batches
ahead (a file each, a few MB).
The rows, their order, the rejects and their line numbers are exactly those of the file's
own reader (`Opened.rows`): the child runs that same reader.

Why a process and not a thread: the reader is Python that holds the interpreter's lock,
and the database driver takes the lock back after every row it inserts, so a reading thread
would make each insert wait for it. A thread of this process only receives the child's bytes
(the lock is released while it waits on the pipe), so the child never waits for a batch's
writes to finish before it reads on: it stays at most QUEUED_CHUNKS chunks ahead."""

from __future__ import annotations

import errno
import multiprocessing
import os
import pickle
import queue
import shutil
import signal
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from itertools import islice
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple

from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.subscribers.formats import Opened
from ainews_newsletter.subscribers.import_rules import ImportRow, Rejected
from ainews_newsletter.subscribers.staging import StagedBatch, write_batch

CHUNK_ROWS = 5000  # rows a message: small enough that the first batch starts soon
QUEUED_CHUNKS = 40  # received but not yet taken: ~200,000 rows, ~15 MB
READ_AHEAD_BYTES = 1 << 20  # smaller files are read in this process: a fork is not worth it
QUEUED_BATCHES = 2  # staged batches written but not yet taken by the writer
_REJECTED_FIELDS = len(Rejected._fields)


class Staging(NamedTuple):
    """Asked of the child: stage the rows in batches of `batch_size` (the writer's
    transaction size), each with --status applied (import_rules.arriving_status)."""

    batch_size: int
    status: SubscriberStatus | None


def can_read_ahead() -> bool:
    """Whether this system forks (Linux, the BSDs, macOS): elsewhere rows are read here."""
    return "fork" in multiprocessing.get_all_start_methods()


class ReadAhead:
    """`opened`'s rows, read in a child process: iterate `rows`, ask `bytes_read` for the
    progress (how far into the file the child was when it sent the rows taken so far),
    and `close` (also as a context manager) when done or failed: it stops the child."""

    def __init__(self, opened: Opened, staging: Staging | None = None) -> None:
        context = multiprocessing.get_context("fork")
        receiving, sending = context.Pipe(duplex=False)
        # Staged: the child writes a batch only with a credit, given back as the writer
        # takes the next one; its files go to a folder of this import's own.
        self._credits = context.Semaphore(QUEUED_BATCHES)
        self._folder: Path | None = None
        stager = None
        if staging is not None:
            self._folder = Path(tempfile.mkdtemp(prefix="ainews-import-"))
            stager = _Stager(staging, self._folder, self._credits, os.getpid())
        self._process = context.Process(target=_produce,
                                        args=(opened, sending, receiving, stager),
                                        name="ainews-import-reader", daemon=True)
        try:
            self._process.start()
        except BaseException:
            if self._folder is not None:
                shutil.rmtree(self._folder, ignore_errors=True)
            raise
        sending.close()  # the child's end: when the child ends, reading here sees EOF
        self._receiving = receiving
        self._position = 0
        self._chunks: queue.Queue[bytes | None] = queue.Queue(QUEUED_CHUNKS)
        self._stopped = threading.Event()
        self._receiver = threading.Thread(target=self._receive, name="ainews-import-pipe",
                                          daemon=True)
        self._receiver.start()
        self.rows = self._rows()
        self.batches = self._batches()

    def bytes_read(self) -> int:
        return self._position

    def _receive(self) -> None:
        """The receiving thread: the child's messages, as bytes, into the queue; None at
        the end of the pipe (the child ended, or `close` closed it)."""
        while not self._stopped.is_set():
            try:
                message: bytes | None = self._receiving.recv_bytes()
            except (EOFError, OSError):
                message = None
            while not self._stopped.is_set():
                try:
                    self._chunks.put(message, timeout=0.5)
                    break
                except queue.Full:
                    continue
            if message is None:
                return

    def _messages(self) -> Iterator[Any]:
        """The child's payloads in order, until its "end"; its failure raised here."""
        while True:
            message = self._chunks.get()
            if message is None:
                self._process.join(timeout=5)
                raise SubscriberError(
                    "reading the file stopped: its reader process ended (exit code "
                    f"{self._process.exitcode}) before the end of the file")
            kind, position, payload = pickle.loads(message)
            if kind == "error":
                raise payload
            self._position = position
            if kind == "end":
                return
            yield payload

    def _rows(self) -> Iterator[ImportRow | Rejected]:
        make: Any = tuple.__new__  # a named tuple from its values, without _make's checks
        for payload in self._messages():
            for values in payload:
                yield make(Rejected if len(values) == _REJECTED_FIELDS else ImportRow, values)

    def _batches(self) -> Iterator[StagedBatch]:
        """The staged batches (Staging asked), each taken when the writer asks for the
        next one: then the child may write another."""
        for payload in self._messages():
            yield StagedBatch._make(payload)
            self._credits.release()

    def close(self) -> None:
        self._stopped.set()
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=5)
        # The child's end of the pipe is closed now, so a receiving thread still waiting on
        # it sees the end and, stopped, returns.
        self._receiver.join(timeout=5)
        self._receiving.close()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class _Stager:
    """The child's side of staging: a file per batch, each written with a credit."""

    def __init__(self, staging: Staging, folder: Path, credits: Any, parent: int) -> None:
        self._staging, self._folder, self._credits = staging, folder, credits
        self._parent = parent

    def messages(self, opened: Opened) -> Iterator[bytes]:
        rows = iter(opened.rows)
        number = 0
        while batch := list(islice(rows, self._staging.batch_size)):
            while not self._credits.acquire(timeout=1):
                if os.getppid() != self._parent:  # the writer is gone: so is the reader
                    raise BrokenPipeError
            number += 1
            path = self._folder / f"batch-{number}.db"
            try:
                staged = write_batch(path, batch, self._staging.status)
            except sqlite3.Error as exc:
                if exc.sqlite_errorcode == sqlite3.SQLITE_FULL:  # said as a full disk is,
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC),  # naming the
                                  str(path)) from None  # folder (storage_faults.py)
                raise SubscriberError(f"cannot stage the import's rows in {path}: {exc}"
                                      ) from None
            yield _message("batch", opened.bytes_read(), tuple(staged))

    def outlive_writer(self) -> None:
        """After the last batch (or the writer gone): wait while the writer lives, whose
        `close` ends this process and removes the folder itself; a writer that was killed
        leaves the folder and its batch files to this process to remove."""
        while os.getppid() == self._parent:
            time.sleep(0.5)
        shutil.rmtree(self._folder, ignore_errors=True)


def _produce(opened: Opened, sending: Connection, receiving: Connection,
             stager: _Stager | None) -> None:
    """The child: every row of `opened` in chunks of plain tuples (a named tuple pickles
    by its class, several times slower), or staged batch by batch (`stager`), then
    ("end", position); a failure as ("error", the exception), raised where the parent's
    rows stop. Ctrl-C is the parent's to handle: it stops the child."""
    # The child's copy of the parent's end closed first: then, if the parent dies (kill -9,
    # SIGTERM), no one reads the pipe any more, the next send fails (EPIPE) and the child
    # ends, instead of waiting on a full pipe for ever.
    receiving.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    chunk: list[tuple[Any, ...]] = []
    try:
        try:
            for message in (() if stager is None else stager.messages(opened)):
                sending.send_bytes(message)
            for row in (() if stager is not None else opened.rows):
                chunk.append(tuple(row))
                if len(chunk) == CHUNK_ROWS:
                    sending.send_bytes(_message("rows", opened.bytes_read(), chunk))
                    chunk = []
            last = _message("end", opened.bytes_read(), None)
        except BaseException as exc:  # any failure is the parent's to raise, where it happened
            last = _failure(exc)
        if chunk:
            sending.send_bytes(_message("rows", opened.bytes_read(), chunk))
        sending.send_bytes(last)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the parent stopped reading (it failed, or was interrupted): nothing to say
    finally:
        sending.close()
    if stager is not None:
        stager.outlive_writer()


def _message(kind: str, position: int, payload: object) -> bytes:
    return pickle.dumps((kind, position, payload), protocol=pickle.HIGHEST_PROTOCOL)


def _failure(exc: BaseException) -> bytes:
    """The exception as the parent will raise it: itself if it pickles and unpickles the
    same, else a SubscriberError with its words."""
    try:
        message = _message("error", 0, exc)
        pickle.loads(message)
        return message
    except Exception:  # e.g. an exception whose __init__ takes other arguments
        return _message("error", 0, SubscriberError(str(exc)))
