#!/usr/bin/env python3
"""The measuring half of scripts/bench-fleet (issue 14's fleet benchmarks).

scripts/bench-fleet starts and stops the processes (the PostgreSQL cluster,
`corral server`, the agents); this file makes the pgbench scripts, runs
pgbench and reads its per-transaction logs, talks to the server's API,
measures run fan-out and dead-agent detection, and writes the Markdown.
Every result is one JSON line appended to a results file, so a run that
fails part way still shows what it measured.

Subcommands (each prints what it measured on stderr):
  scripts DIR                   write the pgbench scripts into DIR
  pgbench RESULTS NAME URL CLIENTS SECONDS SCRIPT [--count SQL] [--check SQL] [-D K=V ...]
  wait-agents API COUNT SECONDS wait until COUNT agents are up
  create-runs API COUNT BODY    POST /v1/runs COUNT times; prints the ids
  fanout RESULTS API URL RUNS   runs on every agent, one after another
  dead RESULTS API TTL NAME=PID ...   kill -9 the agents, time until `down`
  markdown RESULTS FILE [K=V ...]     write the results page (again, from kept results: no K=V)
"""
import base64, json, math, os, random, signal, statistics, subprocess, sys, tempfile, time, urllib.error, urllib.request
import uuid

# The output benchmark's shape: chunks of about 4 KiB, as many per
# statement as the agent puts in one (it cuts statements at 64 KiB).
CHUNK = 4096
CHUNKS_PER_STATEMENT = 65536 // CHUNK
# The result object a finished task carries (a small job's, as
# `corral run --json` prints it).
RESULT = json.dumps({
    "id": "j1", "outcome": "exited", "exit_code": 0, "signal": None, "timed_out": False,
    "duration_s": 0.012, "started_at": "2026-12-02T07:00:00.000Z", "ended_at": "2026-12-02T07:00:00.012Z",
    "stdout": "deployed web release 2026.12.02-1 on this host\nrestarted 4 workers\n", "stderr": "",
    "stdout_bytes": 66, "stderr_bytes": 0, "stdout_dropped": 0, "stderr_dropped": 0,
    "leftovers": [], "limits": {"timeout_s": 60, "kill_grace_s": 5},
}, separators=(",", ": "))  # ": " keeps pgbench from reading ":name" as a variable


def say(text):
    print("   " + text, file=sys.stderr, flush=True)


def fail(text):
    print("bench-fleet: " + text, file=sys.stderr, flush=True)
    sys.exit(1)


def psql(url, sql):
    done = subprocess.run(["psql", url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        fail("psql failed (%s): %s" % (sql[:80], done.stderr.strip()))
    return done.stdout.strip()


def append(results, record):
    with open(results, "a") as f:
        f.write(json.dumps(record) + "\n")


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return None
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))  # nearest rank
    return ordered[k]


# MARK: pgbench scripts

def output_chunk(rng, n):
    """About 4 KiB of output as a job writes it: log lines, partly repetitive."""
    lines, size = [], 0
    while size < CHUNK:
        line = "2026-12-02T07:%02d:%02d.%03dZ web%03d worker[%d]: request id=%s status=%d bytes=%d took=%dms\n" % (
            n % 60, rng.randrange(60), rng.randrange(1000), rng.randrange(1000), rng.randrange(1, 65536),
            "%016x" % rng.getrandbits(64), rng.choice((200, 200, 200, 304, 404, 500)), rng.randrange(100000),
            rng.randrange(2000))
        lines.append(line)
        size += len(line)
    return "".join(lines).encode()[:CHUNK]


