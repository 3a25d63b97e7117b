// Differential test: the policy model's verdict (identities, ipcache, keys: what BPF will hold)
// against the spec-written reference evaluator (policy-reference.ts) on generated clusters —
// random labels, namespaces, named ports, selectors with every operator, ipBlocks with except
// around pod and external addresses, port ranges, both directions, several policies per pod.
// The seed is printed; POLICY_SEED=<n> replays one run, POLICY_CLUSTERS=<n> sets its size.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPolicyModel, type PolicyKey, type PolicyModel } from '../../src/model/policy/network-policy.js';
import { diffPolicyModels, keyWrites } from '../../src/model/policy/diff.js';
import { allowed } from '../../src/model/policy/verdict.js';
import { EXTERNAL, gen, mulberry32, mutate, PORTS, PROTOS } from './policy-generator.js';
import { referenceAllowed, type RefParty } from './policy-reference.js';

test('differential: the model agrees with the spec-written reference on generated clusters', () => {
  const seed = process.env.POLICY_SEED ? Number(process.env.POLICY_SEED) : Math.floor(Math.random() * 2 ** 31);
  const clusters = process.env.POLICY_CLUSTERS ? Number(process.env.POLICY_CLUSTERS) : 1000;
  console.log(`policy differential: seed ${seed} (replay with POLICY_SEED=${seed}), ${clusters} clusters`);
  const rand = mulberry32(seed);
  let cases = 0;
  let allowedCount = 0;
  for (let n = 0; n < clusters; n++) {
    const { cluster, pick } = gen(rand);
    const model = buildPolicyModel(cluster);
    const issues = model.policyIssues.filter((i) => i.reason !== 'named_port_to_ipblock');
    assert.deepEqual(issues, [], `cluster ${n}: generated input is valid`);
    const v6Of = new Map(cluster.pods.map((p) => [`${p.metadata!.namespace}/${p.metadata!.name}`, p.status!.podIPs![1]!.ip]));
    const podParties: RefParty[] = cluster.pods.map((p) => ({ pod: `${p.metadata!.namespace}/${p.metadata!.name}` }));
    const parties: RefParty[] = [...podParties, ...EXTERNAL.map((ip) => ({ ip }))];
    for (const src of parties)
      for (const dst of parties) {
        if (!('pod' in src) && !('pod' in dst)) continue;
        if ('pod' in src && 'pod' in dst && src.pod === dst.pod) continue;
        // pod to pod by name talks IPv4; at random the destination is named by its IPv6 address instead
        const s = src;
        const d = 'pod' in src && 'pod' in dst && rand() < 0.3 ? { ip: v6Of.get(dst.pod)! } : dst;
        const proto = pick(PROTOS);
        const port = pick(PORTS);
        const want = referenceAllowed(cluster, s, d, proto, port);
        const got = allowed(model, s, d, proto, port);
        cases++;
        if (want) allowedCount++;
        if (got !== want)
          assert.fail(
            `seed ${seed} cluster ${n}: ${JSON.stringify(s)} -> ${JSON.stringify(d)} ${proto}/${port}: model ${got}, reference ${want}\n` +
              JSON.stringify(
                {
                  policies: cluster.policies.map((p) => ({ ns: p.metadata?.namespace, spec: p.spec })),
                  pods: cluster.pods.map((p) => [p.metadata, p.spec?.containers?.map((c) => c.ports)]),
                  ns: cluster.namespaces.map((x) => x.metadata),
                },
                null,
                1,
              ),
          );
      }
  }
  console.log(`policy differential: ${cases} cases agree (${allowedCount} allowed, ${cases - allowedCount} denied)`);
  // both verdicts must be well represented, or the generator tests nothing
  assert.ok(allowedCount > cases / 10 && cases - allowedCount > cases / 10, `allowed ${allowedCount} of ${cases}`);
});

interface MapState {
  ipcache: Map<string, string>;
  endpoints: Map<string, { entry: string; ingress: Set<string>; egress: Set<string> }>;
}

const keyStr = (k: PolicyKey): string => `${k.peer}/${k.protocol}/${k.port}-${k.endPort}`;

