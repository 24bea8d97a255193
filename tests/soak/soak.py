#!/usr/bin/env python3
"""A soak test of Ferry with faults: `nox -s soak -- MINUTES` (minutes of load per
configuration; the default set runs 1).

Each configuration gets a fresh stack on 127.0.0.1 (stack.py): two replicas on
PostgreSQL behind nginx sharing one data directory on a small tmpfs, then a single
process on SQLite behind the same nginx config. Uploaders, downloaders (with and
without Range), note posters, deleters, share-link users and a few hundred SSE
subscribers run through nginx while faults.py kills a replica, restarts PostgreSQL
and fills the disk. Then the load stops and checks.py verifies that nothing was
lost. The summary prints requests per kind, errors by status and cause, latency,
the faults, and "lost: 0" only when every check ran and passed. Exit status 1 on
any problem, including an error that no fault explains.
"""

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

import checks
import faults as fault_schedule
import workers
from ledger import Faults, Ledger, Stats
from stack import ROOT, Stack
from subscribers import start_subscribers

WORKERS = [(workers.uploader, 4), (workers.downloader, 4), (workers.note_poster, 2),
           (workers.deleter, 1), (workers.share_user, 2)]
MAX_OPS = 100_000  # per worker: the loops end by time, this only bounds them


async def soak(stack: Stack, load_secs, subscriber_count, seed):
    rng = random.Random(seed)
    faults, ledger = Faults(), Ledger()
    stats = Stats(faults)
    url = stack.nginx.url
    auth = {"Authorization": f"Bearer {stack.token}"}
    long = aiohttp.ClientTimeout(total=300, sock_connect=10, sock_read=60)
    streams = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=45)
    async with aiohttp.ClientSession(headers=auth, timeout=long,
                                     connector=aiohttp.TCPConnector(limit=64)) as session, \
            aiohttp.ClientSession(timeout=long) as anonymous, \
            aiohttp.ClientSession(headers=auth, timeout=streams,
                                  connector=aiohttp.TCPConnector(limit=0)) as sse:
        print(f"  connecting {subscriber_count} event subscribers", flush=True)
        sub_deadline = time.monotonic() + load_secs + 240
        subs, sub_tasks = await start_subscribers(subscriber_count, sse, url, stats, sub_deadline, rng)

        print(f"  load for {load_secs:.0f} s", flush=True)
        faults.t0 = time.monotonic()
        deadline = faults.t0 + load_secs
        tasks = [asyncio.create_task(fn(workers.Client(session, anonymous, url, ledger, stats,
                                                       deadline, rng.getrandbits(32)), MAX_OPS))
                 for fn, count in WORKERS for _ in range(count)]
        injected = []
        await fault_schedule.inject(stack, faults, load_secs, injected)
        await asyncio.wait_for(asyncio.gather(*tasks), load_secs + 600)
        print(f"  load over after {faults.elapsed():.0f} s; checking", flush=True)

        # Every write has been answered; one last note marks the end of the stream.
        async with session.post(f"{url}/api/items", json={"text": "soak: the end"}) as r:
            if r.status != 201:
                raise RuntimeError(f"the closing note got {r.status}: {await r.text()}")
            sentinel = (await r.json())["id"]
        for s in subs:
            s.sentinel = sentinel
        await asyncio.wait_for(asyncio.gather(*sub_tasks), 300)

        problems = {}
        replica_urls = [rep.url for rep in stack.replicas]
        kept, problems["kept items present and byte-identical"] = await checks.kept_items(
            session, url, replica_urls, ledger)
        gone, problems["deleted items gone from every replica"] = await checks.deleted_items(
            session, replica_urls, ledger, stack.data / "blobs")
        listed, unanswered, problems["feed lists exactly the kept items"] = await checks.feed(
            session, url, ledger, sentinel)
        log = stack.event_log(sentinel)
        problems["every subscriber saw every event (or a resync, then a reload with it)"], covered = \
            checks.subscribers(subs, ledger, log)
        problems["events came once each, in id order"] = checks.event_order(subs)
    orphans = checks.orphan_blobs(stack.data / "blobs", listed | {sentinel})
    codes = stack.stop_replicas()
    problems["clean stop (exit 0)"] = [f"{n} exited with {c}" for n, c in codes.items() if c != 0]
    problems["nothing left in tmp/"] = [f"tmp/{p}" for p in stack.tmp_leftovers()]
    problems["no error without a fault to explain it"] = [
        f"{kind}: {status} {detail}" for kind, status, detail in stats.unexpected]
    report(stack, stats, ledger, subs, injected, problems,
           {"kept": kept, "deleted": gone, "unanswered": len(unanswered), "orphans": len(orphans),
            "events": len(log), "covered": covered, "windows": faults.windows})
    return not any(problems.values())


