// Node's child_process through its ordinary API (spawn, kill), with the same
// workloads and report as Benchmarks/reference/ref.c.
'use strict';
const { spawn } = require('child_process');

function runOne(argv, deadline, capture) {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    const child = spawn(argv[0], argv.slice(1), {
      stdio: ['ignore', capture ? 'pipe' : 'ignore', 'ignore'], detached: true,
    });
    let total = 0;
    let timer = null;
    let over = null;
    if (capture) child.stdout.on('data', (chunk) => { total += chunk.length; });
    if (deadline) {
      timer = setTimeout(() => {
        over = Number(process.hrtime.bigint() - start) / 1e6 - deadline * 1000;
        try { process.kill(-child.pid, 'SIGKILL'); } catch (e) { child.kill('SIGKILL'); }
      }, deadline * 1000);
    }
    child.on('error', () => resolve({ error: true }));
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      if (over !== null) over = Number(process.hrtime.bigint() - start) / 1e6 - deadline * 1000;
      resolve({ code, over, total });
    });
  });
}

async function main() {
  const mode = process.argv[2];
  const report = { jobs: 0, delivered: 0, errors: 0 };
  let start = Date.now();
  if (mode === 'spawn' || mode === 'bigheap') {
    let n; let inflight;
    if (mode === 'bigheap') {
      const heap = Buffer.alloc(Number(process.argv[3]) * 1024 * 1024, 1);
      globalThis.heap = heap;
      n = Number(process.argv[4]); inflight = 1; start = Date.now();
    } else { n = Number(process.argv[3]); inflight = Number(process.argv[4]); }
    let next = 0; let errors = 0;
    const worker = async () => { while (next < n) { next++; const r = await runOne(['/bin/true']); if (r.error || r.code !== 0) errors++; } };
    await Promise.all(Array.from({ length: inflight }, worker));
    Object.assign(report, { jobs: n, delivered: n, errors });
  } else if (mode === 'deadline' || mode === 'trickle') {
    const n = Number(process.argv[3]);
    const deadline = mode === 'deadline' ? Number(process.argv[4]) : null;
    const results = await Promise.all(Array.from({ length: n }, () => runOne(['/bin/sleep', deadline ? '30' : '1'], deadline)));
    const errors = results.filter((r) => r.error).length;
    Object.assign(report, { jobs: n, delivered: n - errors, errors });
    const overs = results.filter((r) => r.over !== null && r.over !== undefined).map((r) => r.over).sort((a, b) => a - b);
    if (overs.length) {
      const pick = (p) => overs[Math.round((overs.length - 1) * p)];
      report.overshoot_ms = { p50: pick(0.5), p99: pick(0.99), max: overs[overs.length - 1] };
    }
  } else if (mode === 'throughput') {
    const r = await runOne(['/usr/bin/head', '-c', process.argv[3], '/dev/zero'], null, true);
    Object.assign(report, { jobs: 1, delivered: 1 });
    report.mb_per_s = r.total / 1e6 / ((Date.now() - start) / 1000);
  }
  report.wall_s = (Date.now() - start) / 1000;
  console.log(JSON.stringify(report));
}
main();
