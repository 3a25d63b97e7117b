// bench: the soak's traffic (bench/soak.ts), run with plain node inside the client pod: a steady
// rate of new TCP connections to the service (connect, one line, its echo, close) and a few
// long-lived streams (one line every --interval ms on one connection, each reply awaited), with
// cumulative counts printed as one JSON line (a SoakTraffic) every --report seconds, so the soak
// reads the latest line and a 1-hour run prints a few hundred lines, not one per connection.
//
//   node soak-client.js --host H --port P [--rate 20] [--streams 4] [--interval 100] [--timeout 2000] [--report 5]

import { connect, type Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export interface SoakTraffic {
  /** ms since the client started */
  at: number;
  connections: {
    started: number;
    ok: number;
    failed: number;
    /** failures by error code or 'timeout' */
    errors: Record<string, number>;
    /** connect-to-echo times of the connections finished since the previous line, µs */
    windowP50Us: number;
    windowP99Us: number;
  };
  streams: {
    open: number;
    sent: number;
    received: number;
    /** a stream's socket failed (error or close); it is reopened after 1 s */
    broken: number;
    /** the longest wait for a reply (request to reply, or to now while unanswered), ever and since the previous line, ms */
    maxGapMs: number;
    windowMaxGapMs: number;
  };
}

const pct = (xs: number[], p: number) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]! : 0);

function main(): void {
  const { values } = parseArgs({
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      rate: { type: 'string', default: '20' },
      streams: { type: 'string', default: '4' },
      interval: { type: 'string', default: '100' },
      timeout: { type: 'string', default: '2000' },
      report: { type: 'string', default: '5' },
    },
  });
  const host = values.host!;
  const port = Number(values.port);
  const timeoutMs = Number(values.timeout);
  const t0 = Date.now();
  const s: SoakTraffic = {
    at: 0,
    connections: { started: 0, ok: 0, failed: 0, errors: {}, windowP50Us: 0, windowP99Us: 0 },
    streams: { open: 0, sent: 0, received: 0, broken: 0, maxGapMs: 0, windowMaxGapMs: 0 },
  };
  let window: number[] = [];

  const once = () => {
    s.connections.started++;
    const start = process.hrtime.bigint();
    const sock = connect({ host, port });
    let done = false;
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (error === undefined) {
        s.connections.ok++;
        window.push(Number(process.hrtime.bigint() - start) / 1000);
      } else {
        s.connections.failed++;
        s.connections.errors[error] = (s.connections.errors[error] ?? 0) + 1;
      }
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    sock.on('error', (e) => finish((e as NodeJS.ErrnoException).code ?? e.message));
    sock.on('connect', () => sock.write('soak\n'));
    sock.on('data', (d) => d.includes(10) && finish());
    sock.on('close', () => finish('closed before the echo'));
  };

  const noteGap = (ms: number) => {
    s.streams.maxGapMs = Math.max(s.streams.maxGapMs, ms);
    s.streams.windowMaxGapMs = Math.max(s.streams.windowMaxGapMs, ms);
  };
  const stream = () => {
    let sock: Socket | undefined;
    let waitingSince = 0;
    let buf = '';
    const open = () => {
      const c = connect({ host, port });
      sock = c;
      s.streams.open++;
      let failed = false;
      const fail = () => {
        if (failed) return;
        failed = true;
        s.streams.open--;
        s.streams.broken++;
        sock = undefined;
        waitingSince = 0;
        buf = '';
        c.destroy();
        setTimeout(open, 1000);
      };
      c.on('error', fail);
      c.on('close', fail);
      c.on('data', (d) => {
        buf += d.toString('utf8');
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          buf = buf.slice(nl + 1);
          s.streams.received++;
          if (waitingSince) noteGap(Date.now() - waitingSince);
          waitingSince = 0;
        }
      });
    };
    open();
    setInterval(() => {
      const now = Date.now();
      // a request in flight: no new one until it is answered, so the gap is the wait for it
      if (waitingSince) return noteGap(now - waitingSince);
      if (!sock || sock.connecting) return;
      s.streams.sent++;
      waitingSince = now;
      sock.write(`${s.streams.sent}\n`);
    }, Number(values.interval));
  };

  for (let i = 0; i < Number(values.streams); i++) stream();
  setInterval(once, 1000 / Number(values.rate));
  setInterval(
    () => {
      s.at = Date.now() - t0;
      s.connections.windowP50Us = Math.round(pct(window, 0.5));
      s.connections.windowP99Us = Math.round(pct(window, 0.99));
      process.stdout.write(JSON.stringify(s) + '\n');
      window = [];
      s.streams.windowMaxGapMs = 0;
    },
    Number(values.report) * 1000,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
