// Anti-spoofing (issue 16) through BPF_PROG_TEST_RUN, as a fixture table per check: the source
// check of from_pod / from_pod6 (lib/pod_source.h: a packet whose source is not bound to the
// interface it arrived on is dropped, spoofed_source; DHCP, link-local and DAD sources pass),
// and the tunnel's peer check in from_host / from_host6 (lib/tunnel.h, tunnel6.h: a VXLAN packet
// with weir's VNI from an address that is not a peer node is dropped before decapsulation,
// tunnel_denied), both families, exact counter totals per row. The pod interface is the
// loopback device BPF_PROG_TEST_RUN gives an skb (ifindex 1); "another pod's" address is bound
// to an ifindex that is not it.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BpfObject, codecFor, typedMap, type BpfProgram, type ConstValue } from '../../src/bpf/index.js';
import { counterTotals, readCounters, resetCounters } from '../../src/dataplane/counters.js';
import { mountPrivateBpffs, type PrivateBpffs } from '../lib/bpffs.js';
import { eth, type PacketBuilder } from '../lib/packet.js';

const OBJ_DIR = join(process.cwd(), 'build', 'bpf');
const TC_PASS = 0;
const TC_DROP = 2;
const TCX_NEXT = -1;
const TEST_RUN_IFINDEX = 1; // the skb's device in BPF_PROG_TEST_RUN without a context: lo
const OTHER_IFINDEX = 77; // another pod's interface

const POD = '198.18.3.10';
const NEIGHBOUR = '198.18.3.20'; // a pod of the same node, behind OTHER_IFINDEX
const STRANGER = '198.18.77.7';
const POD6 = '2001:2:0:3::10';
const NEIGHBOUR6 = '2001:2:0:3::20';
const STRANGER6 = '2001:2:77::7';
const NODE = '198.18.0.2';
const NODE6 = '2001:2::2';
const PEER_NODE = '198.18.0.1';
const PEER_NODE6 = '2001:2::1';
const VNI = 0x574549;

type Counters = Record<string, Record<string, number>>;

/** weir's objects in one private bpffs, with knobs. */
class Dataplane {
  private readonly objects: BpfObject[] = [];

  constructor(
    readonly bpffs: PrivateBpffs,
    consts: Record<string, ConstValue>,
  ) {
    for (const n of ['from_pod', 'from_pod6', 'from_host', 'from_host6'])
      this.objects.push(BpfObject.load(join(OBJ_DIR, `${n}.o`), { pinDir: bpffs.path, consts: n.startsWith('from_pod') ? consts : {} }));
  }

  program(name: string): BpfProgram {
    const o = this.objects.find((x) => x.programNames().includes(name));
    if (!o) throw new Error(`no object holds ${name}`);
    return o.program(name);
  }

  get pod4() {
    return typedMap(this.objects[0]!.map('weir_pod_addrs4'), codecFor('weir_pod_addr4_key'), codecFor('weir_pod_addr'));
  }
  get pod6() {
    return typedMap(this.objects[0]!.map('weir_pod_addrs6'), codecFor('weir_pod_addr6_key'), codecFor('weir_pod_addr'));
  }
  get nodes4() {
    return typedMap(this.objects[2]!.map('weir_nodes4'), codecFor('weir_node4_key'), codecFor('weir_node4'));
  }
  get nodes6() {
    return typedMap(this.objects[3]!.map('weir_nodes6'), codecFor('weir_node6_key'), codecFor('weir_node6'));
  }

  /** runs `data` through `prog` with fresh counters: its verdict and the counts it left */
  run(prog: string, data: Buffer): { retval: number; counters: Counters; data: Buffer } {
    resetCounters(this.objects[0]!.map('weir_counters'));
    const r = this.program(prog).testRun({ data });
    return { retval: r.retval | 0, data: r.data, counters: counterTotals(readCounters(this.objects[0]!.map('weir_counters'))) };
  }

  async close(): Promise<void> {
    for (const o of this.objects) o.close();
    await this.bpffs.cleanup();
  }
}

const syn4 = (src: string, dst = '198.18.4.10') =>
  eth({})
    .ipv4({ src, dst })
    .tcp({ sport: 40000, dport: 8080, flags: ['syn'] });