/** What the maps hold for a model, written from scratch. */
function mapState(m: PolicyModel): MapState {
  const s: MapState = { ipcache: new Map(), endpoints: new Map() };
  for (const [cidr, e] of m.ipcache) s.ipcache.set(cidr, `${e.identity}/${e.cidrIdentity}`);
  for (const [pod, ep] of m.endpoints)
    s.endpoints.set(pod, {
      entry: `${ep.identity} ${ep.ips.join()} ${ep.ingress.isolated} ${ep.egress.isolated}`,
      ingress: new Set(ep.ingress.keys.map(keyStr)),
      egress: new Set(ep.egress.keys.map(keyStr)),
    });
  return s;
}

test('differential: applying diff(old, new) to the maps of old gives the maps of new; an incremental build equals a full one', () => {
  const seed = process.env.POLICY_SEED ? Number(process.env.POLICY_SEED) : Math.floor(Math.random() * 2 ** 31);
  console.log(`policy diff: seed ${seed} (replay with POLICY_SEED=${seed})`);
  const rand = mulberry32(seed);
  let writes = 0;
  let steps = 0;
  for (let n = 0; n < 200; n++) {
    const g = gen(rand);
    const pick = g.pick;
    let cluster = g.cluster;
    let full = buildPolicyModel(cluster);
    let inc = full;
    for (let step = 0; step < 5; step++, steps++) {
      const { next, kind } = mutate(cluster, rand, pick, n * 5 + step);
      const m2 = buildPolicyModel({ ...next, previous: { podIdentities: full.podIdentityIds, cidrIdentities: full.cidrIdentityIds } });
      const m2inc = buildPolicyModel({ ...next, previousModel: inc });
      const where = `seed ${seed} cluster ${n} step ${step} (${kind})`;
      for (const [key, id] of m2.podIdentityIds)
        if (full.podIdentityIds.has(key)) assert.equal(id, full.podIdentityIds.get(key), `${where}: identity ${key} kept its id`);
      assert.deepEqual(mapState(m2inc), mapState(m2), `${where}: incremental build = full build`);
      assert.deepEqual(
        [...m2inc.endpoints.values()].map((e) => [e.ingress.rules, e.egress.rules]),
        [...m2.endpoints.values()].map((e) => [e.ingress.rules, e.egress.rules]),
        `${where}: incremental rules = full rules`,
      );
      const d = diffPolicyModels(full, m2);
      writes += keyWrites(d);
      // apply the diff to the old maps
      const s = mapState(full);
      for (const e of d.ipcache.upserted) s.ipcache.set(e.cidr, `${e.identity}/${e.cidrIdentity}`);
      for (const c of d.ipcache.removed) s.ipcache.delete(c);
      for (const pod of d.endpoints.removed) s.endpoints.delete(pod);
      for (const ep of d.endpoints.added)
        s.endpoints.set(ep.pod, mapState({ ...m2, endpoints: new Map([[ep.pod, ep]]), ipcache: new Map() }).endpoints.get(ep.pod)!);
      for (const c of d.endpoints.changed) {
        const cur = s.endpoints.get(c.pod)!;
        const ep = m2.endpoints.get(c.pod)!;
        cur.entry = `${ep.identity} ${ep.ips.join()} ${c.ingress.isolated?.to ?? ep.ingress.isolated} ${c.egress.isolated?.to ?? ep.egress.isolated}`;
        for (const k of c.ingress.added) cur.ingress.add(keyStr(k));
        for (const k of c.ingress.removed) cur.ingress.delete(keyStr(k));
        for (const k of c.egress.added) cur.egress.add(keyStr(k));
        for (const k of c.egress.removed) cur.egress.delete(keyStr(k));
      }
      assert.deepEqual(s, mapState(m2), `${where}: old maps + diff = new maps`);
      if (kind === 'nothing') assert.equal(keyWrites(d), 0, `${where}: no change, no writes`);
      cluster = next;
      full = m2;
      inc = m2inc;
    }
  }
  console.log(`policy diff: ${steps} changes applied, ${writes} key writes in all`);
});
