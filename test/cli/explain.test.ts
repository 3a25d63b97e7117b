// `weir explain` against the service fixture table (test/fixtures/service-cases.ts), the same
// table test/bpf/service-cases.test.ts runs through the real programs. Every step of every
// case: explain is asked first, on the live maps the programs use, and must give the step's
// TC verdict, counter reason and rewrite (every backend it offers allowed by the table, the
// table's set of backends exactly); then the real program runs and its output must be one of
// explain's outcomes. Explain writes nothing (maps byte-for-byte the same), its reasons add
// up to the case's counter totals, and each query can be written as `weir explain` options.
// A few steps go through bin/weir itself. The cases explain cannot model are listed in the
// table with a reason; this file pins that list.

import assert from 'node:assert/strict';
import { mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { attachCgroup, BpfObject, codecFor, typedMap } from '../../src/bpf/index.js';
import { MAGLEV_DEFAULT_TABLE_SIZE } from '../../src/dataplane/maglev.js';
import { maglevFlowHash } from '../../src/dataplane/maglev-hash.js';
import { onCleanup } from '../lib/cleanup.js';
import { findCgroup2Mount } from '../lib/lab.js';
import { parseQuery, queryArgs } from '../../src/cli/explain.js';
import { explain, type ExplainQuery, type Explanation, type Rewrite } from '../../src/dataplane/explain.js';
import { binWeir } from '../lib/paths.js';
import { runSync } from '../lib/proc.js';
import { runCase } from '../fixtures/run-service-case.js';
import { resolve, tcp, type Expect, type FixturePacket, type Hook, type Step, type Tuple } from '../fixtures/service-case.js';
import { explainExclusions, serviceCases, serviceCases6 } from '../fixtures/service-cases.js';
import { addService, loadServiceDataplane, OBJ_DIR, type ServiceDataplane } from '../bpf/service-fixture.js';
import { TUNNEL_ENDPOINT, TUNNEL_POD_CIDR } from '../../src/dataplane/node-maps.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP } from '../lib/packet.js';

let dp: ServiceDataplane;
/** detaches the program whose .rodata bin/weir explain reads the Maglev table size from */
let detachSizeSource: (() => Promise<void>) | undefined;
before(() => {
  dp = loadServiceDataplane();
  detachSizeSource = attachSizeSource(MAGLEV_DEFAULT_TABLE_SIZE);
});
after(async () => {
  await detachSizeSource?.();
  await dp?.close();
});

/**
 * bin/weir explain takes the Maglev table size from the .rodata of the programs on the pinned
 * links (<pin dir>/links); the fixture runs its programs unattached, so a sock_lb.o loaded with
 * maglev_table_size `m` is attached to a child cgroup of its own and its link pinned there.
 */
function attachSizeSource(m: number): () => Promise<void> {
  const sockLb = BpfObject.load(join(OBJ_DIR, 'sock_lb.o'), { pinDir: dp.bpffs.path, consts: { maglev_table_size: m } });
  const cgroup = join(findCgroup2Mount()!, `weir-explain-test-${process.pid}-${m}`);
  mkdirSync(cgroup);
  const removeCgroup = onCleanup(`remove cgroup ${cgroup}`, () => rmdirSync(cgroup));
  const link = attachCgroup(sockLb.program('weir_sock_connect4'), cgroup);
  mkdirSync(join(dp.bpffs.path, 'links'), { recursive: true });
  link.pin(join(dp.bpffs.path, 'links', `sock_connect4_${m}`));
  return async () => {
    link.unpin();
    link.detach();
    link.close();
    sockLb.close();
    await removeCgroup();
  };
}

const FIELD = { src: 'saddr', dst: 'daddr', sport: 'sport', dport: 'dport' } as const;
const asRewrite = (t: Tuple): Rewrite => ({ saddr: t.src, daddr: t.dst, sport: t.sport, dport: t.dport });

/** The question `weir explain` is asked about a fixture packet. */
function queryOf(hook: Hook, pkt: FixturePacket): ExplainQuery {
  const t = pkt.tuple;
  const q: ExplainQuery = { src: t.src, dst: t.dst, dport: t.dport, protocol: pkt.protocol, from: hook === 'from_pod' ? 'pod' : 'external' };
  const icmp = pkt.protocol === IPPROTO_ICMP || pkt.protocol === IPPROTO_ICMPV6;
  if (!icmp) q.sport = t.sport;
  if (pkt.protocol === IPPROTO_TCP) q.tcpFlags = pkt.tcpFlags ?? 0;
  if (icmp) q.icmpType = pkt.icmpType ?? (pkt.protocol === IPPROTO_ICMP ? 8 : 128);
  if (pkt.quote) q.quote = { ...pkt.quote.tuple, protocol: pkt.quote.protocol };
  return q;
}

/** Every entry of every service map, raw, to prove explain changes nothing. */
function snapshot(): string {
  const raw = (m: { map: { entries(): Iterable<[Buffer, Buffer]> } }) => [...m.map.entries()].map(([k, v]) => k.toString('hex') + v.toString('hex')).sort();
  const all = [dp.frontends, dp.backends, dp.affinity, dp.conntrack, dp.ipv6.frontends, dp.ipv6.backends, dp.ipv6.affinity, dp.ipv6.conntrack].map(raw);
  return JSON.stringify(all);
}

/** Explain's answer against the table's expectation for the step. */
function agreesWithTable(e: Explanation, step: Step, pkt: FixturePacket, out: readonly Tuple[]): void {
  assert.equal(e.hook, step.hook);
  assert.equal(e.tc, step.verdict, 'TC verdict');
  assert.equal(e.reason, step.reason, 'counter reason');
  if (step.out === 'unchanged') return assert.deepEqual(e.rewrite, asRewrite(pkt.tuple), 'leaves unchanged');
  if (step.out === undefined || step.out === 'port-unreachable' || step.out === 'tcp-reset') {
    for (const o of e.outcomes) assert.equal(o.rewrite, undefined, 'no rewrite: dropped or turned into a reply');
    return;
  }
  assert.ok(e.outcomes.length > 0);
  for (const [f, rf] of Object.entries(FIELD) as Array<[keyof Tuple, keyof Rewrite]>) {
    const want: Expect<string | number> | undefined = step.out[f];
    const allowed: Array<string | number> = resolve<string | number>(want, f, [...out], pkt.tuple[f]);
    for (const o of e.outcomes) assert.ok(allowed.includes(o.rewrite![rf]), `${f}: explain offers ${o.rewrite![rf]}, the table allows ${allowed.join(' or ')}`);
    if (typeof want === 'object' && 'anyOf' in want)
      assert.deepEqual(new Set(e.outcomes.map((o) => o.rewrite![rf])), new Set(want.anyOf), `${f}: explain offers the backends the table does`);
  }
  if (step.out.quote) assert.deepEqual(e.outcomes[0]!.quote, asRewrite(step.out.quote), 'the quote translated');
}

// the kinds of step sent through bin/weir itself (one each), and how many steps were compared
const viaCli = new Set<string>();
let compared = 0;

function cliExplain(q: ExplainQuery): Explanation {
  const r = runSync(binWeir, ['explain', ...queryArgs(q), '--pin-dir', dp.bpffs.path, '-o', 'json'], { check: false });
  assert.equal(r.code, 0, r.stderr);
  const { query, ...e } = JSON.parse(r.stdout) as Explanation & { query: ExplainQuery };
  assert.deepEqual(query, q, 'the CLI asked the same question');
  return e;
}

// the IPv4 table and the IPv6 one: one explain, the family a value
for (const c of [...serviceCases, ...serviceCases6]) {
  if (c.name in explainExclusions) continue;
  test(`explain: ${c.name}`, () => {
    const reasons: Record<string, Record<string, number>> = {};
    let last: Explanation | undefined;
    runCase(dp, c, {
      before(i, step, pkt, out) {
        last = undefined;
        if (pkt.raw) {
          // bytes built by hand (an extension header, ND): no tuple to ask about; their counts are the table's
          (reasons[step.hook] ??= {})[step.reason] = (reasons[step.hook]?.[step.reason] ?? 0) + 1;
          return;
        }
        const q = queryOf(step.hook, pkt);
        const [src, dst, portProto, ...options] = queryArgs(q);
        assert.deepEqual(parseQuery(src!, dst!, portProto!, optionsOf(options)), q, `step ${i}: the query as weir explain options`);
        const before = snapshot();
        const e = explain(dp, { ...q, nowNs: process.hrtime.bigint() });
        assert.equal(snapshot(), before, `step ${i}: explain wrote nothing`);
        try {
          agreesWithTable(e, step, pkt, out);
        } catch (err) {
          if (err instanceof assert.AssertionError) err.message = `step ${i} (${step.hook}), explain: ${err.message}\n${JSON.stringify(e.notes)}`;
          throw err;
        }
        const kind = `${step.hook}/${step.reason}`;
        if (!viaCli.has(kind)) {
          viaCli.add(kind);
          const viaBin = cliExplain(q);
          const gist = (x: Explanation) => [x.tc, x.reason, x.rewrite, x.outcomes.length];
          assert.deepEqual(gist(viaBin), gist(e), `step ${i}: bin/weir explain`);
        }
        (reasons[step.hook] ??= {})[e.reason!] = (reasons[step.hook]?.[e.reason!] ?? 0) + 1;
        last = e;
      },
      after(i, step, pkt, got) {
        if (pkt.raw) return;
        // what the program did is one of the outcomes explain gave
        if (step.verdict === 'pass')
          assert.ok(
            last!.outcomes.some((o) => JSON.stringify(o.rewrite) === JSON.stringify(asRewrite(got))),
            `step ${i}: the program's output ${JSON.stringify(got)} is one of explain's outcomes`,
          );
        compared++;
      },
    });
    assert.deepEqual(reasons, c.counters, "explain's reasons add up to the case's counter totals");
  });
}

/** commander-style option list back into the options object parseQuery takes */
function optionsOf(args: string[]): Record<string, string> {
  const o: Record<string, string> = {};
  for (let i = 0; i < args.length; i += 2) o[args[i]!.slice(2).replace(/-(\w)/g, (_, ch: string) => ch.toUpperCase())] = args[i + 1]!;
  return o;
}

test('every case of the table went through explain, but the listed exclusions', () => {
  assert.deepEqual(Object.keys(explainExclusions).sort(), [
    'IPv6: neighbour discovery passes untouched',
    'malformed packets, fragments and non-IP pass unchanged, each counted once under its reason',
    'to_pod counts and passes',
  ]);
  const cases = [...serviceCases, ...serviceCases6];
  for (const name of Object.keys(explainExclusions))
    assert.ok(
      cases.some((c) => c.name === name),
      `exclusion ${name} names a case`,
    );
  const steps = cases
    .filter((c) => !(c.name in explainExclusions))
    .reduce((n, c) => n + c.steps.filter((st) => typeof st.packet === 'function' || !st.packet.raw).length, 0);
  assert.equal(compared, steps);
  console.log(
    `explain and BPF_PROG_TEST_RUN agreed on ${steps} steps of ${cases.length - Object.keys(explainExclusions).length} cases (IPv4 and IPv6) ` +
      `(${viaCli.size} kinds also through bin/weir); ${Object.keys(explainExclusions).length} cases excluded`,
  );
});

test('bin/weir explain prints candidates, tracked flows and the verdict for people', () => {
  dp.reset();
  addService(dp, {
    id: 7,
    address: '198.19.0.10',
    port: 80,
    backends: [
      { address: '198.18.2.20', port: 8080 },
      { address: '198.18.2.21', port: 8080 },
    ],
  });
  for (const sport of [41001, 41002]) dp.run('fromPod', tcp(`198.18.1.10:${sport}`, '198.19.0.10:80', ['syn']).make().build());
  const r = runSync(binWeir, ['explain', '198.18.1.10', '198.19.0.10', '80/tcp', '--from', 'pod', '--pin-dir', dp.bpffs.path], { check: false });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^packet 198\.18\.1\.10 -> 198\.19\.0\.10:80\/tcp \[S\], first met by from_pod/m);
  assert.match(r.stdout, /^frontend {2}198\.19\.0\.10:80\/tcp scope=internal id=7 backends=2/m);
  assert.match(r.stdout, /slot 1 {2}198\.18\.2\.21:8080/);
  assert.equal(r.stdout.match(/^flow {6}:4100[12] -> 198\.18\.2\.2[01]:8080 \(conntrack\)$/gm)?.length, 2, 'the two tracked flows');
  assert.match(r.stdout, /^verdict {3}dnat \(tc pass, counted as service_nat\)$/m);
  assert.match(r.stdout, /^ {2}slot 0: tc pass, counted as service_nat, leaves as 198\.18\.1\.10:\* -> 198\.18\.2\.20:8080$/m);
});

