// model/policy/describe: a built PolicyModel as the lines `weir policy` and `weir identities`
// print: per endpoint the policies that isolate it and its rules with the identities they name.
// Pure text from the model; the CLI only chooses which endpoints (the local ones) to show.

import { identityName, IDENTITY_ANY } from './identities.js';
import type { AllowRule, DirectionPolicy, PolicyModel } from './policy-types.js';

function ports(r: AllowRule): string {
  if (r.protocol === 'any') return 'any protocol, any port';
  if (r.port === 0 && r.endPort === 65535) return `${r.protocol} any port`;
  return r.port === r.endPort ? `${r.protocol} ${r.port}` : `${r.protocol} ${r.port}-${r.endPort}`;
}

function peer(model: PolicyModel, r: AllowRule): string {
  const name = (id: number): string => `${id} ${identityName(id, model.podIdentities, model.cidrIdentities)}`;
  if (r.peer.kind === 'any') return 'anywhere';
  const ids = r.peer.identities.length === 0 ? 'no identity yet' : r.peer.identities.map(name).join('; ');
  if (r.peer.kind === 'cidr') return `${r.peer.cidr}${r.peer.except.length ? ` except ${r.peer.except.join(',')}` : ''} (${ids})`;
  return `pods (${ids})`;
}

function direction(model: PolicyModel, label: 'ingress' | 'egress', d: DirectionPolicy): string[] {
  if (!d.isolated) return [`  ${label}: not isolated, everything allowed`];
  const out = [`  ${label}: isolated by ${d.policies.join(', ')}; ${d.keys.length} keys`];
  if (d.rules.length === 0) out.push('    (no rule: default deny)');
  const word = label === 'ingress' ? 'from' : 'to';
  for (const r of d.rules) out.push(`    ${r.policy} ${label}[${r.rule}]: ${word} ${peer(model, r)}, ${ports(r)}`);
  return out;
}

/** `weir policy` for one endpoint ('ns/name'), or a line saying why there is none. */
export function describeEndpoint(model: PolicyModel, pod: string): string[] {
  const ep = model.endpoints.get(pod);
  if (!ep) {
    const node = model.hostNetworkPods.get(pod);
    return [
      node !== undefined
        ? `${pod}: host network on ${node || '?'}, not policed (its traffic is the node's)`
        : `${pod}: no endpoint (unknown pod or no address)`,
    ];
  }
  const head = `${pod}  identity ${ep.identity} ${identityName(ep.identity, model.podIdentities, model.cidrIdentities)}  ${ep.ips.join(',')}  node ${ep.node || '?'}`;
  return [head, ...direction(model, 'ingress', ep.ingress), ...direction(model, 'egress', ep.egress)];
}

/** `weir identities`: every identity in use with its id, sorted by id, and how many endpoints have it. */
export function describeIdentities(model: PolicyModel): string[] {
  const count = new Map<number, number>();
  for (const ep of model.endpoints.values()) count.set(ep.identity, (count.get(ep.identity) ?? 0) + 1);
  const ids = [...model.podIdentities.keys(), ...model.cidrIdentities.keys()].sort((a, b) => a - b);
  return ids
    .filter((id) => id !== IDENTITY_ANY)
    .map((id) => `${id}\t${identityName(id, model.podIdentities, model.cidrIdentities)}\t${count.get(id) ?? 0} endpoints`);
}
