// The lab library: real packets between network namespaces on one machine (see
// test/lib/lab/lab.ts). Used by test/lab, scripts/demo.ts and the benchmarks; no node:test here.

export { Lab, Bridge, dualStackNode } from './lab/lab.js';
export type { LabOptions, LabNode, Pod, External, ExternalOptions, NodeOptions, VethOptions, VethEnd } from './lab/lab.js';
export { Netns } from './lab/netns.js';
export type { NsExecOptions, NsSpawnOptions, RouteOptions } from './lab/netns.js';
export { Cgroup, findCgroup2Mount } from './lab/cgroup.js';
export type { PodNetworkOptions, CniResult } from './lab/cni.js';
export { sweepDeadLabs, LAB_RUN_DIR } from './lab/state.js';
export { ECHO_SERVER_JS } from './lab/tools.js';
export type {
  PingOptions,
  PingResult,
  CurlOptions,
  CurlResult,
  IperfServerOptions,
  IperfClientOptions,
  IperfResult,
  EchoServerOptions,
  EchoOptions,
  EchoAnswer,
  EchoReply,
} from './lab/tools.js';
export { ManagedProcess, RunError, run, waitForPort } from './proc.js';
