"""What runs inside a sending worker process (process_sender.py forks them): its SMTP
connections, one thread each, each taking the rows the parent hands it, building their
messages and sending them, and answering with the server's reply. A worker never touches
the ledger; it sends a row only once the parent says the previous answer is recorded.

Also the records that cross the pipe between the parent and a worker, and the stop flag
they share."""

from __future__ import annotations

import os
import pickle
import signal
import threading
from collections import deque
from collections.abc import Callable
from ctypes import c_byte
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

from ainews_newsletter.delivery.claims import Delivery
from ainews_newsletter.delivery.outgoing import Outgoing
from ainews_newsletter.delivery.transports import (
    ConnectionSurplus,
    SharedByProcesses,
    Transport,
    TransportUnavailable,
)
from ainews_newsletter.models import Recipient, SendOutcome

# Kinds of answer besides a DeliveryState value:
SKIPPED = "skipped"  # not sent: a stop was asked, or the parent is gone
UNAVAILABLE = "unavailable"  # the server cannot be reached: the send stops
BROKEN = "broken"  # an unexpected error in the worker: the send stops, saying what
RETIRED = "retired"  # no relay has a place for this connection: it gets no more rows

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class RowToSend(NamedTuple):
    """A claimed ledger row, as a worker needs it to build and send its message."""

    row_id: int
    attempts: int
    return_tag: str | None
    subscriber_id: int
    email: str
    name: str | None
    token: str
    language: str | None  # which rendering of the issue (None: its own language)

    @staticmethod
    def wire(delivery: Delivery) -> WireRecord:
        """The row as it travels (see WireRecord): the fields' plain tuple."""
        r = delivery.recipient
        return (delivery.id, delivery.attempts, delivery.return_tag, r.subscriber_id,
                r.email, r.name, r.token, r.language)

    def delivery(self) -> Delivery:
        return Delivery(id=self.row_id, attempts=self.attempts, return_tag=self.return_tag,
                        recipient=Recipient(subscriber_id=self.subscriber_id,
                                            email=self.email, name=self.name,
                                            token=self.token, language=self.language))


class Answer(NamedTuple):
    """A worker's answer for one row: what the server said, or why nothing was sent."""

    row_id: int
    kind: str  # a DeliveryState value, or SKIPPED, UNAVAILABLE, BROKEN, RETIRED
    code: int  # the server's reply code (0: none)
    text: str  # the server's reply, or the error
    relay: str | None = None  # which of [[smtp.relays]] answered (None: the one [smtp])


# On the pipe a record travels as the plain tuple of its fields (`tuple(record)`, read back
# with `_make`): a named tuple is pickled with a reference to its class, looked up again at
# every load, several times the cost of the tuple itself, once per message each way. Sent
# pickled by `dumps` (send_bytes; RecordReader reads it): Connection.send's pickler copies the
# copyreg table at each call, five times what pickling such a tuple costs.
WireRecord = tuple[Any, ...]
dumps = pickle.dumps
# Parent to worker: (your last answer is recorded, a RowToSend or None); None alone means
# "no more". Worker to parent: an Answer.
Order = tuple[bool, WireRecord | None]


class RecordReader:
    """Reading the records off one end of a pipe, as `pipe.recv()` returns them (EOFError
    once the other end is gone, also mid-record, where recv says OSError): Connection reads
    the length and the pickle in two system calls through a buffer, per message; here one
    read takes what has arrived. In the parent, bytes kept back are never a whole record
    its selector would miss: a worker sends its next answer only once told the last is
    recorded."""

    def __init__(self, pipe: Connection) -> None:
        self._fd = pipe.fileno()
        self._pending = bytearray()  # bytes read past the last whole record

    def read(self) -> Any:
        """The next record (an Order, None, an Answer's fields), waiting for it if it has
        not wholly arrived."""
        pending = self._pending
        while True:
            if len(pending) >= 4:
                # send_bytes' frame: a signed 4-byte big-endian length (-1 only beyond 2 GiB)
                end = 4 + int.from_bytes(pending[:4], "big", signed=True)
                if end < 4:
                    raise OSError("a record too long for the sender's pipe")
                if len(pending) >= end:
                    record = pickle.loads(pending[4:end])
                    del pending[:end]
                    return record
            chunk = os.read(self._fd, 65536)
            if not chunk:
                raise EOFError
            if not pending and len(chunk) >= 4 and len(chunk) == 4 + int.from_bytes(
                    chunk[:4], "big", signed=True):  # the usual case: one whole record
                return pickle.loads(memoryview(chunk)[4:])
            pending += chunk


