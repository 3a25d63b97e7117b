// Issue 15, must-show 1: weir as the DaemonSet runs it, in a PID namespace of its own (and a
// cgroup and cgroup namespace of its own, as a container on cgroup v2), with the node's /proc
// bind-mounted at a /nodeproc of its own as the manifest mounts it, and only the capabilities
// deploy/weir.yaml gives it. The DNS-after-backend-removal scenario of the services issue: a
// pod's connected UDP socket to a ClusterIP (the socket LB connected it to one backend) is
// destroyed when that backend goes. And the bug it fixes: with --host-proc left at the
// namespace's own /proc, weir warns (and counts) that it cannot see the pods, and the socket
// stays. The running-kube-proxy check sees a kube-proxy of the node's only through --host-proc.
//
// Every mount is made in a private mount namespace of the daemon's (unshare --mount): none
// reaches the host's mount table, and all go with the daemon.

import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { V1Container } from '@kubernetes/client-node';
// the YAML parser client-node uses
import * as jsYaml from 'js-yaml';
import { runCleanups } from '../lib/cleanup.js';
import { binWeir, repoRoot } from '../lib/paths.js';
import { spawnManaged, type ManagedProcess } from '../lib/proc.js';
import { findCgroup2Mount, Lab, type Cgroup, type LabNode, type Pod } from '../lib/lab.js';
import { endpointSlice, service, WeirNode, type EndpointSpec, type PortSpec } from '../lib/weir-node.js';

const VIP = '198.19.0.53';
const PORTS: PortSpec[] = [{ name: 'dns', port: 53, targetPort: 8080, protocol: 'UDP' }];
const METRICS = '127.0.0.1:19745';

/** Capability numbers (linux/capability.h) of those the manifest may name. */
const CAP_NUMBER: Record<string, number> = {
  NET_ADMIN: 12,
  NET_RAW: 13,
  SYS_CHROOT: 18,
  SYS_PTRACE: 19,
  SYS_ADMIN: 21,
  SYS_RESOURCE: 24,
  PERFMON: 38,
  BPF: 39,
};

/** The capabilities deploy/weir.yaml gives the weir container (instead of privileged). */
function manifestCapabilities(): string[] {
  const docs = jsYaml.loadAll(readFileSync(join(repoRoot, 'deploy', 'weir.yaml'), 'utf8')) as Array<{ kind: string; spec?: unknown }>;
  const ds = docs.find((d) => d.kind === 'DaemonSet') as { spec: { template: { spec: { containers: V1Container[] } } } };
  const weir = ds.spec.template.spec.containers.find((c) => c.name === 'weir')!;
  assert.deepEqual(weir.securityContext?.capabilities?.drop, ['ALL']);
  return weir.securityContext!.capabilities!.add!;
}

/** The manifest's /nodeproc: the node's /proc read-only, its /proc/sys/net writable on top ($0: where). */
const NODEPROC_MOUNTS = 'mount --bind /proc "$0"; mount -o remount,bind,ro "$0"; mount --bind /proc/sys/net "$0/sys/net"';

/**
 * What a container runtime gives weir's container, in the order it does: the container's own
 * cgroup, then new mount, cgroup and PID namespaces (weir is PID 1 of its own); the node's
 * /proc is bind-mounted at `nodeproc` before the namespace's own /proc hides it; last, every
 * capability but the manifest's is dropped (root's capabilities after exec are the bounding set).
 */
function containerWrapper(daemonCgroup: Cgroup, nodeproc: string, caps: string[]): string[] {
  const script = [
    'set -e',
    'cg=$1; np=$2; caps=$3; shift 3',
    'echo $$ > "$cg/cgroup.procs"',
    'exec unshare --mount --propagation private --cgroup --pid --fork --kill-child ' +
      `sh -c 'set -e; b=$1; shift; ${NODEPROC_MOUNTS}; mount -t proc proc /proc; exec setpriv --bounding-set "$b" --inh-caps -all -- "$@"' "$np" "$caps" "$@"`,
  ].join('\n');
  const bounding = ['-all', ...caps.map((c) => `+${c.toLowerCase()}`)].join(',');
  return ['sh', '-c', script, 'sh', daemonCgroup.path, nodeproc, bounding];
}

