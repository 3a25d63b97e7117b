// The service reconciler of a real `weir daemon` across restarts and overflow: a Service
// deleted while weir was down is gone right after the next start (not at the resync, 60 s
// later); /healthz answers while a restart adopts 200,000 pinned backends (/readyz 503
// meanwhile), the metrics listener being open before the adoption; 3,000 services into a
// 1,024-entry weir_frontend4: one log line naming those that did not fit, a metric, the ones
// that fit serve, and /healthz answers throughout the sync.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BpfMap, codecFor, typedMap } from '../../src/bpf/index.js';
import { Reconciler } from '../../src/dataplane/reconcile.js';
import { memoryLogger } from '../../src/log.js';
import { runCleanups } from '../lib/cleanup.js';
import { bulkFrontend } from '../lib/frontend-fixtures.js';
import { pollHttp, type Answer } from '../lib/http-poller.js';
import { Lab, type LabNode, type Pod } from '../lib/lab.js';
import { endpointSlice, parseLogfmt, service, WeirNode, type LogLine, type PortSpec } from '../lib/weir-node.js';

const KEEP = '198.19.0.70';
const GONE = '198.19.0.71';
const PORTS: PortSpec[] = [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' }];
const METRICS = '127.0.0.1:9745';
/** frontends (10 backends each) written into the pins while weir is down */
const PINNED = 20_000;
const OVERFLOW = 3_000;
const FRONTEND_MAP = 1024;

describe('reconciler across restarts and overflow (weir daemon, real maps)', () => {
  let lab: Lab;
  let node: LabNode;
  let be: Pod;
  let client: Pod;
  let weir: WeirNode;

  const svc = (name: string, ip: string) => [
    service({ name, clusterIP: ip, ports: PORTS }),
    endpointSlice({ name: `${name}-1`, service: name, ports: PORTS, endpoints: [{ ip: be.ip, node: node.name }] }),
  ];
  const frontendMap = () => typedMap(BpfMap.openPinned(`${weir.pinDir}/weir_frontend4`), codecFor('weir_frontend4_key'), codecFor('weir_frontend4'));
  const addresses = (): Set<string> => {
    const m = frontendMap();
    try {
      return new Set([...m.entries()].map(([k]) => k.address));
    } finally {
      m.map.close();
    }
  };
  const tsOf = (l: LogLine) => Date.parse(l.ts!);
  const slowest = (as: Answer[]) => Math.max(0, ...as.map((a) => a.end - a.start));

  before(async () => {
    lab = await Lab.create({ name: 'restart-reconcile' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    be = await lab.pod(node, 'be-a');
    client = await lab.pod(node, 'client');
    await be.ns.echoServer({ name: 'be-a', port: 8080 });
    weir = await WeirNode.create(lab, node, { connectTimeLb: 'off', metricsAddress: METRICS });
    weir.writeManifest('keep.yaml', svc('keep', KEEP));
    weir.writeManifest('gone.yaml', svc('gone', GONE));
    await weir.start(60_000);
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  test('a Service deleted while weir was down is gone right after the start: its frontend left the maps, its ClusterIP no longer answers', async () => {
    for (const ip of [KEEP, GONE]) assert.equal((await weir.spread(client.ns, ip, 80, { count: 5 })).failures, 0, `${ip} answers before`);
    await weir.terminate();
    weir.removeManifest('gone.yaml');
    const ready = await weir.start(60_000);
    const present = addresses();
    assert.ok(present.has(KEEP));
    assert.ok(!present.has(GONE), `the deleted Service's frontend is gone at ready (${ready.ms} ms after start)`);
    const start = weir.events('sync').find((l) => l.reason === 'start')!;
    assert.ok(Number(start.writes) >= 2, `the start sync deleted the frontend and its slot: ${JSON.stringify(start)}`);
    assert.equal(weir.events('resync').length, 0, 'no resync ran: the start sync did it');
    const gone = await weir.spread(client.ns, GONE, 80, { count: 3, concurrency: 3 });
    assert.equal(gone.failures, 3, `the deleted ClusterIP no longer answers: ${JSON.stringify(gone.servers)}`);
    assert.equal((await weir.spread(client.ns, KEEP, 80, { count: 5 })).failures, 0, 'the other one still does');
  });

  test(`a restart with ${PINNED.toLocaleString('en')} frontends pinned: /healthz answers and /readyz says 503 while they are adopted`, async () => {
    await weir.terminate();
    // what a previous daemon could have left: written through the reconciler into the pins
    const pinned = {
      frontends: frontendMap(),
      backends: typedMap(BpfMap.openPinned(`${weir.pinDir}/weir_backend4`), codecFor('weir_backend4_key'), codecFor('weir_backend4')),
    };
    try {
      const r = new Reconciler(pinned, memoryLogger());
      r.adopt();
      r.update(
        Array.from({ length: PINNED }, (_, i) => bulkFrontend(40_000 + i, 10)),
        [],
      );
      assert.equal(r.sync().errors, 0);
    } finally {
      pinned.frontends.map.close();
      pinned.backends.map.close();
    }
    const poller = pollHttp(node.ns, `http://${METRICS}`, ['/healthz', '/readyz']);
    let answers: Answer[];
    // the adoption's lines, caught as they come: the start sync's clean-up then logs one line
    // per removed endpoint (200,000), more than the kept output holds
    const seen = new Map<string, LogLine>();
    const watch = setInterval(() => {
      if (seen.size === 2) return;
      for (const text of weir.runLines()) {
        if (!/event=adopt/.test(text)) continue;
        // the kept output is a tail: its first line may be cut (then it is not one of these)
        let l: LogLine | undefined;
        try {
          l = parseLogfmt(text);
        } catch {
          continue;
        }
        if (l && (l.event === 'adopting' || l.event === 'adopt') && !seen.has(l.event)) seen.set(l.event, l);
      }
    }, 10);
    try {
      await weir.start(120_000);
    } finally {
      clearInterval(watch);
      answers = await poller.stop();
    }
    const adopting = tsOf(seen.get('adopting')!);
    const adopt = seen.get('adopt')!;
    console.log(`# adopt: ${JSON.stringify(adopt)}; ready: ${JSON.stringify(weir.events('ready')[0])}`);
    assert.ok(Number(adopt.frontends) > PINNED, `every pinned frontend adopted: ${adopt.frontends}`);
    // answered between the daemon's `adopting` and `adopt` lines: the listener was open, the adoption yielded
    const during = answers.filter((a) => a.start >= adopting && a.end <= tsOf(adopt));
    const listening = Math.min(...answers.filter((a) => a.status !== 0).map((a) => a.start));
    console.log(
      `# answers during the adoption (${adopt.ms} ms): ${during.map((a) => `${a.path}=${a.status}`).join(' ')}; slowest /healthz after listening: ${slowest(answers.filter((a) => a.path === '/healthz' && a.start >= listening))} ms`,
    );
    assert.ok(
      during.some((a) => a.path === '/healthz' && a.status === 200),
      'a /healthz answer (200) arrived while the adoption ran',
    );
    assert.ok(!during.some((a) => a.path === '/readyz' && a.status !== 503), '/readyz is 503 meanwhile');
    assert.deepEqual(
      answers.filter((a) => a.start > listening && a.status === 0),
      [],
      'every request after the listener opened was answered',
    );
    assert.deepEqual(
      [...addresses()].filter((a) => a !== KEEP && a !== GONE),
      [],
      'the start sync deleted what no Service has',
    );
  });

  test(`${OVERFLOW.toLocaleString('en')} services into a ${FRONTEND_MAP}-entry weir_frontend4: one line names those that did not fit, a metric counts them, the others serve, /healthz answers`, async () => {
    await weir.terminate();
    weir.configure({ extraArgs: ['--frontend-map-size', String(FRONTEND_MAP)] });
    await weir.start(60_000);
    const ip = (i: number) => `198.19.${16 + (i >> 8)}.${i & 255}`;
    const poller = pollHttp(node.ns, `http://${METRICS}`, ['/healthz']);
    let answers: Answer[];
    const mark = weir.mark();
    let written = 0;
    try {
      // the poller is up and answered before the change
      while (poller.answers().filter((a) => a.status === 200).length < 3) await new Promise((r) => setTimeout(r, 20));
      written = Date.now();
      weir.writeManifest('many.yaml', Array.from({ length: OVERFLOW }, (_, i) => svc(`many-${i}`, ip(i))).flat());
      await weir.waitFor('services not programmed', {}, 60_000, mark);
      await weir.waitFor('sync', { reason: 'change' }, 60_000, mark);
    } finally {
      answers = (await poller.stop()).filter((a) => a.start >= written);
    }
    const fit = FRONTEND_MAP - 1; // KEEP holds one entry
    const lines = weir.events('services not programmed').slice(0);
    assert.equal(lines.length, 1, 'one line for the sync, not one per entry');
    assert.equal(Number(lines[0]!.services), OVERFLOW - fit);
    assert.match(lines[0]!.maps!, /weir_frontend4:map_full/);
    const sync = weir.events('sync').filter((l) => l.reason === 'change');
    console.log(`# overflow sync: ${JSON.stringify(sync.at(-1))}; slowest of ${answers.length} /healthz answers: ${slowest(answers)} ms`);
    const metrics = (await weir.http('/metrics')).body;
    assert.equal(Number(/^weir_services_unprogrammed\{reason="map_full"\} (\d+)/m.exec(metrics)?.[1]), OVERFLOW - fit);
    assert.deepEqual(
      answers.filter((a) => a.status !== 200),
      [],
      'every /healthz during the sync was answered',
    );
    const present = addresses();
    assert.equal(present.size, FRONTEND_MAP);
    const programmed = Array.from({ length: OVERFLOW }, (_, i) => ip(i)).find((a) => present.has(a))!;
    assert.equal((await weir.spread(client.ns, programmed, 80, { count: 5 })).failures, 0, `a service that fit (${programmed}) serves`);
    assert.equal((await weir.spread(client.ns, KEEP, 80, { count: 5 })).failures, 0, 'the one from before still serves');
  });
});