test('bin/weir explain: a remote IPv6 backend names the node weir_tunnel6 sends it to (an IPv4 underlay node as IPv4)', () => {
  dp.reset();
  const backends = [
    { address: '2001:2:2::20', port: 8080 },
    { address: '2001:2:4::21', port: 8080 },
    { address: '2001:2:1::22', port: 8080 },
  ];
  addService(dp, { id: 31, address: '2001:2:ff::10', port: 80, backends });
  const tunnel6 = typedMap(dp.objects.fromHost6.map('weir_tunnel6'), codecFor('weir_tunnel6_key'), codecFor('weir_tunnel6'));
  // as node-maps writes them: an endpoint on a node reached over IPv4 (v4-mapped), a pod CIDR of an IPv6-only node
  const entries = [
    [
      { prefixlen: 128, address: '2001:2:2::20' },
      { node_ip: '::ffff:198.18.0.2', flags: TUNNEL_ENDPOINT },
    ],
    [
      { prefixlen: 64, address: '2001:2:4::' },
      { node_ip: '2001:2::4', flags: TUNNEL_POD_CIDR },
    ],
  ] as const;
  for (const [k, v] of entries) tunnel6.set(k, v);
  try {
    const args = ['explain', '2001:2:9::50', '2001:2:ff::10', '80/tcp', '--from', 'external', '--pin-dir', dp.bpffs.path];
    const r = runSync(binWeir, [...args, '-o', 'json'], { check: false });
    assert.equal(r.code, 0, r.stderr);
    const e = JSON.parse(r.stdout) as Explanation;
    assert.deepEqual(
      e.candidates.map((c) => [c.address, c.tunnelTo ?? null]),
      [
        ['2001:2:2::20', '198.18.0.2'],
        ['2001:2:4::21', '2001:2::4'],
        ['2001:2:1::22', null],
      ],
    );
    const text = runSync(binWeir, args, { check: false }).stdout;
    console.log(text);
    assert.match(text, /^ {2}slot 0 {2}\[2001:2:2::20\]:8080 {2}remote {2}via tunnel to 198\.18\.0\.2$/m);
    assert.match(text, /^ {2}slot 1 {2}\[2001:2:4::21\]:8080 {2}remote {2}via tunnel to 2001:2::4$/m);
    assert.match(text, /2 of the backends run on other nodes \(198\.18\.0\.2, 2001:2::4\)/);
  } finally {
    for (const [k] of entries) tunnel6.delete(k);
  }
});