class StopFlag:
    """"Send no more", set by the parent, read by the workers before each row: one byte of
    shared memory, no lock (a worker killed while holding a lock, as
    multiprocessing.Event's, would leave the parent waiting for it for ever)."""

    def __init__(self, value: c_byte) -> None:
        self._value = value

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)


def _attempt(outgoing: Outgoing, transport: Transport, delivery: Delivery,
             built: bytes | SendOutcome | Exception) -> Answer:
    if isinstance(built, Exception):
        return Answer(delivery.id, BROKEN, 0, f"{type(built).__name__}: {built}")
    try:
        outcome = outgoing.hand_over(transport, delivery, built)
    except ConnectionSurplus as exc:  # nothing went; the parent hands this one no more
        return Answer(delivery.id, RETIRED, 0, str(exc))
    except TransportUnavailable as exc:
        return Answer(delivery.id, UNAVAILABLE, 0, str(exc))
    except Exception as exc:  # a bug, not a user mistake: the parent stops and says it
        return Answer(delivery.id, BROKEN, 0, f"{type(exc).__name__}: {exc}")
    return Answer(delivery.id, outcome.state.value, outcome.code, outcome.reply,
                  outcome.relay)


def _build(outgoing: Outgoing, delivery: Delivery) -> bytes | SendOutcome | Exception:
    try:
        return outgoing.build(delivery)
    except Exception as exc:  # reported by _attempt
        return exc


def _serve_connection(pipe: Connection, outgoing: Outgoing,
                      transports: Callable[[], Transport], stop: StopFlag,
                      parent: int) -> None:
    """One connection: take the next row, build its message, wait until the previous
    answer is recorded, send, answer; until the parent says "no more" or is gone."""
    try:
        _serve_rows(pipe, outgoing, transports(), stop, parent)
    except (EOFError, OSError):  # the parent is gone: what was sent stays `sending`
        return
    finally:
        pipe.close()  # the parent sees EOF, not silence, if this thread ends early


def _serve_rows(pipe: Connection, outgoing: Outgoing, transport: Transport, stop: StopFlag,
                parent: int) -> None:
    rows: deque[WireRecord] = deque()
    orders = RecordReader(pipe)
    built: bytes | SendOutcome | Exception | None = None  # the first row's message, made
    unrecorded = False  # an answer of ours the parent has not recorded yet
    retired: str | None = None  # why no relay had a place for this connection
    try:
        while True:
            while not rows or unrecorded:
                if rows and built is None:  # build while the parent records
                    built = _build(outgoing, RowToSend._make(rows[0]).delivery())
                order: Order | None = orders.read()  # EOFError: the parent is gone
                if order is None:
                    return
                recorded, row = order
                unrecorded = unrecorded and not recorded
                if row is not None:
                    rows.append(row)
            delivery = RowToSend._make(rows.popleft()).delivery()
            if built is None:
                built = _build(outgoing, delivery)
            if stop.is_set() or os.getppid() != parent:
                answer = Answer(delivery.id, SKIPPED, 0, "")
            elif retired is not None:  # the parent hands this one no more: what it has
                answer = Answer(delivery.id, RETIRED, 0, retired)  # goes back unsent
            else:
                answer = _attempt(outgoing, transport, delivery, built)
                if answer.kind == RETIRED:  # no place held: nothing to let go but the
                    retired = answer.text  # transports of relays found down
                    transport.close()
            built = None
            pipe.send_bytes(dumps(tuple(answer)))
            unrecorded = True
    finally:
        transport.close()


def run_worker(pipes: list[Connection], foreign: list[Connection], outgoing: Outgoing,
               transports: Callable[[], Transport], stop: StopFlag, parent: int,
               number: int, processes: int, connections: int) -> None:
    """Worker process `number` of `processes` (of the send's `connections`, it holds every
    processes-th from `number` on): its connections, one thread each."""
    # Ctrl-C and SIGTERM reach the whole process group; the parent decides when to stop
    # (finishing the messages in hand), so the workers must not die half-way through one.
    # They were blocked across the fork (the parent's handlers must never run here).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    for other in foreign:  # the parent's ends and other workers': a pipe must see EOF
        other.close()  # when the one process at its other end goes
    if isinstance(transports, SharedByProcesses):  # this process's share of the limits
        transports.in_process(number, processes, connections)
    if len(pipes) == 1:
        _serve_connection(pipes[0], outgoing, transports, stop, parent)
        return
    threads = [threading.Thread(target=_serve_connection,
                                args=(pipe, outgoing, transports, stop, parent))
               for pipe in pipes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