describe('weir in a PID namespace of its own (as in the DaemonSet)', () => {
  let lab: Lab;
  let node: LabNode;
  let backends: Pod[];
  let client: Pod;
  let pods: Cgroup;
  let daemonCgroup: Cgroup;
  let caps: string[];
  /** a process named kube-proxy on the node, for the running-kube-proxy check */
  let kubeProxy: ManagedProcess;
  let weir: WeirNode;
  let nodeproc: string;
  const slice = (eps: EndpointSpec[]) => endpointSlice({ name: 'dns-1', service: 'dns', ports: PORTS, endpoints: eps });
  const all = () => backends.map((b) => ({ ip: b.ip, node: node.name }));

  before(async () => {
    lab = await Lab.create({ name: 'pid-namespace' });
    node = await lab.node('node1', { address: '198.18.0.1/24', podSubnet: '198.18.1.0/24' });
    backends = [];
    for (const n of ['dns-a', 'dns-b', 'dns-c']) backends.push(await lab.pod(node, n));
    client = await lab.pod(node, 'client');
    pods = await lab.cgroup('pods');
    daemonCgroup = await lab.cgroup('weir-container');
    await Promise.all(backends.map((b) => b.ns.echoServer({ name: b.name, port: 8080 })));
    const fake = join(lab.dir, 'kube-proxy');
    copyFileSync('/bin/sleep', fake);
    chmodSync(fake, 0o755);
    kubeProxy = spawnManaged(fake, ['infinity'], { label: 'a process named kube-proxy' });
    nodeproc = join(lab.dir, 'nodeproc');
    mkdirSync(nodeproc);
    caps = manifestCapabilities();
    const wrapper = containerWrapper(daemonCgroup, nodeproc, caps);
    weir = await WeirNode.create(lab, node, { cgroup: pods, connectTimeLb: 'on', metricsAddress: METRICS, wrapper });
    weir.writeManifest('dns.yaml', [service({ name: 'dns', clusterIP: VIP, ports: PORTS })]);
    weir.writeManifest('dns-slice.yaml', [slice(all())]);
  });
  after(async () => {
    await lab?.destroy();
    await runCleanups();
  });

  /** The daemon's pids from the node's namespace down to its own (unshare's forked child). */
  const daemonPid = () => {
    const unshare = weir.process!.pid; // nsenter and sh exec'd it
    return readFileSync(`/proc/${unshare}/task/${unshare}/children`, 'utf8').trim().split(' ')[0]!;
  };
  const daemonStatus = (field: string) => new RegExp(`^${field}:\\s+(.*)$`, 'm').exec(readFileSync(`/proc/${daemonPid()}/status`, 'utf8'))![1]!.trim();
  /** `weir ARGS -o json` in the daemon's namespaces, as `kubectl exec ds/weir -- weir ...` runs it */
  const execInPod = async <T>(...args: string[]): Promise<T> => {
    const r = await weir.ns.exec('nsenter', ['-t', daemonPid(), '--mount', '--pid', '--', binWeir, ...args, '-o', 'json']);
    return JSON.parse(r.stdout) as T;
  };

  /** weir_errors_total{kind="host_proc"} from the daemon's /metrics (0 when absent). */
  const hostProcErrors = async () => {
    const r = await weir.http('/metrics');
    assert.equal(r.status, 200);
    const m = /^weir_errors_total\{kind="host_proc"\} (\d+)$/m.exec(r.body);
    return m ? Number(m[1]) : 0;
  };

  /**
   * A DNS client's connected UDP socket to the ClusterIP; its backend is removed. Returns
   * what the clean-up did and the flow, still running, for the caller's assertions.
   */
  const removeTheFlowsBackend = async () => {
    const flow = weir.flow(client.ns, VIP, 53, { proto: 'udp', seconds: 0, interval: 20, cgroup: pods });
    const used = await flow.connectedBackend();
    const destroyed0 = weir.counter('sock', 'sock_destroyed');
    const m0 = weir.mark();
    await weir.apply('dns-slice.yaml', [slice(all().filter((e) => e.ip !== backends.find((b) => b.name === used)!.ip))]);
    const cleanup = await weir.waitFor('cleanup', {}, 5000, m0);
    console.log(`# clean-up: ${JSON.stringify(cleanup)}`);
    return { flow, used, cleanup, destroyed: () => weir.counter('sock', 'sock_destroyed') - destroyed0 };
  };

  test("with the node's /proc at --host-proc: the pod's connected UDP socket to the removed backend is destroyed", async () => {
    weir.configure({ extraArgs: ['--host-proc', nodeproc] });
    // the pods' host-side interfaces get accept_local from weir, written through --host-proc
    const acceptLocal = async () => {
      const r = await weir.ns.exec('sh', ['-c', backends.map((b) => `cat /proc/sys/net/ipv4/conf/${b.hostIfname}/accept_local`).join('; ')]);
      return r.stdout.trim().split('\n');
    };
    for (const b of backends) await weir.ns.exec('sysctl', ['-qw', `net.ipv4.conf.${b.hostIfname}.accept_local=0`]);
    assert.deepEqual(await acceptLocal(), ['0', '0', '0']);
    const ready = await weir.start();
    assert.equal(weir.events('host proc blind').length, 0, 'no warning: the node is visible');
    assert.equal(await hostProcErrors(), 0);
    const nspid = daemonStatus('NSpid').split(/\s+/);
    console.log(`# daemon NSpid ${nspid.join(' ')}, CapEff ${daemonStatus('CapEff')} (${caps.join(',')}); ready: ${JSON.stringify(ready)}`);
    assert.deepEqual(nspid.slice(1), ['1'], 'the daemon is PID 1 of a PID namespace of its own');
    // those of the manifest this machine has (its bounding set lacks SYS_RESOURCE: kernels
    // since 5.11 charge BPF memory to the memory cgroup, not RLIMIT_MEMLOCK)
    const ours = BigInt(`0x${/^CapBnd:\s+(\S+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]}`);
    const want = caps.reduce((m, c) => m | (1n << BigInt(CAP_NUMBER[c]!)), 0n) & ours;
    assert.equal(BigInt(`0x${daemonStatus('CapEff')}`), want, "the daemon runs with the manifest's capabilities only");
    assert.deepEqual(await acceptLocal(), ['1', '1', '1'], "set through the node's /proc/sys/net under /nodeproc");
    const { flow, used, cleanup, destroyed } = await removeTheFlowsBackend();
    // the pods' cgroup paths read `/../pods` from weir's cgroup namespace: weir found where its
    // own root sits to tell (cgroup-members.ts)
    const root = weir.events('cgroup namespace root found')[0];
    assert.equal(root?.path, `/${relative(findCgroup2Mount()!, daemonCgroup.path)}`, "weir's cgroup namespace root");
    const warnings = () => weir.events().filter((l) => l.level === 'warn');
    assert.ok(Number(cleanup.socketNetns) >= 2, `the iterator ran in the host's and the pod's namespaces: ${JSON.stringify([cleanup, ...warnings()])}`);
    const err = await flow.waitLine(/^error /);
    assert.match(err, /ECONNABORTED/, 'the application sees its socket destroyed');
    assert.equal(destroyed(), 1, "exactly the flow's socket was destroyed");
    const r = await flow.stop();
    assert.deepEqual(r.servers, [[used, r.received]], 'every reply came from the removed backend, none after');
    await weir.apply('dns-slice.yaml', [slice(all())]);
    // the node's kube-proxy is seen, by the node's pid; by the CLI in the pod too, given the mount
    const kp = await weir.waitFor('kube-proxy-running');
    assert.equal(kp.pids, String(kubeProxy.pid));
    type Detected = { processes: Array<{ pid: number }> };
    assert.deepEqual(
      (await execInPod<Detected>('kube-proxy', 'detect', '--host-proc', nodeproc)).processes.map((p) => p.pid),
      [kubeProxy.pid],
    );
    assert.deepEqual((await execInPod<Detected>('kube-proxy', 'detect')).processes, [], "the pod's own /proc shows no kube-proxy");
    // nothing the manifest's capabilities lack failed (attach, setns, sysctls, maps)
    assert.deepEqual(
      warnings().filter((l) => l.event !== 'kube-proxy-running'),
      [],
      'no other warning',
    );
    assert.equal((await weir.terminate()).code, 0);
  });

  test("with --host-proc at the namespace's own /proc: weir warns and counts it, and the socket stays (the bug)", async () => {
    if (weir.process?.running) await weir.kill9(); // the test before failed
    weir.configure({ extraArgs: ['--host-proc', '/proc'] });
    await weir.start();
    const warning = await weir.waitFor('host proc blind');
    assert.match(warning.message ?? '', /--host-proc=\/nodeproc/, 'the warning says what to mount');
    assert.equal(weir.events('host proc blind').length, 1, 'one warning');
    assert.equal(await hostProcErrors(), 1, 'counted once as weir_errors_total{kind="host_proc"}');
    const { flow, used, cleanup, destroyed } = await removeTheFlowsBackend();
    assert.equal(Number(cleanup.socketNetns), 1, `the iterator ran in weir's own namespace only: ${JSON.stringify(cleanup)}`);
    // the socket is still connected to the removed backend, which still answers it
    const n = flow.replies();
    await flow.waitReplies(n + 10);
    const r = await flow.stop();
    assert.equal(r.error, undefined, 'no error: the socket was not destroyed');
    assert.ok(
      r.servers.every(([s]) => s === used),
      `the replies kept coming from the removed backend: ${JSON.stringify(r.servers)}`,
    );
    assert.equal(destroyed(), 0, 'no socket destroyed');
    // nor is the node's kube-proxy seen
    await weir.waitFor('kube-proxy-state');
    assert.equal(weir.events('kube-proxy-running').length, 0, 'kube-proxy not seen');
    await weir.apply('dns-slice.yaml', [slice(all())]);
  });
});