test('bad arguments: one line, exit 1', () => {
  const bad = (args: string[], line: string) => {
    const r = runSync(binWeir, ['explain', ...args, '--pin-dir', dp.bpffs.path], { check: false });
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim(), line);
  };
  bad(['198.18.1.10', 'nope', '80/tcp'], 'weir: destination nope: an IPv4 or IPv6 address');
  bad(['198.18.1.10', '2001:2::10', '80/tcp'], 'weir: 198.18.1.10 -> 2001:2::10: source and destination of one family');
  bad(
    ['2001:2::1', '2001:2::10', '0/icmp', '--icmp-type', 'echo-request', '--quote', '[2001:2::1]:1,[2001:2::2]:2/tcp'],
    'weir: --quote: only with --icmp-type dest-unreachable, time-exceeded, parameter-problem or packet-too-big',
  );
  bad(
    ['198.18.1.10', '198.19.0.10', '80/tcp', '--tcp-flags', 'syn,oops'],
    'weir: --tcp-flags syn,oops: a list of fin, syn, rst, psh, ack, urg (e.g. syn,ack), or none',
  );
  bad(['198.18.1.10', '198.19.0.10', '80/udp', '--tcp-flags', 'syn'], 'weir: --tcp-flags: only for tcp');
  bad(
    ['198.18.1.10', '198.19.0.10', '0/icmp', '--icmp-type', 'echo-request', '--quote', '1.2.3.4:1,5.6.7.8:2/tcp'],
    'weir: --quote: only with --icmp-type dest-unreachable, time-exceeded or parameter-problem',
  );
});

