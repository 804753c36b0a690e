#!/usr/bin/env node
// What one write to a loopback TCP socket costs the writer, when a process of its own reads it and answers
// (a request and its reply, as between a service and NATS or PostgreSQL): the writer's CPU per round trip,
// user and system, from process.cpuUsage, and the wall time per round trip.
//
//   node bench/control-plane/loopback-write.mjs        (BENCH_ROUND_TRIPS [20000])
//
// Why it is here: V8's CPU profiles of the services under load put 38–49 % of their busy time inside the
// socket write calls ("Where the CPU goes under load"). A profile counts wall time between its samples, and
// on a 2-core machine a writer that wakes its reader is often descheduled inside the call until the reader
// has run. This measures what the call itself costs.
import { fork } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';

if (process.argv[2] === 'echo') {
  const srv = net.createServer((s) => {
    s.setNoDelay(true);
    s.on('data', (d) => s.write(d.subarray(0, 1)));
  });
  srv.listen(0, '127.0.0.1', () => process.send(srv.address().port));
} else {
  const n = Number(process.env.BENCH_ROUND_TRIPS ?? 20_000);
  const child = fork(new URL(import.meta.url).pathname, ['echo']);
  const port = await new Promise((r) => child.once('message', r));
  const c = net.connect(port, '127.0.0.1');
  c.setNoDelay(true);
  await new Promise((r) => c.once('connect', r));
  const payload = Buffer.alloc(200, 'x'); // about a NATS PUB of a step command, or a prepared statement's Bind/Execute
  for (let i = 0; i < 1000; i++) await new Promise((r) => (c.once('data', r), c.write(payload))); // warm-up
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await new Promise((r) => (c.once('data', r), c.write(payload)));
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const us = (x) => (x / n).toFixed(1);
  console.log(`flexmig loopback-write — ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), node ${process.version}`);
  console.log(`${n} round trips of ${payload.length} bytes to another process: ${((wall * 1000) / n).toFixed(1)} µs each (wall);`);
  console.log(`the writer's CPU per round trip (its write and its read of the reply): ${us(cpu.user + cpu.system)} µs, of which user ${us(cpu.user)} and system ${us(cpu.system)}`);
  c.destroy();
  child.kill();
}
