"""Time-sortable identifiers (monotonic ULIDs) and timestamps."""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

__all__ = ["ms_to_rfc3339", "new_id", "now_ms", "parse_time"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_MAX_MS = 2**48 - 1  # the ULID time field
_RAND_LIMIT = 2**80  # the ULID random field; a new millisecond starts below 2**79, leaving room for steps
_STEP_BITS = 40
_MIN_MS = int(datetime(1, 1, 1, tzinfo=UTC).timestamp() * 1000)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # every 10 bits as two characters
_PAIR_SHIFTS = tuple(range(120, -10, -10))


def _ulid(ms: int, rand: int) -> str:
    """The 26 characters of (48-bit time, 80-bit random part): 130 bits (the first two zero), five to a
    character (Crockford's base 32), ten bits at a time."""
    n = (ms << 80) | rand
    return "".join([_PAIRS[(n >> shift) & 1023] for shift in _PAIR_SHIFTS])


_random = bytearray()  # bytes from os.urandom not used yet (read and refilled under _lock only)


def _random_bytes(n: int) -> bytes:
    """``n`` bytes from the OS's CSPRNG, read 4 KiB at a time: one system call for hundreds of ids."""
    if len(_random) < n:
        _random[:] = os.urandom(4096)
    out = bytes(_random[-n:])
    del _random[-n:]
    return out


os.register_at_fork(after_in_child=_random.clear)  # a child process never reuses its parent's bytes


def _step() -> int:
    """How far the random part moves for the next id within one millisecond: a random step whose size
    spans many orders of magnitude, so the gap between two ids says little about how many ids (of any
    tenant) were made between them — unlike +1, which counts them exactly."""
    bits = 1 + int.from_bytes(_random_bytes(2), "big") % _STEP_BITS  # 1..40, uniform within 0.1 %
    return 1 + (int.from_bytes(_random_bytes(5), "big") >> (40 - bits))


class _Sequence:
    """The last id made in one scope: (millisecond, random part)."""

    __slots__ = ("ms", "rand")

    def __init__(self) -> None:
        self.ms = -1
        self.rand = 0


_sequences: OrderedDict[str, _Sequence] = OrderedDict()
_MAX_SCOPES = 10_000  # least recently used scopes are forgotten: their next id starts a fresh sequence


def _sequence(scope: str) -> _Sequence:
    seq = _sequences.get(scope)
    if seq is None:
        seq = _sequences[scope] = _Sequence()
        if len(_sequences) > _MAX_SCOPES:
            _sequences.popitem(last=False)
    else:
        _sequences.move_to_end(scope)
    return seq


def new_id(ms: int | None = None, scope: str = "") -> str:
    """A 26-character ULID; ids made in one process and one ``scope`` sort in creation order, even within
    a millisecond.

    Pass the tenant as ``scope`` for ids a tenant sees: each tenant has its own sequence, so the gap
    between two of its ids says nothing about how many ids other tenants got in between. Within a
    millisecond the random part also grows by a random step (see ``_step``), not by one.
    """
    with _lock:
        now = now_ms()
        ms = now if ms is None else min(max(ms, 0), _MAX_MS)
        if ms > now:
            # A time from elsewhere (a client's createdAt) that is still to come: an id of its own. Taking it
            # into the sequence would stamp every later id of this process with that future time.
            return _ulid(ms, int.from_bytes(_random_bytes(10), "big") >> 1)
        seq = _sequence(scope)
        if ms <= seq.ms:
            ms = seq.ms
            seq.rand += _step()
            if seq.rand >= _RAND_LIMIT:  # out of room in this millisecond: borrow the next one
                ms = seq.ms = min(seq.ms + 1, _MAX_MS)
                seq.rand = int.from_bytes(_random_bytes(10), "big") >> 1
        else:
            seq.ms = ms
            seq.rand = int.from_bytes(_random_bytes(10), "big") >> 1  # headroom for increments
        return _ulid(ms, seq.rand)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@functools.lru_cache(maxsize=1024)  # the traces of a batch share their millisecond
def ms_to_rfc3339(ms: int) -> str:
    """Exact to the millisecond (a float of seconds is not, past the year 2100)."""
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_RELATIVE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(value: str, field: str, *, now: int | None = None) -> int:
    """RFC 3339 or relative (``30m``, ``24h``, ``7d``: that long ago) → epoch milliseconds.

    Raises:
        ValueError: naming the field and the accepted forms.
    """
    m = _RELATIVE.match(value)
    if m:
        try:
            delta = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
            ms = (now_ms() if now is None else now) - int(delta.total_seconds() * 1000)
        except OverflowError:
            ms = _MIN_MS - 1
        if ms < _MIN_MS:  # the range of RFC 3339 times (and of the store's keys)
            raise ValueError(f"{field} {value!r} is too far back: it must be after the year 1")
        return ms
    try:
        text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{field} {value!r} is not a time: use RFC 3339 (2026-11-25T12:00:00Z) or a relative time like 30m, 24h, 7d"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _ONE_MS  # exact (a float of seconds is not, past the year 2100)
