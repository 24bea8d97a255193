"""Live-update subscribers: a few hundred GET /events streams through nginx, each
dropping its connection now and then (and losing it when a replica dies) and
reconnecting with Last-Event-ID, as a browser's EventSource does. Each keeps a
record of the event ids it received, the time span of each of its streams, and
each "resync": on one it reloads the whole feed with GET /api/items, as the page
does, and keeps what that reload listed and when it started. checks.py compares
the record with the events table."""

import asyncio
import json
import random
import time
from datetime import datetime

import aiohttp

RELOAD_TRIES = 40


async def list_all(session, url):
    """Every item id in the feed, walking the pages."""
    ids, cursor = [], None
    for _ in range(10_000):
        params = {"limit": "200", **({"cursor": cursor} if cursor else {})}
        async with session.get(f"{url}/api/items", params=params) as r:
            if r.status != 200:
                raise RuntimeError(f"GET /api/items answered {r.status}: {(await r.text())[:200]}")
            page = await r.json()
        ids += [i["id"] for i in page["items"]]
        cursor = page.get("next_cursor")
        if not cursor:
            return ids
    raise RuntimeError("GET /api/items did not reach its last page")


class Subscriber:
    def __init__(self, n, session, url, stats, seed):
        self.n, self.s, self.url, self.stats = n, session, url, stats
        self.rng = random.Random(seed)
        self.last_id = 0
        self.ids = set()  # event ids received, live or replayed
        self.created = set()  # item ids from item.created events
        self.resyncs = []  # monotonic time each "resync" event arrived
        self.reloads = []  # (monotonic start, item ids listed) of each reload that succeeded
        self.streams = []  # (monotonic open, close) of each stream that was answered 200
        self.duplicates = 0  # events whose id was received before
        self.out_of_order = 0  # events whose id is below one already received
        self.max_id = 0
        self.events = 0  # every event received: item events and resyncs
        self.lags = []  # seconds from each item's created_at to reading its item.created
        self.connects = 0
        self.sentinel = None
        self.connected = asyncio.Event()

    def done(self):
        return self.sentinel is not None and self.sentinel in self.created

    async def run(self, deadline):
        while not self.done() and time.monotonic() < deadline:
            started = time.monotonic()
            headers = {"Accept": "text/event-stream", "Last-Event-ID": str(self.last_id)}
            try:
                async with self.s.get(f"{self.url}/events", headers=headers) as r:
                    if r.status != 200:
                        self.stats.error("events-connect", started, r.status,
                                         (await r.text())[:200])
                    else:
                        self.stats.ok("events-connect", started)
                        self.connects += 1
                        self.connected.set()
                        opened = time.monotonic()
                        try:
                            await self.read(r, min(deadline, opened + self.rng.uniform(4, 20)))
                        finally:
                            self.streams.append((opened, time.monotonic()))
                    r.close()
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                self.stats.error("events-stream", started, type(e).__name__, str(e))
            await asyncio.sleep(self.rng.uniform(0.05, 0.5))

    async def read(self, r, drop_at):
        """Read events until drop_at (then hang up, as a phone changing networks
        does), the end of the stream, or the sentinel."""
        event, data, event_id = None, [], None
        while not self.done():
            remaining = drop_at - time.monotonic()
            if remaining <= 0:
                return
            try:
                line = await asyncio.wait_for(r.content.readline(), remaining)
            except asyncio.TimeoutError:
                return
            if not line:
                return  # the server ended the stream
            line = line.decode().rstrip("\r\n")
            if line.startswith(":"):
                continue
            if line:
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    event = value
                elif field == "data":
                    data.append(value)
                elif field == "id":
                    event_id = value
                continue
            if event_id is not None:
                self.last_id = int(event_id)
                if self.last_id in self.ids:
                    self.duplicates += 1
                elif self.last_id < self.max_id:
                    self.out_of_order += 1
                self.ids.add(self.last_id)
                self.max_id = max(self.max_id, self.last_id)
            if event:
                await self.dispatch(event, "\n".join(data))
            event, data, event_id = None, [], None

    async def dispatch(self, event, data):
        self.events += 1
        if event == "item.created":
            item = json.loads(data)
            self.created.add(item["id"])
            created = datetime.fromisoformat(item["created_at"].replace("Z", "+00:00")).timestamp()
            self.lags.append(time.time() - created)
        elif event == "resync":
            self.resyncs.append(time.monotonic())
            # Reload the feed, as the page does, retrying while the server cannot
            # answer (a resync often comes while the database is away). Only a
            # reload that succeeded covers the gap, from when it started.
            for _ in range(RELOAD_TRIES):
                started = time.monotonic()
                try:
                    listed = frozenset(await list_all(self.s, self.url))
                    self.stats.ok("resync-reload", started)
                    self.reloads.append((started, listed))
                    return
                except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError) as e:
                    self.stats.error("resync-reload", started, type(e).__name__, str(e))
                await asyncio.sleep(0.5)

    def open_across(self, start, end):
        """Whether one of its streams was open from before `start` until after `end`."""
        return any(a < start and b > end for a, b in self.streams)


async def start_subscribers(count, session, url, stats, deadline, rng):
    subs = [Subscriber(n, session, url, stats, rng.getrandbits(32)) for n in range(count)]
    tasks = [asyncio.create_task(s.run(deadline)) for s in subs]
    # Stagger nothing: they connect at once, as the browsers of a household after a
    # Wi-Fi outage do. Wait until each has its stream before the load starts.
    await asyncio.wait_for(asyncio.gather(*(s.connected.wait() for s in subs)), 120)
    return subs, tasks