const syn6 = (src: string, dst = '2001:2:0:4::10') =>
  eth({})
    .ipv6({ src, dst })
    .tcp({ sport: 40000, dport: 8080, flags: ['syn'] });

interface Row {
  name: string;
  prog: string;
  packet: PacketBuilder | Buffer;
  retval: number;
  counters: Counters;
}

const drop = (hook: string, reason: string): Counters => ({ [hook]: { [reason]: 1 } });

/** The source check, both families; every row must also hold with the knob on only. */
const SOURCE_ROWS: Row[] = [
  { name: 'IPv4 from its own address: passes', prog: 'weir_from_pod', packet: syn4(POD), retval: TC_PASS, counters: drop('from_pod', 'pass') },
  {
    name: "IPv4 from a neighbour pod's address (bound to its interface): dropped",
    prog: 'weir_from_pod',
    packet: syn4(NEIGHBOUR),
    retval: TC_DROP,
    counters: drop('from_pod', 'spoofed_source'),
  },
  {
    name: 'IPv4 from an address no pod has: dropped',
    prog: 'weir_from_pod',
    packet: syn4(STRANGER),
    retval: TC_DROP,
    counters: drop('from_pod', 'spoofed_source'),
  },
  {
    name: 'IPv4 from the node address (accept_local is on for pods): dropped',
    prog: 'weir_from_pod',
    packet: syn4(NODE),
    retval: TC_DROP,
    counters: drop('from_pod', 'spoofed_source'),
  },
  {
    name: 'IPv4 DHCP discover (0.0.0.0 -> 255.255.255.255, UDP 68 -> 67): passes',
    prog: 'weir_from_pod',
    packet: eth({ dst: 'ff:ff:ff:ff:ff:ff' }).ipv4({ src: '0.0.0.0', dst: '255.255.255.255' }).udp({ sport: 68, dport: 67 }).payload(Buffer.alloc(240)),
    retval: TC_PASS,
    counters: drop('from_pod', 'pass'),
  },
  {
    name: 'IPv4 0.0.0.0 to anything but DHCP: dropped',
    prog: 'weir_from_pod',
    packet: syn4('0.0.0.0'),
    retval: TC_DROP,
    counters: drop('from_pod', 'spoofed_source'),
  },
  {
    name: 'IPv4 an ICMP error the pod sends from its own address: passes',
    prog: 'weir_from_pod',
    packet: eth({})
      .ipv4({ src: POD, dst: '198.18.4.10' })
      .icmp({
        type: 'dest-unreachable',
        code: 3,
        embedded: syn4('198.18.4.10', POD)
          .build()
          .subarray(14, 14 + 28),
      }),
    retval: TC_PASS,
    counters: drop('from_pod', 'pass'),
  },
  {
    name: 'IPv4 an ICMP error from an address not its own (a pod posing as a router): dropped',
    prog: 'weir_from_pod',
    packet: eth({})
      .ipv4({ src: STRANGER, dst: '198.18.4.10' })
      .icmp({
        type: 'time-exceeded',
        embedded: syn4('198.18.4.10', '198.18.9.9')
          .build()
          .subarray(14, 14 + 28),
      }),
    retval: TC_DROP,
    counters: drop('from_pod', 'spoofed_source'),
  },
  {
    name: 'IPv4 a later fragment (past the parser) from a foreign address: dropped',
    prog: 'weir_from_pod',
    packet: eth({}).ipv4({ src: STRANGER, dst: '198.18.4.10', protocol: 17, fragOffset: 185 }).payload(Buffer.alloc(64)),
    retval: TC_DROP,
    counters: drop('from_pod', 'spoofed_source'),
  },
  {
    name: 'IPv4 a malformed header (total length past the packet) from a foreign address: dropped, the source read from the packet',
    prog: 'weir_from_pod',
    packet: eth({}).ipv4({ src: STRANGER, dst: '198.18.4.10', totalLength: 1400 }).udp({ sport: 1, dport: 2 }),
    retval: TC_DROP,
    counters: drop('from_pod', 'spoofed_source'),
  },
  {
    name: 'ARP (not IP): passes unchecked',
    prog: 'weir_from_pod',
    packet: eth({ type: 0x0806 }).payload(Buffer.alloc(28)),
    retval: TC_PASS,
    counters: drop('from_pod', 'not_ip'),
  },
  { name: 'IPv6 from its own address: passes', prog: 'weir_from_pod6', packet: syn6(POD6), retval: TC_PASS, counters: drop('from_pod', 'pass') },
  {
    name: "IPv6 from a neighbour pod's address: dropped",
    prog: 'weir_from_pod6',
    packet: syn6(NEIGHBOUR6),
    retval: TC_DROP,
    counters: drop('from_pod', 'spoofed_source'),
  },
  {
    name: 'IPv6 from an address no pod has: dropped',
    prog: 'weir_from_pod6',
    packet: syn6(STRANGER6),
    retval: TC_DROP,
    counters: drop('from_pod', 'spoofed_source'),
  },
  {
    name: 'IPv6 neighbour solicitation from its link-local address: passes',
    prog: 'weir_from_pod6',
    packet: eth({}).ipv6({ src: 'fe80::1234', dst: 'ff02::1:ff00:1', hopLimit: 255 }).icmpv6({ type: 135, rest: 0 }).payload(Buffer.alloc(16)),
    retval: TC_PASS,
    counters: drop('from_pod', 'pass'),
  },
  {
    name: 'IPv6 duplicate address detection (:: source, ICMPv6): passes',
    prog: 'weir_from_pod6',
    packet: eth({}).ipv6({ src: '::', dst: 'ff02::1:ff00:10', hopLimit: 255 }).icmpv6({ type: 135, rest: 0 }).payload(Buffer.alloc(16)),
    retval: TC_PASS,
    counters: drop('from_pod', 'pass'),
  },
  {
    name: 'IPv6 :: source in anything but ICMPv6: dropped',
    prog: 'weir_from_pod6',
    packet: eth({}).ipv6({ src: '::', dst: '2001:2:0:4::10' }).udp({ sport: 546, dport: 547 }),
    retval: TC_DROP,
    counters: drop('from_pod', 'spoofed_source'),
  },
  {
    name: 'IPv6 a longer extension header chain than the parser walks (the stack forwards it), foreign source: dropped',
    prog: 'weir_from_pod6',
    packet: eth({})
      .ipv6({ src: STRANGER6, dst: '2001:2:0:4::10', ext: Array.from({ length: 8 }, () => ({ type: 'dest-opts' as const })) })
      .udp({ sport: 1, dport: 2 }),
    retval: TC_DROP,
    counters: drop('from_pod', 'spoofed_source'),
  },
  {
    name: 'IPv6 reaches from_pod first: handed on to from_pod6 whatever its source',
    prog: 'weir_from_pod',
    packet: syn6(STRANGER6),
    retval: TCX_NEXT,
    counters: {},
  },
];

