// model/host-policy: Calico host endpoint policy, pure (no I/O): objects in, HostPolicyPlan out,
// and the same walk the BPF programs do. What the daemon, the writer, the CLI and the tests import.

export * from './types.js';
export { compileHostPolicy, type HostPolicyInput } from './compile.js';
export { evaluate, failsafeMatch, ruleMatches, type HostVerdict, type SetLookup } from './evaluate.js';
export { DEFAULT_FAILSAFE_INBOUND, DEFAULT_FAILSAFE_OUTBOUND, formatFailsafes, parseFailsafes } from './failsafe.js';
export { endpointForInterface } from './interface-endpoint.js';
export { matches, parseSelector, type Selector, type ParseResult } from './selector.js';
export { KNOWN_TIERS, PROFILE_DEFAULT_ALLOW, validateGlobalNetworkPolicy, validateHostEndpoint } from './validate.js';