def write_scripts(directory):
    rng = random.Random(14)
    os.makedirs(directory, exist_ok=True)

    def write(name, text):
        with open(os.path.join(directory, name), "w") as f:
            f.write(text)

    write("floor.sql", "SELECT 1;\n")
    # The agent's statements, as FleetAgent.swift makes them, for a random agent.
    heartbeat = "SELECT run_id, attempt_id FROM fleet_heartbeat(:aid, :boot);\n"
    # An idle agent's claim brings one fresh attempt id per free slot (64 by default).
    slots = "ARRAY[%s]::uuid[]" % ",".join("'%s'" % uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(64))
    write("heartbeat.sql", "\\set aid random(:amin, :amax)\n" + heartbeat)
    write("idle-poll.sql", "\\set aid random(:amin, :amax)\n" + heartbeat +
          "SELECT run_id, attempt_id, job FROM fleet_claim(:aid, %s);\n" % slots)
    # One queued task claimed (a fresh attempt id) and finished, as two
    # autocommit statements; a claim that finds nothing finishes run 0 (stale).
    write("claim-finish.sql", "\\set aid random(:amin, :amax)\n"
          "SELECT coalesce(max(run_id), 0) AS run, coalesce(max(attempt_id::text), '%s') AS attempt, max(job) AS job\n"
          "  FROM fleet_claim(:aid, ARRAY[gen_random_uuid()]) \\gset\n"
          "SELECT fleet_finish(:run, :aid, :attempt::uuid, 'exited', 0::int, NULL::text, 0.012::float8, NULL::text, '%s'::text);\n"
          % (uuid.UUID(int=0), RESULT.replace("'", "''")))
    # One statement of 16 chunks of 4 KiB, base64 as the agent sends them,
    # keyed (run, agent, seq, the run's day) with ON CONFLICT DO NOTHING, as the agent sends them.
    chunks = [base64.b64encode(output_chunk(rng, n)).decode() for n in range(CHUNKS_PER_STATEMENT)]
    seqs = ",".join(":seq + %d" % i for i in range(CHUNKS_PER_STATEMENT))
    write("output.sql", "\\set aid random(:amin, :amax)\n\\set seq random(0, 100000000) * %d\n" % CHUNKS_PER_STATEMENT +
          "INSERT INTO task_output (day, run_id, agent_id, seq, stream, data)\n"
          "SELECT r.day, r.run_id, :aid, u.s, u.st, decode(u.d, 'base64')\n"
          "  FROM run r, unnest(ARRAY[%s]::int[], '{%s}'::text[],\n  '{%s}'::text[]) AS u(s, st, d)\n"
          " WHERE r.run_id = :run\n"
          "ON CONFLICT DO NOTHING;\n" % (seqs, ",".join(["stdout"] * CHUNKS_PER_STATEMENT), ",".join(chunks)))
    say("pgbench scripts in %s (output: %d chunks of %d bytes per statement)" % (directory, CHUNKS_PER_STATEMENT, CHUNK))


# MARK: pgbench