def report(stack, stats, ledger, subs, injected, problems, counts):
    print(f"\n== soak summary: {stack.config}")
    print("requests per kind (p50 / p99 latency):")
    for kind in sorted(stats.requests):
        p50, p99 = stats.percentiles(kind)
        print(f"  {kind:16} {stats.requests[kind]:7}   {p50 * 1000:8.1f} ms / {p99 * 1000:8.1f} ms")
    print("errors by kind, status and cause:")
    for (kind, status, cause), n in sorted(stats.errors.items()):
        print(f"  {kind:16} {status:24} {n:6}   during: {cause}")
    if not stats.errors:
        print("  none")
    for (kind, what), n in sorted(stats.notes.items()):
        print(f"  {kind:16} {what:24} {n:6}   (not an error)")
    print("faults injected:")
    for line in injected:
        print(f"  {line}")
    print_subscribers(subs, counts)
    print(f"items: {len(ledger.created)} created (201), {counts['kept']} kept, {counts['deleted']} deleted (204), "
          f"{counts['unanswered']} created without an answer, {counts['orphans']} orphaned files in blobs/")
    print("checks:")
    for name, found in problems.items():
        print(f"  {'ok  ' if not found else 'FAIL'} {name}" + (f": {len(found)} problems" if found else ""))
        for p in found[:10]:
            print(f"         {p}")
    lost = sum(len(v) for k, v in problems.items() if k.startswith(("kept", "deleted", "feed", "every")))
    print(f"lost: {lost}" if not any(problems.values()) else f"FAILED ({lost} items lost or wrong)")


# A replica re-listens for notifications within about a second of PostgreSQL's
# return; a stream open until this long after the restart should have its resync.
RESYNC_WITHIN = 5.0


def print_subscribers(subs, counts):
    """The subscribers' figures, each with what it counts: a resync comes only to a
    stream that was open while its replica lost and regained the notification
    connection (PostgreSQL restarting), or whose replay could not be read. A stream
    that reconnects replays from the database after its Last-Event-ID, so a
    subscriber needs a resync only for events sent while it was connected."""
    table = counts["events"]
    item_events = sum(len(s.ids) for s in subs)
    resyncs = sum(len(s.resyncs) for s in subs)
    print(f"subscribers: {len(subs)}, {sum(s.connects for s in subs)} connections; "
          f"{sum(s.events for s in subs)} events received = {item_events} item events "
          f"({table} in the events table x {len(subs)} subscribers, less {table * len(subs) - item_events} "
          f"missed) + {resyncs} resyncs")
    print(f"  missed events: {table * len(subs) - item_events}, {counts['covered']} of them covered by a "
          f"reload after a resync; {sum(s.duplicates for s in subs)} received twice, "
          f"{sum(s.out_of_order for s in subs)} out of order")
    print(f"  resyncs: {resyncs} on {sum(1 for s in subs if s.resyncs)} subscribers, "
          f"{sum(len(s.reloads) for s in subs)} reloads that succeeded")
    lags = sorted(x for s in subs for x in s.lags)
    if lags:
        print(f"  reading lag (an item.created read this long after the item was made): "
              f"p50 {lags[len(lags) // 2]:.1f} s, max {lags[-1]:.1f} s; a stream that hangs up before "
              f"reading a resync drops it unread and replays what it missed after its Last-Event-ID")
    for name, start, end in counts["windows"]:
        if name == "PostgreSQL restart" and end is not None:
            across = [s for s in subs if s.open_across(start, end + RESYNC_WITHIN)]
            told = sum(1 for s in across if any(start <= t for t in s.resyncs))
            print(f"  streams open from before the PostgreSQL restart until {RESYNC_WITHIN:.0f} s after it: "
                  f"{len(across)}, {told} of them told to resync")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("minutes", nargs="?", type=float, default=1.0,
                        help="minutes of load per configuration (default 1)")
    parser.add_argument("--config", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--subscribers", type=int, default=300)
    parser.add_argument("--disk-mib", type=int, default=1536, help="size of the data tmpfs")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args()
    if not 0.1 <= args.minutes <= 24 * 60:
        parser.error("minutes must be between 0.1 and 1440")
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    print(f"soak: {args.minutes:g} min per configuration, seed {seed}", flush=True)
    ok = True
    for config in (["postgres", "sqlite"] if args.config == "both" else [args.config]):
        work = ROOT / "target" / "soak"
        work.mkdir(parents=True, exist_ok=True)
        base = Path(tempfile.mkdtemp(prefix=f"{config}-", dir=work))
        base.chmod(0o755)  # nginx workers read the blobs below it
        print(f"== {config}: {base}", flush=True)
        stack = Stack(base, config, args.disk_mib)
        passed = False
        try:
            stack.start()
            passed = asyncio.run(soak(stack, args.minutes * 60, args.subscribers, seed))
        finally:
            stack.stop()
            if not passed:
                for r in stack.replicas:
                    print(f"--- {r.name} log (end)\n{r.log_tail()}")
            if args.keep or not passed:
                print(f"kept {base}")
            else:
                shutil.rmtree(base, ignore_errors=True)
        ok = ok and passed
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