/** VXLAN with weir's VNI (tunnel mode) around `inner` (from its IP header on). */
function vxlan(inner: Buffer, innerType: number): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(0x08000000, 0);
  h.writeUInt32BE(VNI << 8, 4);
  return Buffer.concat([h, eth({ dst: '02:57:45:49:00:00', src: '00:00:00:00:00:00', type: innerType }).build(), inner]);
}
const inner4 = syn4('198.18.100.7', POD).build().subarray(14);
const inner6 = syn6('2001:2:ff::7', POD6).build().subarray(14);
const tunnel4 = (src: string, inner: Buffer, type: number) =>
  eth({}).ipv4({ src, dst: NODE }).udp({ sport: 50000, dport: 4789, checksum: 0 }).payload(vxlan(inner, type));
const tunnel6 = (src: string, inner: Buffer, type: number) => eth({}).ipv6({ src, dst: NODE6 }).udp({ sport: 50000, dport: 4789 }).payload(vxlan(inner, type));

/** The tunnel's peer check: strangers dropped before decapsulation, peers decapsulated. */
const TUNNEL_ROWS: Row[] = [
  {
    name: 'IPv4 outer from a stranger, IPv4 inside: dropped',
    prog: 'weir_from_host',
    packet: tunnel4(STRANGER, inner4, 0x0800),
    retval: TC_DROP,
    counters: drop('from_host', 'tunnel_denied'),
  },
  {
    name: 'IPv4 outer from a stranger, IPv6 inside: handed to from_host6 (TCX_NEXT) ...',
    prog: 'weir_from_host',
    packet: tunnel4(STRANGER, inner6, 0x86dd),
    retval: TCX_NEXT,
    counters: {},
  },
  {
    name: '... which drops it',
    prog: 'weir_from_host6',
    packet: tunnel4(STRANGER, inner6, 0x86dd),
    retval: TC_DROP,
    counters: drop('from_host', 'tunnel_denied'),
  },
  {
    name: 'IPv6 outer from a stranger, IPv6 inside: dropped',
    prog: 'weir_from_host6',
    packet: tunnel6(STRANGER6, inner6, 0x86dd),
    retval: TC_DROP,
    counters: drop('from_host', 'tunnel_denied'),
  },
  {
    name: "IPv6 outer from a pod's address (pods are no nodes): dropped",
    prog: 'weir_from_host6',
    packet: tunnel6(NEIGHBOUR6, inner6, 0x86dd),
    retval: TC_DROP,
    counters: drop('from_host', 'tunnel_denied'),
  },
];

