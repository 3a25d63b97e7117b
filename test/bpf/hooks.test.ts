// test/bpf: the hook table (src/dataplane/hooks.ts) against the built objects: every object
// it loads exists in build/bpf and declares exactly the table's knobs among the knobs weir
// sets; every row's program is in its object with the program type and attach type its place
// needs; every pin name parses back to its row, and the pin names of release 2e42a8d are kept.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { BpfObject } from '../../src/bpf/index.js';
import { HOOKS, KNOBS, knobsFor, OBJECT_NAMES, OBJECTS, parsePinName, pinName, type Hook, type KnobInputs, type KnobName } from '../../src/dataplane/hooks.js';
import { rodataNames } from '../../src/dataplane/loader.js';
import { bpfObject } from '../lib/paths.js';

const PROGRAM_TYPE = { tc: 'sched_cls', xdp: 'xdp', cgroup: 'cgroup_sock_addr' } as const;

test('every object of the table is built, and every row names a loaded object', () => {
  assert.deepEqual(
    OBJECT_NAMES,
    ['from_pod', 'from_pod6', 'to_pod', 'from_host', 'from_host6', 'sock_lb', 'xdp_prefilter', 'to_host'],
    'load order: from_pod creates the shared pinned maps first',
  );
  for (const name of OBJECT_NAMES) assert.ok(existsSync(bpfObject(name)), `${bpfObject(name)} (make build)`);
  for (const h of HOOKS) assert.ok(OBJECT_NAMES.includes(h.object), `row ${h.name}: object ${h.object} is not in OBJECTS`);
  for (const name of OBJECT_NAMES)
    assert.ok(
      HOOKS.some((h) => h.object === name),
      `object ${name} is loaded but attached nowhere`,
    );
});

test("every row's program is in its object, with the type and attach type its place needs", () => {
  for (const name of OBJECT_NAMES) {
    const obj = BpfObject.open(bpfObject(name));
    try {
      const defs = new Map(obj.programDefs().map((p) => [p.name, p]));
      for (const h of HOOKS.filter((r) => r.object === name)) {
        const def = defs.get(h.program);
        assert.ok(def, `row ${h.name}: ${name}.o has no program ${h.program} (has ${[...defs.keys()].join(', ')})`);
        assert.equal(def.type, PROGRAM_TYPE[h.at.kind], `row ${h.name}: program type`);
        if (h.at.kind === 'cgroup') assert.equal(def.expectedAttachType, h.at.attachType, `row ${h.name}: attach type`);
      }
    } finally {
      obj.close();
    }
  }
});

test("every knob an object takes is declared in its .rodata, and every knob it declares is the table's", () => {
  const known = new Set<string>(Object.keys(KNOBS));
  let seen = 0;
  for (const name of OBJECT_NAMES) {
    const declared = rodataNames(bpfObject(name));
    const takes: readonly KnobName[] = OBJECTS[name].knobs;
    for (const k of takes) assert.ok(declared.has(k), `${name}.o does not declare .rodata knob ${k} (it has ${[...declared].join(', ')})`);
    // a knob weir sets that the object declares but the table omits would stay at its built-in value
    assert.deepEqual([...declared].filter((k) => known.has(k)).sort(), [...takes].sort(), `${name}: knobs declared vs the table's`);
    seen += takes.length;
  }
  assert.equal(seen, 36);
});

