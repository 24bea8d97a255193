"""The soak's clients, each a bounded loop through nginx: uploaders (1 KiB to 64 MiB,
raw PUT with a known length), downloaders (whole files and Range requests, every
byte compared with what was sent), note posters, deleters (which also keep the
small data disk from filling by itself) and share-link users."""

import asyncio
import hashlib
import json
import random
import time

import aiohttp

from ledger import Item, content, content_sha256, upload_size

# Above this many live bytes the deleters remove the largest files first, so the
# data disk fills only when the disk fault fills it.
LIVE_BUDGET = 256 << 20


class Client:
    def __init__(self, session, anonymous, base_url, ledger, stats, deadline, seed):
        """`session` carries the soak's bearer token; `anonymous` is a share link's
        recipient, with no account."""
        self.s, self.anon, self.url, self.ledger, self.stats = session, anonymous, base_url, ledger, stats
        self.deadline = deadline
        self.rng = random.Random(seed)

    def running(self):
        return time.monotonic() < self.deadline

    async def pause(self, lo, hi):
        await asyncio.sleep(self.rng.uniform(lo, hi))


async def read_json(r):
    try:
        return await r.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return {}


def cause(body):
    return body.get("error", "") if isinstance(body, dict) else ""


async def uploader(c: Client, max_ops):
    for _ in range(max_ops):
        if not c.running():
            return
        size = upload_size(c.rng)
        seed = c.ledger.next_seed()
        started = time.monotonic()

        async def body():
            for piece in content(seed, 0, size):
                yield piece

        try:
            async with c.s.put(f"{c.url}/api/items", params={"name": f"soak-{seed}.bin"}, data=body(),
                               headers={"Content-Length": str(size),
                                        "Content-Type": "application/octet-stream"}) as r:
                answer = await read_json(r)
                if r.status == 201:
                    sha = content_sha256(seed, size)
                    if answer.get("size") != size or answer.get("sha256") != sha:
                        c.stats.error("upload", started, "201-wrong", json.dumps(answer),
                                      allowed_in_fault=False)
                    else:
                        c.ledger.add(Item(answer["id"], "file", size, sha, seed=seed))
                        c.stats.ok("upload", started)
                elif r.status == 507:
                    # Refused for want of space: not an item, so not lost.
                    c.stats.error("upload", started, 507, cause(answer),
                                  allowed_in_fault=True)
                else:
                    c.stats.error("upload", started, r.status, f"{cause(answer)} {answer}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            c.stats.error("upload", started, type(e).__name__, str(e))
        await c.pause(0.05, 0.3)


async def note_poster(c: Client, max_ops):
    for n in range(max_ops):
        if not c.running():
            return
        text = f"soak note {c.rng.getrandbits(64):016x} #{n}\n" + "x" * c.rng.randrange(0, 2000)
        started = time.monotonic()
        try:
            async with c.s.post(f"{c.url}/api/items", json={"text": text}) as r:
                answer = await read_json(r)
                if r.status == 201:
                    data = text.encode()
                    c.ledger.add(Item(answer["id"], "note", len(data),
                                      hashlib.sha256(data).hexdigest(), text=text))
                    c.stats.ok("note", started)
                else:
                    c.stats.error("note", started, r.status, f"{cause(answer)} {answer}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            c.stats.error("note", started, type(e).__name__, str(e))
        await c.pause(0.05, 0.2)


async def check_body(r, item: Item, start, end):
    """Compare a streamed body with bytes [start, end) of what was sent."""
    expected = b"".join(content(item.seed, start, end)) if item.kind == "file" and end - start <= (1 << 20) else None
    if expected is not None:
        got = await r.read()
        return got == expected
    if item.kind == "note":
        return (await r.read()) == item.text.encode()[start:end]
    h, want = hashlib.sha256(), hashlib.sha256()
    for piece in content(item.seed, start, end, chunk=1 << 20):
        want.update(piece)
    async for piece in r.content.iter_chunked(1 << 20):
        h.update(piece)
    return h.digest() == want.digest()


async def download(c: Client, kind, url, item: Item, ranged, session=None):
    """GET the item's bytes, whole or a random range, and compare them."""
    headers = {}
    start, end = 0, item.size
    if ranged and item.size > 1:
        start = c.rng.randrange(0, item.size - 1)
        end = min(item.size, start + c.rng.randrange(1, 4 << 20))
        headers["Range"] = f"bytes={start}-{end - 1}"
    started = time.monotonic()
    try:
        async with (session or c.s).get(url, headers=headers) as r:
            want = 206 if ranged and item.size > 1 else 200
            if r.status == want:
                if await check_body(r, item, start, end):
                    c.stats.ok(kind, started)
                else:
                    c.stats.error(kind, started, f"{r.status}-bytes-differ",
                                  f"{item.id} {headers.get('Range', 'whole')}", allowed_in_fault=False)
            elif r.status in (404, 410) and c.ledger.was_deleted(item.id):
                await r.read()
                c.stats.outcome(kind, started, f"{r.status} (deleted meanwhile)")
            else:
                body = (await r.read())[:200].decode(errors="replace")
                c.stats.error(kind, started, r.status, f"{item.id}: {body}")
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
        c.stats.error(kind, started, type(e).__name__, str(e))


async def downloader(c: Client, max_ops):
    for _ in range(max_ops):
        if not c.running():
            return
        item = c.ledger.pick(c.rng)
        if item:
            ranged = c.rng.random() < 0.5
            await download(c, "download-range" if ranged else "download", f"{c.url}/items/{item.id}/content",
                           item, ranged)
        await c.pause(0.02, 0.15)


async def deleter(c: Client, max_ops):
    for _ in range(max_ops):
        if not c.running():
            return
        item = c.ledger.largest() if c.ledger.live_bytes > LIVE_BUDGET else None
        if item is None and c.rng.random() < 0.5:
            item = c.ledger.pick(c.rng)
        if item is None:
            await c.pause(0.1, 0.3)
            continue
        c.ledger.deleting(item.id)
        started = time.monotonic()
        try:
            async with c.s.delete(f"{c.url}/api/items/{item.id}") as r:
                answer = await read_json(r)
                if r.status == 204:
                    c.ledger.deleted[item.id] = time.monotonic()
                    c.stats.ok("delete", started)
                else:
                    c.stats.error("delete", started, r.status, f"{cause(answer)} {item.id}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            c.stats.error("delete", started, type(e).__name__, str(e))
        await c.pause(0.1, 0.4)


async def share_user(c: Client, max_ops):
    """Make a share link for an item, then fetch it as someone without an account
    (no Authorization header), whole or a range, sometimes with a password."""
    for _ in range(max_ops):
        if not c.running():
            return
        item = c.ledger.pick(c.rng)
        if item is None:
            await c.pause(0.1, 0.3)
            continue
        password = "open sesame" if c.rng.random() < 0.3 else None
        request = {"expires": "1d", **({"password": password} if password else {})}
        started = time.monotonic()
        try:
            async with c.s.post(f"{c.url}/api/items/{item.id}/shares", json=request) as r:
                answer = await read_json(r)
                if r.status == 201:
                    c.stats.ok("share-create", started)
                    token = answer["token"]
                elif r.status == 404 and c.ledger.was_deleted(item.id):
                    c.stats.outcome("share-create", started, "404 (deleted meanwhile)")
                    continue
                else:
                    c.stats.error("share-create", started, r.status, f"{cause(answer)} {answer}")
                    await c.pause(0.1, 0.4)
                    continue
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            c.stats.error("share-create", started, type(e).__name__, str(e))
            await c.pause(0.1, 0.4)
            continue
        url = f"{c.url}/s/{token}/content"
        if password:
            await share_post(c, url, item, password)
        else:
            await download(c, "share-download", url, item, c.rng.random() < 0.4, session=c.anon)
        await c.pause(0.1, 0.4)


async def share_post(c: Client, url, item: Item, password):
    started = time.monotonic()
    try:
        async with c.anon.post(url, data={"password": password}) as r:
            if r.status == 200:
                if await check_body(r, item, 0, item.size):
                    c.stats.ok("share-download", started)
                else:
                    c.stats.error("share-download", started, "200-bytes-differ", item.id,
                                  allowed_in_fault=False)
            elif r.status in (404, 410) and c.ledger.was_deleted(item.id):
                await r.read()
                c.stats.outcome("share-download", started, f"{r.status} (deleted meanwhile)")
            else:
                c.stats.error("share-download", started, r.status, item.id)
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
        c.stats.error("share-download", started, type(e).__name__, str(e))