// Maglev through bin/weir with a table size other than the fixture's: read from the attached program, not assumed.
test('bin/weir explain gives the Maglev slot with the table size the attached programs hold, and says when it cannot', async () => {
  const M = 251;
  const FOUR = [1, 2, 3, 4].map((i) => `198.18.2.${30 + i}`);
  dp.reset();
  addService(dp, { id: 7, address: '198.19.0.10', port: 80, backends: FOUR.map((address) => ({ address, port: 8080 })), flags: ['maglev'] });
  await detachSizeSource?.();
  detachSizeSource = attachSizeSource(M);
  const cli = (args: string[]) => {
    const r = runSync(binWeir, ['explain', '198.18.1.10', '198.19.0.10', '80/tcp', '--from', 'pod', ...args, '--pin-dir', dp.bpffs.path, '-o', 'json'], {
      check: false,
    });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Explanation;
  };
  // no table yet: the program draws a random slot
  const noTable = cli(['--sport', '46000']);
  assert.equal(noTable.outcomes.length, 4);
  assert.ok(
    noTable.notes.some((n) => /no table for this frontend yet/.test(n)),
    JSON.stringify(noTable.notes),
  );

  dp.maglev!.tables.set({ frontend_id: 7 }, { slots: Array.from({ length: M }, (_, i) => i % 4) });
  // a source port whose slot under M = 251 differs from the one under the default size: the size was read, not assumed
  const slotOf = (sport: number, m: number) => (maglevFlowHash('198.18.1.10', sport, 80, IPPROTO_TCP) % m) % 4;
  const sport = Array.from({ length: 100 }, (_, i) => 46000 + i).find((p) => slotOf(p, M) !== slotOf(p, MAGLEV_DEFAULT_TABLE_SIZE))!;
  const e = cli(['--sport', String(sport)]);
  assert.equal(e.outcomes.length, 1, JSON.stringify(e.notes));
  assert.deepEqual(e.outcomes[0]!.backend, { slot: slotOf(sport, M), address: FOUR[slotOf(sport, M)], port: 8080 });
  assert.ok(
    e.notes.some((n) => n.includes(`of ${M}: slot ${slotOf(sport, M)}`)),
    JSON.stringify(e.notes),
  );

  // no --sport: the hash is not known, every slot, and a note says why
  const anyPort = cli([]);
  assert.equal(anyPort.outcomes.length, 4);
  assert.ok(
    anyPort.notes.some((n) => /give --sport/.test(n)),
    JSON.stringify(anyPort.notes),
  );

  // an entry beyond the count (a table mid-update): the program draws a random slot, explain offers all
  dp.maglev!.tables.set({ frontend_id: 7 }, { slots: Array.from({ length: M }, () => 9) });
  const beyond = cli(['--sport', String(sport)]);
  assert.equal(beyond.outcomes.length, 4);
  assert.ok(
    beyond.notes.some((n) => /beyond the 4 slots/.test(n)),
    JSON.stringify(beyond.notes),
  );
});
