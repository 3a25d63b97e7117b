// Issue 15 (CLI polish): `weir diff --kubeconfig` on a lab node whose daemon reads the fake API
// server (in its own namespace, as in test/lab/kube-*.test.ts). In sync: no difference, exit 0.
// The daemon stopped, a Service's port and an EndpointSlice's endpoints changed in the server:
// the diff names exactly those frontends (missing, extra, different backends), exit 2. The API
// server down: one line, exit 1. And on the same live state, `-o yaml` of several commands
// parses to exactly what `-o json` prints.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { load } from 'js-yaml';
import type { DiffResult } from '../../src/cli/diff.js';
import { runCleanups } from '../lib/cleanup.js';
import type { Pod } from '../lib/lab.js';
import { binWeir } from '../lib/paths.js';
import { endpointSlice, kubeLab, mapsView, service, serverView, until, type KubeLab } from '../lab/kube-lab.js';

const WEB_IP = '198.19.200.1';
const DB_IP = '198.19.200.2';

describe('weir diff against the API source', () => {
  let k: KubeLab;
  let pods: Pod[];

  const weir = async (args: string[]) => {
    const r = await k.node.ns.exec(binWeir, [...args, '--bpf-root', k.lab.bpffs, '--instance', k.weir.instance], { check: false, timeoutMs: 30_000 });
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  };
  const diff = async (extra: string[] = []) => {
    const r = await weir(['diff', '--kubeconfig', k.kubeconfig, '--node-name', k.node.name, ...extra]);
    return { ...r, json: extra.includes('json') && r.code !== 1 ? (JSON.parse(r.stdout) as DiffResult) : undefined };
  };

  before(async () => {
    k = await kubeLab('cli-diff-api');
    pods = [await k.lab.pod(k.node, 'be-a'), await k.lab.pod(k.node, 'be-b'), await k.lab.pod(k.node, 'be-c')];
    await k.server.apply([
      service('default', 'web', WEB_IP),
      endpointSlice('default', 'web', 'web-1', [pods[0]!.ip, pods[1]!.ip]),
      service('default', 'db', DB_IP, 5432, 5432),
      endpointSlice('default', 'db', 'db-1', [pods[2]!.ip], 5432),
    ]);
    await k.weir.start(20_000);
    let want = {};
    await until(
      async () => JSON.stringify(mapsView(k.weir.pinDir)) === JSON.stringify((want = await serverView(k.server))),
      () => `maps ${JSON.stringify(mapsView(k.weir.pinDir))} never equal the server's ${JSON.stringify(want)}`,
      10_000,
      50,
    );
  });
  after(async () => {
    await k?.lab.destroy();
    await runCleanups();
  });

  test('in sync with the API server: no difference, exit 0', async () => {
    const r = await diff(['-o', 'json']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(r.json!.differences, []);
    assert.equal(r.json!.desiredFrontends, 2);
    assert.equal(r.json!.liveFrontends, 2);
    const t = await diff();
    assert.equal(t.code, 0, t.stderr);
    assert.equal(t.stdout, '0 differences (desired 2 frontends, live 2)\n');
  });

  test('-o yaml is the -o json document, for every command tried on live state', async () => {
    // not `maps`, `counters`, `ct list`, `nat list`: their figures move between two runs (seen:
    // the conntrack map's entry count), so the two documents may honestly differ
    const commands: string[][] = [
      ['services'],
      ['nodes'],
      ['identities'],
      ['ipcache'],
      ['policy'],
      ['affinity', 'list'],
      ['ifaces'],
      ['explain', pods[0]!.ip, WEB_IP, '80/tcp'],
      ['diff', '--kubeconfig', k.kubeconfig, '--node-name', k.node.name],
    ];
    for (const c of commands) {
      const j = await weir([...c, '-o', 'json']);
      const y = await weir([...c, '-o', 'yaml']);
      assert.equal(j.code, 0, `${c.join(' ')} -o json: ${j.stderr}`);
      assert.equal(y.code, 0, `${c.join(' ')} -o yaml: ${y.stderr}`);
      assert.deepEqual(load(y.stdout), JSON.parse(j.stdout), c.join(' '));
      console.log(`${c.join(' ')}: ${j.stdout.length} bytes of JSON, ${y.stdout.length} of YAML`);
    }
    // YAML, not JSON printed under another name
    const y = await weir(['services', '-o', 'yaml']);
    assert.match(y.stdout, new RegExp(`^- family: IPv4\n  frontend: ${WEB_IP.replaceAll('.', '\\.')}:80$`, 'm'));
    assert.throws(() => JSON.parse(y.stdout));
  });

  test('the daemon stopped, a Service port and an EndpointSlice changed in the server: the diff names them, exit 2', async () => {
    await k.weir.terminate();
    await k.server.apply([service('default', 'db', DB_IP, 5433, 5432), endpointSlice('default', 'web', 'web-1', [pods[0]!.ip, pods[2]!.ip])]);
    const r = await diff(['-o', 'json']);
    assert.equal(r.code, 2, r.stderr + r.stdout);
    const got = r.json!.differences.map((d) => ({ kind: d.kind, frontend: d.frontend, service: d.service, fields: d.fields }));
    got.sort((a, b) => a.frontend.localeCompare(b.frontend));
    assert.deepEqual(got, [
      { kind: 'different', frontend: `${WEB_IP}:80/tcp/internal`, service: 'default/web', fields: ['backends'] },
      { kind: 'extra', frontend: `${DB_IP}:5432/tcp/internal`, service: undefined, fields: undefined },
      { kind: 'missing', frontend: `${DB_IP}:5433/tcp/internal`, service: 'default/db', fields: undefined },
    ]);
    const web = r.json!.differences.find((d) => d.kind === 'different')!;
    assert.deepEqual(web.desired!.backends, [`${pods[0]!.ip}:8080[local]`, `${pods[2]!.ip}:8080[local]`].sort());
    assert.deepEqual(web.live!.backends, [`${pods[0]!.ip}:8080[local]`, `${pods[1]!.ip}:8080[local]`].sort());
    const t = await diff();
    console.log(t.stdout);
    assert.equal(t.code, 2);
    assert.match(t.stdout, /^3 differences \(desired 2 frontends, live 2\)\n/);
    assert.match(t.stdout, new RegExp(`^different +${WEB_IP.replaceAll('.', '\\.')}:80/tcp/internal +default/web +backends`, 'm'));
  });

  test('the API server down: one line naming what failed, exit 1', async () => {
    await k.server.stop();
    const r = await diff();
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /^weir: listing Service from the API server: .+\n$/);
    console.log(r.stderr.trim());
  });
});
