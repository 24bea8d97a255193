"""The faults, at fixed fractions of the load phase: SIGKILL of one replica and its
restart, a PostgreSQL restart (two-replica configuration only), and the data disk
filled to the last byte for a while, then freed."""

import asyncio
import time

# (fraction of the load phase at which it starts, fault)
SCHEDULE = [(0.15, "kill"), (0.40, "postgres"), (0.60, "disk")]
# The disk stays full for this fraction of the load phase.
DISK_FULL_FOR = 0.15


async def at(t0, seconds):
    await asyncio.sleep(max(0.0, t0 + seconds - time.monotonic()))


async def inject(stack, faults, load_secs, injected):
    """Run the schedule; `injected` collects a line per fault for the summary."""
    t0 = time.monotonic()
    for fraction, fault in SCHEDULE:
        if fault == "postgres" and stack.pg is None:
            continue
        await at(t0, fraction * load_secs)
        if fault == "kill":
            victim = stack.replicas[-1]
            name = f"SIGKILL {victim.name}"
            faults.begin(name)
            await asyncio.to_thread(victim.kill)
            await asyncio.sleep(2)
            started = time.monotonic()
            await asyncio.to_thread(victim.start)
            faults.end(name)
            injected.append(f"{name}, restarted after 2 s, ready {time.monotonic() - started:.1f} s later")
        elif fault == "postgres":
            name = "PostgreSQL restart"
            faults.begin(name)
            started = time.monotonic()
            await asyncio.to_thread(stack.restart_postgres)
            faults.end(name)
            injected.append(f"{name} (pg_ctl restart -m fast, {time.monotonic() - started:.1f} s)")
        elif fault == "disk":
            name = "data disk full"
            faults.begin(name)
            filled = await asyncio.to_thread(stack.disk.fill)
            left = stack.disk.free_bytes()
            await asyncio.sleep(DISK_FULL_FOR * load_secs)
            await asyncio.to_thread(stack.disk.free)
            faults.end(name)
            injected.append(f"{name}: filler of {filled >> 20} MiB, {left} bytes left, "
                            f"for {DISK_FULL_FOR * load_secs:.0f} s, then freed")
