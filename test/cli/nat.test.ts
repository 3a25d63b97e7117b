// `weir nat list` through the real bin/weir against a conntrack map the real from_pod
// filled: a TCP flow through its handshake and close, a hairpin flow (client = backend:
// SNAT to the frontend), a UDP flow; each a single row pairing both directions, filtered
// like `weir ct list`.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { NatRow } from '../../src/cli/nat.js';
import { eth } from '../lib/packet.js';
import { binWeir } from '../lib/paths.js';
import { runSync } from '../lib/proc.js';
import { addService, IPPROTO, loadServiceDataplane, type ServiceDataplane } from '../bpf/service-fixture.js';

const CLIENT = '198.18.1.10';
const FRONTEND = '198.19.0.10';
const BACKEND = '198.18.2.20';
const HAIRPIN_FE = '198.19.0.11';
const DNS_FE = '198.19.0.12';

let dp: ServiceDataplane;
before(() => {
  dp = loadServiceDataplane();
  addService(dp, { id: 7, address: FRONTEND, port: 80, backends: [{ address: BACKEND, port: 8080 }] });
  addService(dp, { id: 8, address: HAIRPIN_FE, port: 80, backends: [{ address: CLIENT, port: 8080 }] });
  addService(dp, { id: 9, address: DNS_FE, port: 53, protocol: IPPROTO.udp, backends: [{ address: '198.18.2.30', port: 5353 }] });
});
after(async () => {
  await dp?.close();
});

const weir = (...args: string[]) => {
  const r = runSync(binWeir, [...args, '--pin-dir', dp.bpffs.path], { check: false });
  assert.equal(r.code, 0, `weir ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const pkt = (src: string, dst: string) => eth({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02' }).ipv4({ src, dst });
const pass = (b: Buffer) => assert.equal(dp.run('fromPod', b).retval, 0);

test('weir nat list: one row per flow, both directions paired, TCP state, hairpin source, filters', () => {
  // TCP: handshake + one data segment each way, as from_pod sees a local client and backend
  pass(
    pkt(CLIENT, FRONTEND)
      .tcp({ sport: 40001, dport: 80, flags: ['syn'] })
      .build(),
  );
  pass(
    pkt(BACKEND, CLIENT)
      .tcp({ sport: 8080, dport: 40001, flags: ['syn', 'ack'] })
      .build(),
  );
  pass(
    pkt(CLIENT, FRONTEND)
      .tcp({ sport: 40001, dport: 80, flags: ['ack'] })
      .build(),
  );
  pass(
    pkt(CLIENT, FRONTEND)
      .tcp({ sport: 40002, dport: 80, flags: ['syn'] })
      .build(),
  ); // no answer yet
  // hairpin: the client reaches itself through HAIRPIN_FE; its reply comes from itself to the frontend address
  pass(
    pkt(CLIENT, HAIRPIN_FE)
      .tcp({ sport: 40003, dport: 80, flags: ['syn'] })
      .build(),
  );
  pass(
    pkt(CLIENT, HAIRPIN_FE)
      .tcp({ sport: 8080, dport: 40003, flags: ['syn', 'ack'] })
      .build(),
  );
  pass(pkt(CLIENT, DNS_FE).udp({ sport: 5000, dport: 53 }).payload('q').build());
  pass(pkt('198.18.2.30', CLIENT).udp({ sport: 5353, dport: 5000 }).payload('a').build());

  const rows = JSON.parse(weir('nat', 'list', '-o', 'json')) as Array<Omit<NatRow, 'ageS' | 'idleS'>>;
  assert.equal(rows.length, 4, 'a row per flow, not per entry');
  const by = (client: string, frontend: string) => rows.find((r) => r.client === client && r.frontend === frontend)!;
  const est = by(`${CLIENT}:40001`, `${FRONTEND}:80`);
  assert.deepEqual(
    {
      backend: est.backend,
      translatedSource: est.translatedSource,
      state: est.state,
      tcpOriginal: est.tcpOriginal,
      tcpReply: est.tcpReply,
      packetsOut: est.packetsOut,
      packetsIn: est.packetsIn,
      paired: est.paired,
      frontendId: est.frontendId,
    },
    {
      backend: `${BACKEND}:8080`,
      translatedSource: '',
      state: 'established',
      tcpOriginal: 'S.',
      tcpReply: 'S.',
      packetsOut: 2,
      packetsIn: 1,
      paired: true,
      frontendId: 7,
    },
  );
  assert.equal(est.forward, 'stack', 'no interface in weir_ifaces here: the stack routes it');
  assert.equal(est.forward, 'stack', 'no interface in weir_ifaces here: the stack routes it');
  assert.equal(by(`${CLIENT}:40002`, `${FRONTEND}:80`).state, 'syn_sent');
  const hp = by(`${CLIENT}:40003`, `${HAIRPIN_FE}:80`);
  assert.deepEqual([hp.backend, hp.translatedSource, hp.state, hp.flags], [`${CLIENT}:8080`, `${HAIRPIN_FE}:40003`, 'syn_recv', ['hairpin']]);
  const dns = by(`${CLIENT}:5000`, `${DNS_FE}:53`);
  assert.deepEqual([dns.protocol, dns.backend, dns.state, dns.packetsOut, dns.packetsIn], ['udp', '198.18.2.30:5353', '', 1, 1]);

  assert.deepEqual(
    (JSON.parse(weir('nat', 'list', '-o', 'json', '--protocol', 'udp')) as NatRow[]).map((r) => r.frontend),
    [`${DNS_FE}:53`],
  );
  assert.deepEqual(
    (JSON.parse(weir('nat', 'list', '-o', 'json', '--address', BACKEND)) as NatRow[]).map((r) => r.client),
    [`${CLIENT}:40001`, `${CLIENT}:40002`],
  );
  assert.deepEqual((JSON.parse(weir('nat', 'list', '-o', 'json', '--port', '40003')) as NatRow[]).length, 1);
  assert.match(
    weir('nat', 'list'),
    new RegExp(`^tcp +${CLIENT}:40003 +${HAIRPIN_FE}:80 +${CLIENT}:8080 \\(from ${HAIRPIN_FE}:40003\\) +syn_recv +hairpin `, 'm'),
  );

  const bad = runSync(binWeir, ['nat', 'list', '--pin-dir', dp.bpffs.path, '--protocol', 'gre!'], { check: false });
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr.trim(), 'weir: --protocol gre!: tcp, udp, icmp, icmpv6, sctp or a number');
});
