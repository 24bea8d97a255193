"""Live-update subscribers: a few hundred GET /events streams through nginx, each
dropping its connection now and then (and losing it when a replica dies) and
reconnecting with Last-Event-ID, as a browser's EventSource does. Each keeps a
record of the item ids it was told about; on "resync" it reloads the whole feed
with GET /api/items, as the page does, and remembers when."""

import asyncio
import json
import random
import time

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
        self.created = set()  # ids from item.created events
        self.deleted = set()  # ids from item.deleted events
        self.listed = set()  # ids from the feed reloads after "resync"
        self.resyncs = []  # monotonic start time of each reload
        self.duplicates = 0  # item.created events received again
        self.out_of_order = 0  # events whose id is below one already received
        self.max_id = 0
        self.events = 0
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
                        await self.read(r, min(deadline, time.monotonic() + self.rng.uniform(4, 20)))
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
                if self.last_id < self.max_id:
                    self.out_of_order += 1
                self.max_id = max(self.max_id, self.last_id)
            if event:
                await self.dispatch(event, "\n".join(data))
            event, data, event_id = None, [], None

    async def dispatch(self, event, data):
        self.events += 1
        if event == "item.created":
            item_id = json.loads(data)["id"]
            if item_id in self.created:
                self.duplicates += 1
            self.created.add(item_id)
        elif event == "item.deleted":
            self.deleted.add(json.loads(data)["id"])
        elif event == "resync":
            # Reload the feed, as the page does, retrying while the server cannot
            # answer (a resync often comes while the database is away). Only a
            # reload that succeeded covers the gap, from when it started.
            for _ in range(RELOAD_TRIES):
                started = time.monotonic()
                try:
                    self.listed.update(await list_all(self.s, self.url))
                    self.stats.ok("resync-reload", started)
                    self.resyncs.append(started)
                    return
                except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError) as e:
                    self.stats.error("resync-reload", started, type(e).__name__, str(e))
                await asyncio.sleep(0.5)

    def missing(self, ledger):
        """Items this subscriber was never told of, less those a reload excuses: an
        item deleted before a reload started is rightly absent from it. Returns
        (missing created ids, missing deleted ids)."""
        seen = self.created | self.listed
        last_reload = max(self.resyncs, default=None)
        created = [i for i in ledger.created if i not in seen
                   and not (last_reload and i in ledger.delete_sent and ledger.delete_sent[i] < last_reload)]
        deleted = [i for i, t in ledger.deleted.items() if i not in self.deleted
                   and not (last_reload and t < last_reload)]
        return created, deleted


async def start_subscribers(count, session, url, stats, deadline, rng):
    subs = [Subscriber(n, session, url, stats, rng.getrandbits(32)) for n in range(count)]
    tasks = [asyncio.create_task(s.run(deadline)) for s in subs]
    # Stagger nothing: they connect at once, as the browsers of a household after a
    # Wi-Fi outage do. Wait until each has its stream before the load starts.
    await asyncio.wait_for(asyncio.gather(*(s.connected.wait() for s in subs)), 120)
    return subs, tasks
