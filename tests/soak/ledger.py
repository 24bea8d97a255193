"""What the soak sent and what it was told: every item that got a 201 (with the size
and SHA-256 of what was sent), every delete that got a 204, and the figures for the
summary (requests per kind, errors by status and cause, latencies, fault windows)."""

import hashlib
import os
import random
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

MIB = 1 << 20
# Upload bodies are slices of one random block, each item starting at its own
# offset, so any range of any item can be recomputed without keeping the bytes.
BLOCK_LEN = 1048573  # prime: offsets seed*7919 mod it are distinct for every seed
BLOCK = os.urandom(BLOCK_LEN)
DOUBLE = BLOCK + BLOCK
CHUNK = 256 * 1024
# Errors this long after a fault ended still count as caused by it (nginx's
# fail_timeout, pools reconnecting).
FAULT_GRACE = 5.0


def content(seed: int, start: int, end: int, chunk=CHUNK):
    """Bytes [start, end) of the upload with this seed, in pieces of at most `chunk`."""
    offset = (seed * 7919) % BLOCK_LEN
    pos = start
    while pos < end:
        at = (offset + pos) % BLOCK_LEN
        n = min(chunk, end - pos, BLOCK_LEN)
        yield DOUBLE[at:at + n]
        pos += n


def content_sha256(seed: int, size: int) -> str:
    h = hashlib.sha256()
    for piece in content(seed, 0, size, chunk=MIB):
        h.update(piece)
    return h.hexdigest()


def upload_size(rng: random.Random) -> int:
    """1 KiB to 64 MiB, log-uniform, with both ends themselves now and then."""
    r = rng.random()
    if r < 0.05:
        return 1024
    if r < 0.10:
        return 64 * MIB
    return int(2 ** rng.uniform(10, 26))


@dataclass
class Item:
    id: str
    kind: str  # "file" or "note"
    size: int
    sha256: str
    seed: int = 0
    text: str = ""


class Ledger:
    def __init__(self):
        self.created = {}  # id -> Item, every 201
        self.live = {}  # id -> Item, 201'd and no delete sent yet
        self.delete_sent = {}  # id -> monotonic time the DELETE was sent
        self.deleted = {}  # id -> monotonic time of its 204
        self.live_bytes = 0
        self.seeds = 0

    def next_seed(self):
        self.seeds += 1
        return self.seeds

    def add(self, item: Item):
        self.created[item.id] = item
        self.live[item.id] = item
        self.live_bytes += item.size

    def pick(self, rng, kind=None):
        ids = [i for i, it in self.live.items() if kind is None or it.kind == kind]
        return self.live[rng.choice(ids)] if ids else None

    def largest(self):
        return max(self.live.values(), key=lambda it: it.size, default=None)

    def deleting(self, item_id):
        item = self.live.pop(item_id, None)
        if item:
            self.live_bytes -= item.size
        self.delete_sent[item_id] = time.monotonic()

    def was_deleted(self, item_id):
        return item_id in self.delete_sent


class Faults:
    """When each fault was injected, so errors can be told apart by cause."""

    def __init__(self):
        self.windows = []  # [name, start, end or None]
        self.t0 = time.monotonic()

    def begin(self, name):
        self.windows.append([name, time.monotonic(), None])
        print(f"  [{self.elapsed():6.1f}s] fault: {name}", flush=True)

    def end(self, name):
        for w in reversed(self.windows):
            if w[0] == name and w[2] is None:
                w[2] = time.monotonic()
                print(f"  [{self.elapsed():6.1f}s] over: {name} ({w[2] - w[1]:.1f} s)", flush=True)
                return

    def elapsed(self):
        return time.monotonic() - self.t0

    def active(self, start, end):
        """The latest fault whose window (plus the grace) overlaps [start, end]."""
        for name, a, b in reversed(self.windows):
            if a <= end and start <= (b if b is not None else float("inf")) + FAULT_GRACE:
                return name
        return None


class Stats:
    def __init__(self, faults: Faults):
        self.faults = faults
        self.requests = Counter()
        self.latency = defaultdict(list)
        # (kind, status or exception, cause) -> count; cause names a fault or "-".
        self.errors = Counter()
        self.unexpected = []  # (kind, status, detail): what fails the run
        self.notes = Counter()  # outcomes that are not errors, e.g. 404 of a deleted item

    def ok(self, kind, started):
        self.requests[kind] += 1
        self.latency[kind].append(time.monotonic() - started)

    def outcome(self, kind, started, what):
        """An answer that is right but worth counting (404 for an item being deleted)."""
        self.requests[kind] += 1
        self.latency[kind].append(time.monotonic() - started)
        self.notes[(kind, what)] += 1

    def error(self, kind, started, status, detail="", allowed_in_fault=True):
        """A failed request. Outside a fault window (or when the fault does not excuse
        it), it is unexpected and fails the run. A 500 is never excused: a fault
        outside Ferry (a replica killed, PostgreSQL restarting, a full disk) is 502
        from nginx, 503 (try again) or 507, and a 500 is Ferry failing."""
        self.requests[kind] += 1
        end = time.monotonic()
        self.latency[kind].append(end - started)
        excusable = allowed_in_fault and str(status) != "500"
        fault = self.faults.active(started, end) if excusable else None
        self.errors[(kind, str(status), fault or "no fault")] += 1
        if not fault:
            self.unexpected.append((kind, str(status), detail[:300]))

    def percentiles(self, kind):
        xs = sorted(self.latency[kind])
        if not xs:
            return None, None
        p99 = xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]
        return statistics.median(xs), p99
