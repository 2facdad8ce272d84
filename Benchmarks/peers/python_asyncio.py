#!/usr/bin/env python3
"""Python asyncio through its ordinary API (create_subprocess_exec, wait_for,
kill), with the same workloads and report as Benchmarks/reference/ref.c.
CORRAL_PY_WATCHER=pidfd uses PidfdChildWatcher instead of the default."""
import asyncio, json, os, resource, sys, time

async def run_one(argv, deadline=None, capture=False):
    start = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE if capture else asyncio.subprocess.DEVNULL,
        start_new_session=True)
    if capture:
        total = 0
        while True:
            chunk = await proc.stdout.read(1 << 16)
            if not chunk:
                break
            total += len(chunk)
        await proc.wait()
        return total, None
    if deadline is None:
        await proc.wait()
        return proc.returncode, None
    try:
        await asyncio.wait_for(proc.wait(), deadline)
        return proc.returncode, None
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return None, (time.monotonic() - start - deadline) * 1000

async def main():
    mode = sys.argv[1]
    report = {"jobs": 0, "delivered": 0, "errors": 0}
    start = time.monotonic()
    if mode in ("spawn", "bigheap"):
        if mode == "bigheap":
            heap = bytearray(int(sys.argv[2]) << 20)
            for i in range(0, len(heap), 4096):
                heap[i] = 1
            start = time.monotonic()
            n, inflight = int(sys.argv[3]), 1
        else:
            n, inflight = int(sys.argv[2]), int(sys.argv[3])
        gate = asyncio.Semaphore(inflight)
        async def one():
            async with gate:
                return await run_one(["/bin/true"])
        results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
        report.update(jobs=n, delivered=sum(1 for r in results if not isinstance(r, BaseException)),
                      errors=sum(1 for r in results if isinstance(r, BaseException) or r[0] != 0))
    elif mode in ("deadline", "trickle"):
        n = int(sys.argv[2])
        deadline = float(sys.argv[3]) if mode == "deadline" else None
        argv = ["/bin/sleep", "30" if deadline else "1"]
        results = await asyncio.gather(*(run_one(argv, deadline) for _ in range(n)), return_exceptions=True)
        ok = [r for r in results if not isinstance(r, BaseException)]
        report.update(jobs=n, delivered=len(ok), errors=n - len(ok))
        overs = sorted(r[1] for r in ok if r[1] is not None)
        if overs:
            pick = lambda p: overs[round((len(overs) - 1) * p)]
            report["overshoot_ms"] = {"p50": pick(0.5), "p99": pick(0.99), "max": overs[-1]}
        if isinstance(next((r for r in results if isinstance(r, BaseException)), None), BaseException):
            print(repr(next(r for r in results if isinstance(r, BaseException))), file=sys.stderr)
    elif mode == "throughput":
        total, _ = await run_one(["/usr/bin/head", "-c", sys.argv[2], "/dev/zero"], capture=True)
        report.update(jobs=1, delivered=1)
        report["mb_per_s"] = total / 1e6 / (time.monotonic() - start)
    report["wall_s"] = time.monotonic() - start
    print(json.dumps(report))

if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if os.environ.get("CORRAL_PY_WATCHER") == "pidfd":
        import warnings
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_child_watcher(asyncio.PidfdChildWatcher())
    asyncio.run(main())
