// The daemon's host policy sync (src/daemon/host-policy.ts) on in-memory maps and a store view:
// the Calico kinds read by name (absent kinds are empty), a plan's errors logged one line each
// and counted once while they last, writer failures counted by reason; a stand-in compiler
// writes the automatic endpoint and the failsafes.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Node } from '@kubernetes/client-node';
import type { HostPolicyMaps } from '../../src/dataplane/host-policy-sync.js';
import { HostPolicySync, type HostPolicyInput } from '../../src/daemon/host-policy.js';
import { withOwnPorts } from '../../src/daemon/failsafe-ports.js';
import { memoryLogger } from '../../src/log.js';
import type { GlobalNetworkPolicy, HostPolicyPlan } from '../../src/model/host-policy/types.js';
import { FakeMap } from './fake-maps.js';

/**
 * A stand-in compiler: the automatic host endpoint (no chains: everything allowed, as Calico's
 * default-allow profile) and the failsafes; every policy and HostEndpoint named as not used, so
 * the sync's handling of plan errors shows.
 */
function fallbackCompile(input: HostPolicyInput): HostPolicyPlan {
  const errors: HostPolicyPlan['errors'] = [
    ...input.globalNetworkPolicies.map((p) => ({
      kind: 'GlobalNetworkPolicy' as const,
      name: p.metadata.name,
      message: 'not compiled by this stand-in',
    })),
    ...input.hostEndpoints.map((h) => ({ kind: 'HostEndpoint' as const, name: h.metadata.name, message: 'not compiled by this stand-in' })),
  ];
  const node = input.nodes.find((n) => n.metadata?.name === input.nodeName);
  return {
    endpoints: input.autoHostEndpoints
      ? [
          {
            id: 1,
            name: `${input.nodeName}-auto-hep`,
            auto: true,
            interfaces: '*',
            expectedIPs: (node?.status?.addresses ?? []).filter((a) => a.type === 'InternalIP' || a.type === 'ExternalIP').map((a) => a.address),
            labels: node?.metadata?.labels ?? {},
            profiles: [],
            policies: [],
          },
        ]
      : [],
    chains: [],
    rules: [],
    sets: new Map(),
    policyNames: new Map(),
    failsafes: input.failsafes,
    errors,
  };
}

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