describe('anti-spoofing through BPF_PROG_TEST_RUN', () => {
  let dp: Dataplane;
  let off: Dataplane;

  before(() => {
    dp = new Dataplane(mountPrivateBpffs('anti-spoof'), { pod_source_check: 1 });
    dp.pod4.set({ address: POD }, { ifindex: TEST_RUN_IFINDEX });
    dp.pod4.set({ address: NEIGHBOUR }, { ifindex: OTHER_IFINDEX });
    dp.pod6.set({ address: POD6 }, { ifindex: TEST_RUN_IFINDEX });
    dp.pod6.set({ address: NEIGHBOUR6 }, { ifindex: OTHER_IFINDEX });
    dp.nodes4.set({ address: PEER_NODE }, { flags: 1 });
    dp.nodes6.set({ address: PEER_NODE6 }, { flags: 1 });
    off = new Dataplane(mountPrivateBpffs('anti-spoof-off'), {});
  });
  after(async () => {
    await dp?.close();
    await off?.close();
  });

  for (const row of [...SOURCE_ROWS, ...TUNNEL_ROWS])
    test(row.name, () => {
      const data = Buffer.isBuffer(row.packet) ? row.packet : row.packet.build();
      const r = dp.run(row.prog, data);
      assert.deepEqual({ retval: r.retval, counters: r.counters }, { retval: row.retval, counters: row.counters });
    });

  test("a peer node's tunnel packets are decapsulated (IPv4 outer, either inner; IPv6 outer): the check lets the cluster through", () => {
    for (const [prog, packet] of [
      ['weir_from_host', tunnel4(PEER_NODE, inner4, 0x0800)],
      ['weir_from_host6', tunnel4(PEER_NODE, inner6, 0x86dd)],
      ['weir_from_host6', tunnel6(PEER_NODE6, inner6, 0x86dd)],
    ] as const) {
      const r = dp.run(prog, packet.build());
      assert.equal(r.counters.from_host?.tunnel_decap, 1, `${prog}: ${JSON.stringify(r.counters)}`);
      assert.equal(r.counters.from_host?.tunnel_denied, undefined);
    }
  });

  test('the knob off (--pod-source-check off; the built-in value): every source passes', () => {
    for (const [prog, packet] of [
      ['weir_from_pod', syn4(STRANGER)],
      ['weir_from_pod6', syn6(STRANGER6)],
    ] as const) {
      const r = off.run(prog, packet.build());
      assert.deepEqual({ retval: r.retval, counters: r.counters }, { retval: TC_PASS, counters: drop('from_pod', 'pass') }, prog);
    }
  });

  test('an address rebound to another interface (the pod replaced) is dropped on the old one at once', () => {
    dp.pod4.set({ address: POD }, { ifindex: OTHER_IFINDEX });
    try {
      assert.equal(dp.run('weir_from_pod', syn4(POD).build()).retval, TC_DROP);
    } finally {
      dp.pod4.set({ address: POD }, { ifindex: TEST_RUN_IFINDEX });
    }
    assert.equal(dp.run('weir_from_pod', syn4(POD).build()).retval, TC_PASS);
  });
});
