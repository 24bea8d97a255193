"""The checks at the end of a soak. Each returns a list of problems; an empty list
means the check ran and found none."""

import asyncio
import hashlib

from subscribers import list_all


async def fetch_sha256(session, url):
    async with session.get(url) as r:
        if r.status != 200:
            return r.status, None
        h = hashlib.sha256()
        async for piece in r.content.iter_chunked(1 << 20):
            h.update(piece)
        return 200, h.hexdigest()


async def bounded(coros, limit=8):
    gate = asyncio.Semaphore(limit)

    async def one(c):
        async with gate:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))


async def kept_items(session, nginx_url, replica_urls, ledger):
    """Every item that got a 201 and was never deleted: its bytes through nginx match
    what was sent, and every replica knows it with the same size and hash."""
    problems = []
    kept = [it for i, it in ledger.created.items() if i not in ledger.delete_sent]

    async def check(item):
        status, sha = await fetch_sha256(session, f"{nginx_url}/items/{item.id}/content")
        if status != 200:
            return [f"{item.kind} {item.id} ({item.size} bytes): content answered {status}"]
        if sha != item.sha256:
            return [f"{item.kind} {item.id} ({item.size} bytes): bytes differ from what was sent"]
        out = []
        for url in replica_urls:
            async with session.get(f"{url}/api/items/{item.id}") as r:
                body = await r.json(content_type=None) if r.status == 200 else {}
                if r.status != 200 or body.get("sha256") != item.sha256 or body.get("size") != item.size:
                    out.append(f"{item.kind} {item.id}: {url} answered {r.status} {body}")
        return out

    for found in await bounded(check(it) for it in kept):
        problems += found
    return len(kept), problems


async def deleted_items(session, replica_urls, ledger, blobs_dir):
    """Every item whose DELETE got a 204 is gone from every replica, and its file
    from the disk."""
    problems = []

    async def check(item_id):
        out = []
        for url in replica_urls:
            for path in (f"/api/items/{item_id}", f"/items/{item_id}/content"):
                async with session.get(url + path) as r:
                    await r.read()
                    if r.status != 404:
                        out.append(f"deleted {item_id}: {url}{path} answered {r.status}")
        if (blobs_dir / item_id).exists():
            out.append(f"deleted {item_id}: its file is still in blobs/")
        return out

    for found in await bounded(check(i) for i in ledger.deleted):
        problems += found
    return len(ledger.deleted), problems


async def feed(session, nginx_url, ledger, sentinel):
    """The feed lists every kept item and none that was deleted. Items the feed has
    that the soak never got an answer for (the replica died before answering) are
    counted, not failed: the client cannot know them."""
    listed = set(await list_all(session, nginx_url))
    kept = {i for i in ledger.created if i not in ledger.delete_sent}
    problems = [f"kept item {i} is missing from GET /api/items" for i in sorted(kept - listed)]
    problems += [f"deleted item {i} is still in GET /api/items" for i in sorted(set(ledger.deleted) & listed)]
    unanswered = listed - set(ledger.created) - {sentinel}
    return listed, unanswered, problems


def subscribers(subs, ledger, log):
    """Exact, against the events table (`log`: (id, kind, item id) up to the closing
    note's event): each subscriber received every event, or missed some and then
    got a resync and a reload that covers each of them. A reload covers a missed
    item.created when it lists the item, or when it started after the item's
    DELETE was sent (the item is rightly absent); a missed item.deleted when it
    started after the DELETE was sent and does not list the item. An item exists
    until its delete commits, and a reload that started after the DELETE was sent
    and still does not list it began after that commit. Every reload follows a
    resync. Returns (problems, total events missed and covered)."""
    problems, covered_total = [], 0
    ids = {event_id for event_id, _, _ in log}
    for s in subs:
        uncovered, covered = [], 0
        for event_id, kind, item in log:
            if event_id in s.ids:
                continue
            sent = ledger.delete_sent.get(item, float("inf"))
            if kind == "item.created":
                ok = any(item in listed or start > sent for start, listed in s.reloads)
            elif kind == "item.deleted":
                ok = any(item not in listed and start > sent for start, listed in s.reloads)
            else:
                ok = False
            if ok:
                covered += 1
            else:
                uncovered.append(f"{event_id} {kind} {item}")
        covered_total += covered
        phantom = sorted(s.ids - ids)
        if uncovered or phantom:
            problems.append(f"subscriber {s.n} ({s.connects} connections, {len(s.resyncs)} resyncs, "
                            f"{len(s.reloads)} reloads) missed {len(uncovered)} events no reload covers "
                            f"(e.g. {uncovered[:3]}) and got {len(phantom)} ids not in the table "
                            f"(e.g. {phantom[:3]})")
    return problems, covered_total


def event_order(subs):
    """A client resumes with the last id it saw (as EventSource does), so an event
    below it would be lost: the streams must send ids in order, each once."""
    return [f"subscriber {s.n}: {s.out_of_order} events out of order, {s.duplicates} received twice"
            for s in subs if s.out_of_order or s.duplicates]


def orphan_blobs(blobs_dir, listed):
    """Files in blobs/ without an item: left by a replica killed between its rename
    and its database commit (reported, swept later by the sweeper)."""
    return sorted(p.name for p in blobs_dir.iterdir() if p.name not in listed)