test('knob values come from the daemon options; an undeclared knob is left out and reported', () => {
  const inputs: KnobInputs = { serviceStats: false, sockLbMode: 'host-only', hostNetnsCookie: 4097n };
  assert.deepEqual(
    knobsFor('sock_lb', inputs, new Set(['lb_stats_enabled', 'maglev_table_size', 'sock_lb_mode', 'host_netns_cookie', 'ct_track_all', 'weir_btf_anchor'])),
    {
      consts: { lb_stats_enabled: 0, maglev_table_size: 16381, sock_lb_mode: 1, host_netns_cookie: 4097n, ct_track_all: 0 },
      missing: [],
    },
  );
  assert.deepEqual(
    knobsFor(
      'from_pod',
      { ...inputs, ctTrackAll: true, tunnelPort: 8472, externalServiceMode: 'dsr' },
      new Set([
        'lb_stats_enabled',
        'maglev_table_size',
        'ct_track_all',
        'tunnel_port',
        'external_service_mode',
        'policy_enabled',
        'policy_stats_enabled',
        'pod_source_check',
      ]),
    ),
    {
      consts: {
        lb_stats_enabled: 0,
        maglev_table_size: 16381,
        ct_track_all: 1,
        tunnel_port: 8472,
        external_service_mode: 1,
        policy_enabled: 0,
        policy_stats_enabled: 1,
        pod_source_check: 0,
      },
      missing: [],
    },
  );
  assert.deepEqual(knobsFor('sock_lb', { ...inputs, serviceStats: true, sockLbMode: 'on' }, new Set(['sock_lb_mode'])), {
    consts: { sock_lb_mode: 0 },
    missing: ['lb_stats_enabled', 'maglev_table_size', 'host_netns_cookie', 'ct_track_all'],
  });
  assert.deepEqual(knobsFor('to_pod', inputs, new Set(['lb_stats_enabled'])), { consts: {}, missing: [] }, 'to_pod takes no knob even if it had one');
});

test('pin names: the 2e42a8d names exactly, each parsing back to its row', () => {
  const byName = (n: string): Hook => HOOKS.find((h) => h.name === n)!;
  // release 2e42a8d finds its links by these names: upgrade and rollback update them in place
  assert.equal(pinName(byName('from_pod'), 7), 'tcx-7-from_pod');
  assert.equal(pinName(byName('to_pod'), 7), 'tcx-7-to_pod');
  assert.equal(pinName(byName('from_host'), 12), 'tcx-12-from_host');
  assert.deepEqual(
    HOOKS.filter((h) => h.at.kind === 'cgroup').map((h) => pinName(h)),
    [
      'cgroup-connect4',
      'cgroup-sendmsg4',
      'cgroup-recvmsg4',
      'cgroup-getpeername4',
      'cgroup-connect6',
      'cgroup-sendmsg6',
      'cgroup-recvmsg6',
      'cgroup-getpeername6',
    ],
  );
  assert.equal(new Set(HOOKS.map((h) => h.name)).size, HOOKS.length, 'row names are unique');
  assert.equal(new Set(HOOKS.map((h) => h.pin)).size, HOOKS.length, 'pin patterns are unique');
  for (const h of HOOKS) {
    const perInterface = h.at.kind !== 'cgroup';
    assert.equal(h.pin.includes('{ifindex}'), perInterface, `row ${h.name}: {ifindex} in the pin iff per interface`);
    for (const ifindex of perInterface ? [1, 7, 4242] : [undefined]) {
      const pin = pinName(h, ifindex);
      assert.deepEqual(parsePinName(pin), ifindex === undefined ? { hook: h } : { hook: h, ifindex }, pin);
    }
  }
  assert.throws(() => pinName(byName('from_pod')), RangeError);
  for (const foreign of ['tcx-7-tunnel', 'tcx-0-from_pod', 'tcx--from_pod', 'tcx-7-from_pod.old', 'cgroup-bind6', 'weir_ct4_v2', 'xtcx-7-to_pod'])
    assert.equal(parsePinName(foreign), undefined, foreign);
});

test('a hook table row is all it takes to add a hook: a tunnel-like row parses and pins', () => {
  const tunnel: Hook = { name: 'tunnel', object: 'from_host', program: 'weir_from_host', at: { kind: 'xdp', interfaces: 'host' }, pin: 'xdp-{ifindex}-tunnel' };
  const table = [...HOOKS, tunnel];
  assert.equal(pinName(tunnel, 3), 'xdp-3-tunnel');
  assert.deepEqual(parsePinName('xdp-3-tunnel', table), { hook: tunnel, ifindex: 3 });
  assert.equal(parsePinName('xdp-3-tunnel'), undefined, 'not a row of the shipped table');
  assert.equal(parsePinName('tcx-3-from_pod', table)?.hook.name, 'from_pod');
});
