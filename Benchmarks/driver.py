#!/usr/bin/env python3
"""Runs every benchmark workload on every program, side by side, and writes
docs/benchmarks.md. Every program is measured from outside the same way:

- wall time and the program's own report (one JSON line on stdout);
- runner CPU: utime + stime of the runner itself (not its children), read from
  /proc/<pid>/stat after waitid(WNOWAIT), before it is reaped;
- peak RSS (VmHWM), peak threads, peak open descriptors: sampled from /proc;
- medians of REPEATS runs; every figure also as a ratio to the C reference.

A program that fails or hangs gets its failure in the table, not dropped.
"""
import json, os, platform, signal, statistics, subprocess, sys, time

REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
LIMIT_S = float(os.environ.get("BENCH_LIMIT_S", "30"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def become_subreaper():
    """Orphans of a measured program (its jobs, once it has died) become
    this driver's children, so none outlives its run: they would hold its
    output pipes open and load the machine for the next program."""
    import ctypes
    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def kill_leftovers(keep):
    """SIGKILL every child of this driver but `keep`, and reap them; again
    until none is left, since a killed child's own children come here next."""
    while True:
        children = []
        for task in os.listdir("/proc/self/task"):
            try:
                children += [int(pid) for pid in open(f"/proc/self/task/{task}/children").read().split()]
            except OSError:
                pass
        children = [pid for pid in children if pid != keep]
        if not children:
            return
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def clear_reference_leaves(env):
    """The C reference's cgroup leaves left by a run of it that was killed
    (it removes each when its job ends): a leaf it finds already there
    fails that job's spawn, which once made every later run of it fail."""
    base = (env or {}).get("REF_CGROUP")
    if not base or not os.path.isdir(base):
        return
    for name in os.listdir(base):
        path = os.path.join(base, name)
        if os.path.isdir(path):
            try:
                os.rmdir(path)  # empty once its job is gone (kill_leftovers saw to that)
            except OSError:
                pass


def oldest_job_age(runner):
    """The age in seconds of the oldest live process in the runner's session
    but the runner itself (its jobs: none of these workloads' jobs calls
    setsid), from /proc/<pid>/stat's start time; None if there is none.
    Whether a deadline was enforced is a property of each job, not of how
    long the runner takes to start them all."""
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/uptime") as f:
        now = float(f.read().split()[0])
    oldest = None
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == runner:
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" or int(fields[3]) != runner:
            continue
        age = now - int(fields[19]) / ticks
        oldest = age if oldest is None else max(oldest, age)
    return oldest


def measure(command, env=None, parse_report=None, limit=None, deadline=None):
    """Runs one command; returns its report plus what /proc said of it.
    `parse_report`, if given, builds the report after the run (for programs
    that do not print one, like `corral batch`). A run still going after
    `limit` seconds is killed: a hang, or, for a deadline workload, a
    deadline that was not enforced."""
    limit = limit or LIMIT_S
    clear_reference_leaves(env)
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True, env=env)
    pid = process.pid
    peak = {"threads": 0, "rss_kib": 0, "fds": 0}
    last_fd_sample = 0.0
    last_age_check = 0.0
    status = None
    while True:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            info = None
        if info is not None and info.si_pid == pid:
            break
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("Threads:"):
                        peak["threads"] = max(peak["threads"], int(line.split()[1]))
                    elif line.startswith("VmHWM:"):
                        peak["rss_kib"] = max(peak["rss_kib"], int(line.split()[1]))
            now = time.monotonic()
            if now - last_fd_sample > 0.05:
                peak["fds"] = max(peak["fds"], len(os.listdir(f"/proc/{pid}/fd")))
                last_fd_sample = now
        except (FileNotFoundError, ProcessLookupError):
            pass
        if deadline and status is None and time.monotonic() - last_age_check > 1.0:
            last_age_check = time.monotonic()
            age = oldest_job_age(pid)
            if age is not None and age > deadline + JOB_GRACE_S:
                os.killpg(pid, signal.SIGKILL)
                status = f"deadline not enforced: a job alive {age:.0f} s after its start (deadline {deadline:g} s; killed)"
        if time.monotonic() - started > limit and status is None:
            os.killpg(pid, signal.SIGKILL)
            status = f"hung: killed after {limit:.0f} s"
        time.sleep(0.005)
    cpu = None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
            ticks = os.sysconf("SC_CLK_TCK")
            cpu = (int(fields[11]) + int(fields[12])) / ticks
    except (FileNotFoundError, IndexError):
        pass
    kill_leftovers(keep=pid)  # the jobs of a killed runner; also what a runner left behind
    out, err = process.communicate()
    wall = time.monotonic() - started
    try:
        os.killpg(pid, signal.SIGKILL)  # whatever it left behind
    except ProcessLookupError:
        pass
    report = None
    if parse_report is not None:
        report = parse_report(wall) if process.returncode in (0, 1) else None
    else:
        for line in out.decode(errors="replace").splitlines()[::-1]:
            if line.startswith("{"):
                report = json.loads(line)
                break
    # `corral batch` exits 1 when any job did not exit 0 (timed-out jobs, here).
    allowed = (0, 1) if parse_report is not None else (0,)
    if status is None and (process.returncode not in allowed or report is None):
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {process.returncode}"]
        status = f"failed: {tail[0][:120]}"
    if status is None and report.get("overshoot_ms", {}).get("p50", 0) > 10_000:
        status = (f"deadline not enforced: results {report['overshoot_ms']['p50'] / 1000:.0f} s late "
                  "(the child ignored the stop signal)")
    if status is None and report.get("delivered") != report.get("jobs"):
        status = f"delivered {report.get('delivered')} of {report.get('jobs')}"
    return {"status": status, "report": report or {}, "wall": wall, "cpu": cpu, **peak}


def batch_command(corral, args, scratch):
    """`corral batch` as a benchmark subject: the workload as a JSON Lines
    file, the results read back from its output file into the report schema
    (overshoot = a timed-out job's duration minus its deadline)."""
    kind = args[0]
    deadline = None
    if kind == "spawn":
        count, inflight = int(args[1]), int(args[2])
        spec = {"argv": ["/bin/true"]}
    elif kind == "deadline":
        count, deadline = int(args[1]), float(args[2])
        inflight = count
        spec = {"argv": ["/bin/sleep", "30"], "timeout": f"{args[2]}s"}
    elif kind == "stalldeadline":
        count, deadline, stall = int(args[1]), float(args[2]), float(args[3])
        inflight = count
        spec = {"argv": ["/bin/sleep", "30"], "timeout": f"{args[2]}s"}
    elif kind == "cpudeadline":
        busy, count, deadline = int(args[1]), int(args[2]), float(args[3])
        inflight = busy + count
        spec = {"argv": ["/bin/sleep", "30"], "timeout": f"{args[3]}s"}
    elif kind == "trickle":
        count = inflight = int(args[1])
        spec = {"argv": ["/bin/sleep", "1"]}
    elif kind == "throughput":
        count = inflight = 1
        spec = {"argv": ["/usr/bin/head", "-c", args[1], "/dev/zero"], "max_output": "64KiB"}
    else:
        return None, None
    jobs = os.path.join(scratch, "jobs.jsonl")
    results = os.path.join(scratch, "results.jsonl")
    with open(jobs, "w") as f:
        if kind == "cpudeadline":  # the spinners end 3 s after the sleeps' deadline
            for index in range(busy):
                f.write(json.dumps({"argv": ["/bin/sh", "-c", "while :; do :; done"], "id": f"spin{index}",
                                    "timeout": f"{deadline + 3:g}s"}) + "\n")
        for index in range(count):
            f.write(json.dumps({**spec, "id": str(index)}) + "\n")
    before = None
    if kind == "stalldeadline":
        # The results go to a FIFO whose reader takes nothing for `stall`
        # seconds, then reads everything into results.jsonl.
        fifo = os.path.join(scratch, "results.fifo")
        def before():
            import threading
            if not os.path.exists(fifo):
                os.mkfifo(fifo)
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # open before corral does: no ENXIO, no block
            def drain():
                time.sleep(stall)
                os.set_blocking(fd, True)
                give_up = time.monotonic() + 120
                received = False
                with open(results, "wb") as out:
                    while True:
                        chunk = os.read(fd, 1 << 16)
                        if not chunk:
                            # End of file before anything came: corral has not
                            # opened the FIFO yet (a FIFO without a writer reads
                            # as ended). Wait for it, bounded.
                            if received or time.monotonic() > give_up:
                                break
                            time.sleep(0.01)
                            continue
                        received = True
                        out.write(chunk)
                os.close(fd)
            thread = threading.Thread(target=drain, daemon=True)
            thread.start()
            return thread

    def parse(wall):
        lines = [json.loads(line) for line in open(results) if line.strip()]
        if kind == "cpudeadline":
            lines = [r for r in lines if not str(r.get("id", "")).startswith("spin")]
        report = {"jobs": count, "delivered": sum(1 for r in lines if r.get("outcome") in ("exited", "timed_out")),
                  "wall_s": wall}
        if deadline is not None:
            overs = sorted(r["duration_s"] * 1000 - deadline * 1000 for r in lines if r.get("outcome") == "timed_out")
            if overs:
                pick = lambda p: overs[int((len(overs) - 1) * p + 0.5)]
                report["overshoot_ms"] = {"p50": pick(0.5), "p99": pick(0.99), "max": overs[-1]}
        if kind == "throughput" and lines:
            first = lines[0]  # the head, the bytes dropped, the tail (docs/result.md)
            total = len(first.get("stdout", "")) + first.get("stdout_dropped", 0) + len(first.get("stdout_tail", ""))
            report["mb_per_s"] = total / 1e6 / wall
        return report
    output = os.path.join(scratch, "results.fifo") if kind == "stalldeadline" else results
    return [corral, "batch", jobs, "-j", str(inflight), "--output", output], parse, before


def median_run(command, env=None, limit=None, deadline=None):
    runs = []
    parse_report = None
    if command and command[0] == "@batch":
        import tempfile
        scratch = tempfile.mkdtemp(prefix="corral-bench-batch-")
        command, parse_report, before = batch_command(command[1], command[2:], scratch)
        if command is None:
            return None
    else:
        before = None
    for _ in range(REPEATS):
        reader = before() if before else None
        runs.append(measure(command, env, parse_report, limit, deadline))
        if reader is not None:
            reader.join(timeout=60)
        if runs[-1]["status"]:  # a failure or a hang is the answer; do not repeat it
            return {"status": runs[-1]["status"]}
    def med(get):
        values = [get(r) for r in runs if get(r) is not None]
        return statistics.median(values) if values else None
    return {
        "status": None,
        "wall": med(lambda r: r["report"].get("wall_s")),
        "cpu": med(lambda r: r["cpu"]),
        "rss_mb": med(lambda r: r["rss_kib"] / 1024),
        "threads": max(r["threads"] for r in runs),
        "fds": max(r["fds"] for r in runs),
        "p50": med(lambda r: r["report"].get("overshoot_ms", {}).get("p50")),
        "p99": med(lambda r: r["report"].get("overshoot_ms", {}).get("p99")),
        "max": med(lambda r: r["report"].get("overshoot_ms", {}).get("max")),
        "mbps": med(lambda r: r["report"].get("mb_per_s")),
        "jobs": runs[0]["report"].get("jobs"),
    }


# A job of a deadline workload still alive this many seconds past its own
# deadline (counted from its process's start) was not stopped: the run is
# killed and marked so. Starting 5,000 jobs can take 15 s or more on 2
# loaded cores, so the runner's total wall time says nothing about that.
JOB_GRACE_S = 8
# A deadline workload's program still running after this many seconds hangs.
DEADLINE_LIMIT_S = 120

CORRAL_ONLY = ["corral", "corral (process-group tier)", "corral batch"]

# Workloads whose rows compare with the same program's row of another
# workload (W6b: a stalled consumer against one that keeps up), not with the
# reference, which has no consumer.
COMPARE_WITH = {"W6b": "W6a"}

WORKLOADS = [
    # id, title, arguments, programs (None: all)
    ("W1a", "spawn 2,000 x /bin/true, 1 in flight", ["spawn", "2000", "1"], None),
    ("W1b", "spawn 2,000 x /bin/true, 64 in flight", ["spawn", "2000", "64"], None),
    ("W2a", "1,000 x sleep 30, 2 s deadline", ["deadline", "1000", "2"], None),
    ("W2b", "5,000 x sleep 30, 2 s deadline", ["deadline", "5000", "2"], None),
    ("W2c", "10,000 x sleep 30, 2 s deadline", ["deadline", "10000", "2"], ["corral"]),
    ("W6a", "1,000 x sleep 30, 2 s deadline, a consumer that keeps up", ["stalldeadline", "1000", "2", "0"], CORRAL_ONLY),
    ("W6b", "1,000 x sleep 30, 2 s deadline, a consumer that takes nothing for 10 s", ["stalldeadline", "1000", "2", "10"], CORRAL_ONLY),
    ("W7", "100 CPU-bound jobs + 1,000 x sleep 30, 2 s deadline", ["cpudeadline", "100", "1000", "2"],
     ["reference", "corral", "corral (process-group tier)", "corral batch"]),
    ("W3", "5,000 x sleep 1 at once", ["trickle", "5000"], None),
    ("W4", "one job writing 2 GiB to stdout", ["throughput", str(2 << 30)], None),
    ("W5", "2,000 x /bin/true one at a time, runner holding 2 GiB", ["bigheap", "2048", "2000"], None),
]


def fmt(value, digits=2, suffix=""):
    return "–" if value is None else f"{value:.{digits}f}{suffix}"


def ratio(value, reference, invert=False):
    if value is None or reference in (None, 0) or value == 0:
        return ""
    r = reference / value if invert else value / reference
    return f" ({r:.2f}x)"


def render(programs, results, machine, commands):
    lines = ["# Benchmarks", "",
             "Generated by `scripts/bench`; every figure is the median of "
             f"{REPEATS} runs, measured from outside (/proc and waitid) the same way for every program. "
             "Ratios are to the C reference (`Benchmarks/reference/ref.c`: posix_spawn + pidfd + epoll) "
             "in the same run; for rates higher is better (ratio = program / reference), for times, CPU, "
             "memory and overshoot lower is better (ratio = program / reference). "
             "W6b's ratios are to the same program's W6a row (a stalled consumer against one that keeps up).", "",
             "## Machine", "", "```", machine.strip(), "```", ""]
    for workload_id, title, args, only in WORKLOADS:
        lines += [f"## {workload_id}: {title}", "",
                  "| program | result | wall s | jobs/s or MB/s | overshoot p50 / p99 / max ms | runner CPU s | peak RSS MB | peak threads | peak fds |",
                  "|---|---|---|---|---|---|---|---|---|"]
        reference = results.get((workload_id, "reference"), {})
        for name in programs:
            if workload_id in COMPARE_WITH:
                reference = results.get((COMPARE_WITH[workload_id], name), {})
            if only and name not in only:
                continue
            if name in ONLY_ON and workload_id not in ONLY_ON[name]:
                continue
            r = results.get((workload_id, name))
            if r is None:
                continue
            if r["status"]:
                lines.append(f"| {name} | **{r['status']}** | | | | | | | |")
                continue
            if r["mbps"] is not None:
                rate = fmt(r["mbps"], 0) + ratio(r["mbps"], reference.get("mbps"))
            elif r["wall"]:
                rate = fmt(r["jobs"] / r["wall"], 0) + ratio(r["jobs"] / r["wall"], (reference.get("jobs") or 0) / reference["wall"] if reference.get("wall") else None)
            else:
                rate = "–"
            overshoot = " / ".join(fmt(r[k], 1) for k in ("p50", "p99", "max")) if r["p50"] is not None else "–"
            if r["p99"] is not None and reference.get("p99"):
                overshoot += ratio(r["p99"], reference["p99"])
            lines.append(f"| {name} | ok | {fmt(r['wall'])} | {rate} | {overshoot} | "
                         f"{fmt(r['cpu'])}{ratio(r['cpu'], reference.get('cpu'))} | {fmt(r['rss_mb'], 1)} | {r['threads']} | {r['fds']} |")
        lines.append("")
    analysis = os.path.join(ROOT, "Benchmarks", "analysis.md")
    if os.path.exists(analysis) and not os.environ.get("BENCH_ONLY"):  # it reads the full report
        with open(analysis) as f:
            lines += [f.read()]
    lines += ["## Commands", "", "```"] + commands + ["```", ""]
    return "\n".join(lines)


# Programs measured on some workloads only: the cgroup floor (the C reference
# with a cgroup leaf per job) is the line for Corral's cgroup tier where that
# tier's per-job cost shows.
ONLY_ON = {"reference (cgroup leaf per job)": ("W1a", "W1b", "W2b", "W3")}


def main():
    become_subreaper()
    programs = json.loads(sys.argv[1])          # name -> command prefix, or env + command (ordered)
    output = sys.argv[2]
    results = {}
    commands = []
    began = time.monotonic()
    # BENCH_ONLY=W6a,W6b,W7: a focused run of some workloads (its table has only those).
    chosen = [w for w in os.environ.get("BENCH_ONLY", "").split(",") if w]
    if chosen:
        WORKLOADS[:] = [w for w in WORKLOADS if w[0] in chosen]
    # BENCH_PROGRAMS=reference,corral: only the programs whose name starts
    # with one of these (a focused run of Corral against its references).
    wanted = [p for p in os.environ.get("BENCH_PROGRAMS", "").split(",") if p]
    if wanted:
        programs = {name: prefix for name, prefix in programs.items() if any(name.startswith(w) for w in wanted)}
    for workload_id, title, args, only in WORKLOADS:
        for name, prefix in programs.items():
            if only and name not in only:
                continue
            if name in ONLY_ON and workload_id not in ONLY_ON[name]:
                continue
            env = None
            if prefix and isinstance(prefix[0], dict):  # {"VAR": "value"} first: set for this program
                env = {**os.environ, **prefix[0]}
                shown = " ".join(f"{k}={v}" for k, v in prefix[0].items()) + " "
                prefix = prefix[1:]
            else:
                shown = ""
            command = prefix + args
            commands.append(f"{workload_id} {name}: {shown}{' '.join(command)}")
            print(f"  [{time.monotonic() - began:5.0f} s] {workload_id} {name} ...", file=sys.stderr, flush=True)
            deadline = {"deadline": lambda: float(args[2]), "stalldeadline": lambda: float(args[2]),
                        "cpudeadline": lambda: float(args[3])}.get(args[0], lambda: None)()
            limit = DEADLINE_LIMIT_S if deadline and workload_id != "W2c" else None
            if args[0] == "stalldeadline":
                limit = DEADLINE_LIMIT_S + float(args[3])
            if args[0] == "cpudeadline":
                # Spawning 1,000 jobs among 100 CPU-bound ones is slow (each
                # clone waits for its child's exec, which competes with
                # them): the bound is for a hang, not for that.
                limit = 180
            result = median_run(command, env, limit, deadline)
            if result is not None:
                results[(workload_id, name)] = result
    machine = subprocess.run(["sh", "-c", "uname -srm; nproc; grep 'model name' /proc/cpuinfo | head -1; "
                              "free -h | head -2; swift --version 2>&1 | head -1; gcc --version | head -1"],
                             capture_output=True, text=True).stdout
    text = render(list(programs), results, machine, commands)
    with open(output, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
