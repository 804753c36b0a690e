// A benchmark's view of a service's pauses: loaded into a service with NODE_OPTIONS="--require <this file>"
// (node refuses --trace-gc in NODE_OPTIONS). It appends one JSON line per pause to
// `$BENCH_PAUSES_DIR/<pid>.jsonl`:
//   {"at": <epoch ms when it ended>, "ms": <length>, "kind": "gc", "gc": "minor|major|incremental|weakcb"}
//   {"at": …, "ms": …, "kind": "stall"}   the event loop ran a timer this much later than asked
// Only pauses of at least BENCH_PAUSES_MIN_MS [4] are written. A benchmark reads the files when the
// services have stopped and puts each of its slow requests beside the pauses it overlapped.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { PerformanceObserver, constants, performance } = require('node:perf_hooks');

const dir = process.env.BENCH_PAUSES_DIR;
if (dir) {
  const minMs = Number(process.env.BENCH_PAUSES_MIN_MS ?? '4');
  const file = path.join(dir, `${process.pid}.jsonl`);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify({ kind: 'process', argv: process.argv.slice(1), at: Date.now() })}\n`);
  let lines = [];
  const flush = () => {
    if (lines.length === 0) return;
    try {
      fs.appendFileSync(file, lines.join(''));
    } catch {
      // the benchmark removed its directory: its report is written already, and a note must never stop a process
    }
    lines = [];
  };
  const write = (o) => {
    lines.push(`${JSON.stringify(o)}\n`);
    if (lines.length >= 200) flush();
  };
  const gcKinds = {
    [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
    [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
  };
  const epoch = performance.timeOrigin;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.duration >= minMs) write({ at: Math.round(epoch + e.startTime + e.duration), ms: +e.duration.toFixed(2), kind: 'gc', gc: gcKinds[e.detail?.kind] ?? String(e.detail?.kind) });
    }
  }).observe({ entryTypes: ['gc'] });

  const tickMs = 5;
  let expected = performance.now() + tickMs;
  setInterval(() => {
    const t = performance.now();
    const late = t - expected;
    if (late >= minMs) write({ at: Math.round(epoch + t), ms: +late.toFixed(2), kind: 'stall' });
    expected = t + tickMs;
  }, tickMs).unref();
  setInterval(flush, 1000).unref();
  process.on('exit', flush);
}