def run_pgbench(args):
    results, name, url, clients, seconds, script = args[:6]
    clients, seconds = int(clients), int(seconds)
    count_sql, check_sql, defines, rest = None, None, [], args[6:]
    while rest:
        if rest[0] == "--count":
            count_sql, rest = rest[1], rest[2:]
        elif rest[0] == "--check":
            check_sql, rest = rest[1], rest[2:]
        elif rest[0] == "-D":
            defines += ["-D", rest[1]]
            rest = rest[2:]
        else:
            fail("pgbench: unknown argument %s" % rest[0])
    before = int(psql(url, count_sql)) if count_sql else None
    logs = tempfile.mkdtemp(prefix="pgbench-")
    command = ["pgbench", "-n", "-M", "extended", "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(seconds),
               "-l", "--log-prefix", os.path.join(logs, "tx"), "-f", script] + defines + [url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    if done.returncode != 0:
        fail("pgbench %s failed (exit %d):\n%s%s" % (name, done.returncode, done.stdout[-2000:], done.stderr[-2000:]))
    after = int(psql(url, count_sql)) if count_sql else None
    tps = avg = failed = None
    for line in done.stdout.splitlines():
        if line.startswith("tps = "):
            tps = float(line.split()[2])
        elif line.startswith("latency average = "):
            avg = float(line.split()[3])
        elif line.startswith("number of failed transactions:"):
            failed = int(line.split(":")[1].split()[0])
    latencies, first, last = [], None, None
    for file in os.listdir(logs):
        with open(os.path.join(logs, file)) as f:
            for line in f:
                fields = line.split()
                # client_id transaction_no time script_no time_epoch time_us
                latencies.append(int(fields[2]) / 1000.0)
                at = int(fields[4]) + int(fields[5]) / 1e6
                first = at if first is None else min(first, at)
                last = at if last is None else max(last, at)
    for file in os.listdir(logs):
        os.unlink(os.path.join(logs, file))
    os.rmdir(logs)
    if tps is None or avg is None or not latencies:
        fail("pgbench %s: no figures in its output:\n%s" % (name, done.stdout[-2000:]))
    if failed:
        fail("pgbench %s: %d transactions failed" % (name, failed))
    record = {"kind": "pgbench", "name": name, "clients": clients, "seconds": seconds, "tps": tps,
              "transactions": len(latencies), "avg_ms": avg, "p50_ms": percentile(latencies, 50),
              "p99_ms": percentile(latencies, 99)}
    if count_sql:
        # Rows made per second of the transactions' own span (from pgbench's log).
        record["rows"] = after - before
        record["rows_per_s"] = (after - before) * tps / len(latencies)
    if check_sql:
        record["check"] = psql(url, check_sql)
    if count_sql and record["rows"] < 0.99 * len(latencies) and name == "claim-finish":
        say("WARNING: %d of %d claims found nothing: the queue ran dry (more BENCH_QUEUE_RUNS)" % (
            len(latencies) - record["rows"], len(latencies)))
    append(results, record)
    say("%-13s c=%d: %8.0f tx/s  avg %.3f ms  p99 %.3f ms%s" % (
        name, clients, tps, avg, record["p99_ms"],
        "  %.0f rows/s (%d rows)" % (record["rows_per_s"], record["rows"]) if count_sql else ""))


# MARK: the API

def api(base, method, path, body=None, timeout=60):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


# GET answers other than 200 seen while polling (the server answers 503
# when a database call of its fails): counted and shown on the page, not
# fatal unless they go on.
REFUSALS = []


def get(base, path):
    for _ in range(20):
        status, answer = api(base, "GET", path)
        if status == 200:
            return answer
        REFUSALS.append("GET %s: %d %s" % (path, status, json.dumps(answer)[:200]))
        say("GET %s answered %d (%s); again" % (path, status, answer.get("error", {}).get("code", answer)))
        time.sleep(0.5)
    fail("GET %s: %s" % (path, REFUSALS[-1]))


def agents(base):
    return {a["name"]: a for a in get(base, "/v1/agents")["agents"]}


def wait_agents(base, count, seconds):
    deadline, up, last = time.time() + seconds, 0, -1
    while time.time() < deadline:
        up = sum(1 for a in agents(base).values() if a["state"] == "up")
        if up != last:
            say("%d of %d agents up" % (up, count))
            last = up
        if up >= count:
            return
        time.sleep(0.5)
    fail("only %d of %d agents joined within %d s" % (up, count, seconds))


def create_run(base, body):
    status, answer = api(base, "POST", "/v1/runs", body)
    if status != 201:
        fail("POST /v1/runs: %d %s" % (status, answer))
    return answer["id"]


def create_runs(base, count, body):
    started = time.time()
    ids = [create_run(base, json.loads(body)) for _ in range(count)]
    say("%d runs created through POST /v1/runs in %.1f s" % (count, time.time() - started))
    print(" ".join(str(i) for i in ids))


def wait_run(base, run, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        view = get(base, "/v1/runs/%d" % run)
        if view.get("finished_at"):
            return view
        time.sleep(0.2)
    fail("run %d did not finish within %d s" % (run, seconds))


def fanout(results, base, url, runs):
    delays, spans = [], []
    for i in range(runs):
        run = create_run(base, {"name": "fan-out %d" % (i + 1), "target": {"all": True},
                                "job": {"shell": "true", "timeout": "30s"}, "max_errors": 0})
        view = wait_run(base, run, 120)
        counts = view.get("counts", {})
        if view.get("state") != "done" or set(counts) != {"exited"}:
            fail("fan-out run %d ended %s %s" % (run, view.get("state"), counts))
        rows = psql(url, "SELECT extract(epoch FROM t.claimed_at - r.created_at) FROM task t JOIN run r USING (run_id) "
                         "WHERE t.run_id = %d" % run).split()
        run_delays = [float(x) * 1000 for x in rows]
        delays += run_delays
        spans.append(max(run_delays))
        say("run %d: %d tasks, every one claimed %.0f ms after its creation (median task %.0f ms)" % (
            run, len(run_delays), max(run_delays), statistics.median(run_delays)))
        time.sleep(random.uniform(0.5, 1.5))  # the next run lands at another phase of the agents' polls
    append(results, {"kind": "fanout", "runs": runs, "tasks": len(delays), "p50_ms": percentile(delays, 50),
                     "p99_ms": percentile(delays, 99), "max_ms": max(delays),
                     "all_claimed_median_ms": statistics.median(spans), "all_claimed_max_ms": max(spans),
                     "refusals": REFUSALS})


def dead(results, base, ttl, victims):
    targets = dict(v.split("=") for v in victims)
    killed = {}
    for name, pid in targets.items():
        os.kill(int(pid), signal.SIGKILL)
        killed[name] = time.time()
    suspect, down = {}, {}
    deadline = time.time() + 3 * ttl + 30
    while len(down) < len(targets) and time.time() < deadline:
        seen = agents(base)
        now = time.time()
        for name in targets:
            state = seen.get(name, {}).get("state")
            if state in ("suspect", "down") and name not in suspect:
                suspect[name] = now - killed[name]
            if state == "down" and name not in down:
                down[name] = now - killed[name]
                say("%s: down %.1f s after kill -9 (suspect after %.1f s)" % (name, down[name], suspect[name]))
        time.sleep(0.05)
    if len(down) < len(targets):
        fail("not seen down within %.0f s: %s" % (3 * ttl + 30, sorted(set(targets) - set(down))))
    append(results, {"kind": "dead", "ttl_s": ttl, "agents": len(targets), "down_s": sorted(down.values()),
                     "suspect_s": sorted(suspect.values()), "refusals": REFUSALS})


# MARK: the page

def markdown(results, path, facts):
    """Writes the page; the facts given are kept in RESULTS, so the page can
    be written again from a kept results file (BENCH_RESULTS) alone."""
    records = [json.loads(line) for line in open(results)]
    saved = next((r["facts"] for r in records if r["kind"] == "facts"), {})
    if facts:
        append(results, {"kind": "facts", "facts": facts})
    facts = facts or saved
    if not facts:
        fail("no facts given and none in %s" % results)
    facts["sim_agents"] = "{:,}".format(int(facts["sim_agents"]))
    bench = {(r["name"], r["clients"]): r for r in records if r["kind"] == "pgbench"}
    floor = bench.get(("floor", 1))
    if not floor:
        fail("no floor measured")
    floor_ms = floor["avg_ms"]
    fan = next((r for r in records if r["kind"] == "fanout"), None)
    dead_record = next((r for r in records if r["kind"] == "dead"), None)

    def ms(value):
        return "–" if value is None else ("%.2f" % value if value < 10 else "%.0f" % value)

    rows = []
    labels = {
        "floor": ("`SELECT 1` (the floor: one round trip)", "round trips/s", None),
        "heartbeat": ("heartbeat: `fleet_heartbeat`", "heartbeats/s", None),
        "idle-poll": ("idle poll: heartbeat + a claim that finds nothing (64 attempt ids; two statements)", "polls/s", None),
        "claim-finish": ("claim one queued task + `fleet_finish` (two statements)", "claims/s", "rows"),
        "output": ("output: %d chunks of 4 KiB per `INSERT`" % CHUNKS_PER_STATEMENT, "chunk rows/s", "rows"),
    }
    for name in ("floor", "heartbeat", "idle-poll", "claim-finish", "output"):
        for clients in (1, 8):
            r = bench.get((name, clients))
            if not r:
                continue
            label, unit, counted = labels[name]
            rate = r["rows_per_s"] if counted else r["tps"]
            note = ""
            if name == "claim-finish":
                misses = r["transactions"] - r["rows"]
                note = " (%d of %d found nothing)" % (misses, r["transactions"]) if misses > 0 else ""
            rows.append("| %s | %d | **%s** %s%s | %s / %s | %.1f× |" % (
                label, clients, "{:,.0f}".format(rate), unit, note, ms(r["avg_ms"]), ms(r["p99_ms"]),
                r["avg_ms"] / floor_ms))

    hb8 = bench.get(("heartbeat", 8))
    poll8 = bench.get(("idle-poll", 8))
    claim8 = bench.get(("claim-finish", 8))
    lines = [
        "# Fleet: what one PostgreSQL holds",
        "",
        "Generated by `scripts/bench-fleet` (`Benchmarks/fleet_bench.py`) on %s, issue 14's benchmarks." % facts["date"],
        "Binary: `%s` (%s). PostgreSQL: %s, a private cluster from `scripts/pg-cluster` "
        "(`fsync=off`: commits are written but never wait for the disk)." % (
            facts["binary"], facts["build"], facts["postgres"]),
        "",
        "```",
        "%s" % facts["uname"],
        "nproc %s, memory %s" % (facts["nproc"], facts["memory"]),
        "load before: %s" % facts["load_before"],
        "load after:  %s (this run's own %s agents had just stopped)" % (facts["load_after"], facts["real_agents"]),
        "```",
        "",
    ]
    if facts.get("shared"):
        lines += ["**The machine was shared** while this ran (load average above its %s cores before or after): "
                  "other builds and tests took CPU from PostgreSQL, pgbench and the agents, so these figures are "
                  "low bounds." % facts["nproc"], ""]
    lines += [
        "The floor is one PostgreSQL round trip (`SELECT 1`, one client, pgbench): **%.3f ms** "
        "(%s/s). Every statement below is the agent's own (`Sources/CorralFleet/FleetAgent.swift`, the functions of "
        "`Schema.swift`), sent by pgbench (`-M extended`, as postgres-nio sends them) for a random one of %s simulated "
        "agents; × floor is the mean latency over the floor's." % (floor_ms, "{:,.0f}".format(floor["tps"]), facts["sim_agents"]),
        "",
        "| %s simulated agents | clients | rate | latency avg / p99 ms | × floor |" % facts["sim_agents"],
        "|---|---|---|---|---|",
    ] + rows + [""]
    if fan or dead_record:
        lines += [
            "With %s real agents (`corral agent --server-db … --fleet-poll %s --fleet-idle-poll %s`, each its own "
            "process with its own journal, all on this machine) and one `corral server --agent-ttl %s`:" % (
                facts["real_agents"], facts["poll"], facts["idle_poll"], facts["ttl"]),
            "",
            "| %s real agents | figure | bound |" % facts["real_agents"],
            "|---|---|---|",
        ]
        if fan:
            lines.append("| run fan-out: created → each task claimed (%d runs × %s hosts, job `true`) | "
                         "p50 **%s ms**, p99 **%s ms** | the idle poll, %s ± 20 %% |" % (
                             fan["runs"], facts["real_agents"], ms(fan["p50_ms"]), ms(fan["p99_ms"]), facts["idle_poll"]))
            lines.append("| run fan-out: created → every task claimed (per run) | median **%s ms**, worst **%s ms** | "
                         "the idle poll + 20 %% |" % (ms(fan["all_claimed_median_ms"]), ms(fan["all_claimed_max_ms"])))
        if dead_record:
            d = dead_record
            lines.append("| dead agent: `kill -9` → `GET /v1/agents` says `down` (agents: %d) | %s s | TTL %s s + a "
                         "reaper pass (every TTL/4) |" % (
                             d["agents"], ", ".join("%.1f" % x for x in d["down_s"]), "%g" % d["ttl_s"]))
            lines.append("| dead agent: `kill -9` → `suspect` | %s s | TTL/2 + a reaper pass |" %
                         ", ".join("%.1f" % x for x in d["suspect_s"]))
        bound_ms = 1200 * float(facts["idle_poll"].rstrip("s"))
        if fan and fan["all_claimed_max_ms"] > bound_ms:
            lines += ["", "Fan-out past the poll bound (%.0f ms): the claim itself is a few milliseconds (above), so the "
                      "rest is the %s agent processes waiting for the CPU they share with the server, PostgreSQL "
                      "and whatever else ran on these %s cores: on their own machines each agent polls on time." % (
                          bound_ms, facts["real_agents"], facts["nproc"])]
        refusals = (fan or {}).get("refusals", []) + (dead_record or {}).get("refusals", [])
        if refusals:
            lines += ["", "While it was polled, the server answered %d time(s) with an error, polled again: `%s`%s." % (
                len(refusals), refusals[0].replace("`", "'"), " (and %d more)" % (len(refusals) - 1) if len(refusals) > 1 else "")]
        lines.append("")
    if hb8 and claim8 and poll8:
        lines += [
            "## What this says about sizing",
            "",
            "An idle agent polls about every 5 s (the default `--fleet-idle-poll`, backing off from 1 s); each poll is "
            "a heartbeat and a claim that finds nothing: %s polls/s with 8 clients hold about **%s idle agents** at "
            "the default, or %s polling every second (a busy agent's `--fleet-poll`, before its output and "
            "outcomes). Each task costs one claim and one finish: **%s claims/s** with 8 clients (%s with one) is the "
            "rate at which one run's tasks can start and end, whatever the number of agents." % (
                "{:,.0f}".format(poll8["tps"]), "{:,.0f}".format(poll8["tps"] * 5), "{:,.0f}".format(poll8["tps"]),
                "{:,.0f}".format(claim8["rows_per_s"]), "{:,.0f}".format(bench[("claim-finish", 1)]["rows_per_s"])),
            "",
            "Why claims scale little with clients: every agent claims its oldest queued task first, so all clients "
            "claim and finish tasks of the same %s-host run, and a claim and a finish each hold that run's row lock: "
            "one run's transitions are serial. Each costs a few rows whatever the run's size (the counts are kept in "
            "`run_tally` by the transitions themselves; the window looks only at the next due task). These are one database's "
            "limits on this machine with pgbench on the same cores; 8 client connections stand for the fleet's, and "
            "a fleet's many mostly idle connections cost memory and snapshot work that 8 do not show (see the sizing "
            "in `docs/fleet.md`)." % facts["sim_agents"],
            "",
        ]
    lines += [
        "## Method",
        "",
        "- One run of `scripts/bench-fleet` (about %s): a throwaway cluster, `corral server` (it creates the "
        "schema), %s agent rows inserted as `register` inserts them. Each pgbench figure is %s s of one script, "
        "with 1 and 8 clients (`-j 2`), latencies from pgbench's per-transaction log." % (
            facts["elapsed"], facts["sim_agents"], facts["seconds"]),
        "- Heartbeats and idle polls: every simulated agent has one running task (a run on all, claimed), as a "
        "busy fleet's agents do. Claims: %s runs on all %s agents created through `POST /v1/runs` first (all queued: "
        "no window), then each transaction claims one task of a random agent under a fresh attempt id and finishes "
        "it `exited` with a %d-byte result (`fleet_finish` settles the run under its row lock); claims/s counts the "
        "tasks that ended. An agent with several queued tasks claims them in one statement: one per statement is "
        "the worst case." % (facts["queue_runs"], facts["sim_agents"], len(RESULT)),
        "- Output: `INSERT … SELECT … FROM unnest(seqs, streams, base64 chunks) ON CONFLICT DO NOTHING` as the agent "
        "ships, %d chunks of 4,096 bytes of log-like text (TOAST compresses it) per statement, the agent's 64 KiB "
        "cut; rows/s counts the rows in `task_output`." % CHUNKS_PER_STATEMENT,
        "- Fan-out: runs on all real agents one after another (each waits for the previous to end), from the "
        "run's `created_at` to each task's `claimed_at`, both the database's clock. Dead agent: %s agents "
        "`kill -9`ed at once, `GET /v1/agents` polled every 50 ms (an agent is `down` at the first reaper pass after "
        "its last heartbeat + the TTL)." % (dead_record["agents"] if dead_record else "–"),
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    say("wrote %s" % path)


def main():
    # Stopped by scripts/bench-fleet's cleanup: exit through Python, so that
    # subprocess.run stops the pgbench it runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if len(sys.argv) < 2:
        fail(__doc__)
    command, args = sys.argv[1], sys.argv[2:]
    if command == "scripts":
        write_scripts(args[0])
    elif command == "pgbench":
        run_pgbench(args)
    elif command == "wait-agents":
        wait_agents(args[0].rstrip("/"), int(args[1]), float(args[2]))
    elif command == "create-runs":
        create_runs(args[0].rstrip("/"), int(args[1]), args[2])
    elif command == "fanout":
        fanout(args[0], args[1].rstrip("/"), args[2], int(args[3]))
    elif command == "dead":
        dead(args[0], args[1].rstrip("/"), float(args[2]), args[3:])
    elif command == "markdown":
        markdown(args[0], args[1], dict(a.split("=", 1) for a in args[2:]))  # no K=V: the facts kept in RESULTS
    else:
        fail("unknown subcommand %s\n%s" % (command, __doc__))


if __name__ == "__main__":
    main()
