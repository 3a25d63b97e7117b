// The daemon's host policy sync (src/daemon/host-policy.ts) on in-memory maps and a store view:
// the Calico kinds read by name (absent kinds are empty), a plan's errors logged one line each
// and counted once while they last, writer failures counted by reason, and the fallback plan
// (no compiler in the build) that writes the automatic endpoint and the failsafes.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Node } from '@kubernetes/client-node';
import type { HostPolicyMaps } from '../../src/dataplane/host-policy-sync.js';
import { fallbackCompile, HostPolicySync, type HostPolicyInput } from '../../src/daemon/host-policy.js';
import { withOwnPorts } from '../../src/daemon/failsafe-ports.js';
import { memoryLogger } from '../../src/log.js';
import type { GlobalNetworkPolicy } from '../../src/model/host-policy/types.js';
import { FakeMap } from './fake-maps.js';

function maps() {
  const f = {
    ifaces: new FakeMap(),
    chains: new FakeMap(),
    rules: new FakeMap(),
    sets4: new FakeMap(),
    sets6: new FakeMap(),
    failsafe4: new FakeMap(),
    failsafe6: new FakeMap(),
    names: new FakeMap(),
  };
  return { f, maps: f as unknown as HostPolicyMaps };
}

const NODE: V1Node = { metadata: { name: 'n1', labels: { role: 'edge' } }, status: { addresses: [{ type: 'InternalIP', address: '198.18.0.1' }] } };
const GNP: GlobalNetworkPolicy = { metadata: { name: 'deny-ssh' }, spec: { selector: 'all()', ingress: [{ action: 'Deny' }] } };

test('kinds read by name, plan errors logged and counted once, the fallback plan written', () => {
  const { f, maps: m } = maps();
  const kinds = new Map<string, Map<string, unknown>>([['GlobalNetworkPolicy', new Map([['deny-ssh', GNP]])]]);
  const store = { nodes: new Map([['n1', NODE]]), map: (k: string) => kinds.get(k) };
  const seen: HostPolicyInput[] = [];
  const counted: string[] = [];
  const log = memoryLogger();
  const sync = new HostPolicySync(
    m,
    store,
    {
      nodeName: 'n1',
      failsafes: withOwnPorts([{ direction: 'in', protocol: 'tcp', port: 22 }], ':9745'),
      autoHostEndpoints: true,
      compile: (i) => {
        seen.push(i);
        return fallbackCompile(i);
      },
      hosts: () => [{ ifname: 'eth0', ifindex: 4 }],
      xdpAttached: () => new Set([4]),
      onError: (r) => counted.push(r),
    },
    log,
  );
  const r = sync.start();
  assert.equal(seen[0]!.globalNetworkPolicies[0], GNP);
  assert.deepEqual([seen[0]!.hostEndpoints, seen[0]!.pods], [[], []], 'kinds the store lacks are empty');
  assert.deepEqual(f.ifaces.get({ ifindex: 4 }), { hep: 1, flags: 1 });
  assert.equal(f.failsafe4.data.size, 2, 'tcp:22 and the metrics port');
  assert.equal(f.failsafe4.get({ prefixlen: 32, direction: 0, protocol: 6, port: 9745, address: '0.0.0.0' }), 1);
  assert.equal(r.planErrors, 1);
  assert.deepEqual(counted, ['plan_policy']);
  assert.equal(log.lines.filter((l) => l.includes('host policy object not used') && l.includes('deny-ssh')).length, 1);
  // the same error again: not logged or counted again
  sync.resync();
  assert.deepEqual(counted, ['plan_policy']);
  assert.deepEqual(sync.figures(), { endpoints: 1, rules: 0 });
  // a writer failure is counted by its reason
  f.failsafe6.failOn = () => true;
  f.failsafe6.data.clear();
  sync.resync();
  assert.deepEqual(counted.slice(1).sort(), ['map_full', 'map_full']);
});

test('--auto-host-endpoints off: no endpoint, no interface entry', () => {
  const { f, maps: m } = maps();
  const store = { nodes: new Map([['n1', NODE]]), map: () => undefined };
  const sync = new HostPolicySync(
    m,
    store,
    {
      nodeName: 'n1',
      failsafes: [],
      autoHostEndpoints: false,
      compile: fallbackCompile,
      hosts: () => [{ ifname: 'eth0', ifindex: 4 }],
      xdpAttached: () => new Set(),
    },
    memoryLogger(),
  );
  sync.start();
  assert.equal(f.ifaces.data.size, 0);
});
