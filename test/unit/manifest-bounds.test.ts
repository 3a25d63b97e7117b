// Hostile manifests (issue 16, breaks 6 and 7): a YAML alias bomb, documents and files over the
// size bounds, and names past Kubernetes' limits are refused with a log line naming the file and
// document and a counted reason, while the valid objects around them are served.

import type { V1Service } from '@kubernetes/client-node';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryLogger } from '../../src/log.js';
import { buildServiceState, sortedFrontends } from '../../src/model/services.js';
import { MAX_DOCUMENT_CHARS, parseManifest } from '../../src/sources/manifest-parse.js';

import { ManifestsSource } from '../../src/sources/manifests.js';
import { Store } from '../../src/sources/store.js';

const svcYaml = (name: string, ip: string, extra = '') =>
  `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\nspec:\n  clusterIP: ${ip}\n  ports:\n    - name: http\n      port: 80\n${extra}`;
const sliceYaml = (svc: string, ip: string) =>
  `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: ${svc}-1\n  labels: {kubernetes.io/service-name: ${svc}}\n` +
  `addressType: IPv4\nendpoints: [{addresses: ["${ip}"], conditions: {ready: true}}]\nports: [{name: http, port: 8080}]\n`;

/** Billion laughs: ten aliases of ten aliases, nine deep, under a field no validation reads: 10^9 strings from ~700 characters. */
function aliasBomb(name: string): string {
  let y = `  bomb:\n    l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n`;
  for (let i = 1; i <= 9; i++) y += `    l${i}: &l${i} [${Array.from({ length: 10 }, () => `*l${i - 1}`).join(',')}]\n`;
  return svcYaml(name, '198.19.0.66', y);
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'weir-manifest-bounds-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Starts a manifests source on `dir` into a store, stops it, and returns what it kept and logged. */
async function load(dir: string, opts: { maxFileBytes?: number } = {}) {
  const log = memoryLogger();
  const store = new Store();
  const src = new ManifestsSource({ dir, log, rescanIntervalMs: 0, ...opts });
  await src.start((e) => {
    if (e.type !== 'synced') store.apply(e);
  });
  await src.stop();
  const rejected = log.lines.filter((l) => l.startsWith('warn manifests: rejected'));
  return { store, rejected, counters: Object.fromEntries(src.counters.rejected) };
}

const frontends = (store: Store) => sortedFrontends(buildServiceState(store, { nodeName: 'n1', nodeAddresses: ['198.18.0.1'] })).map((f) => f.id);

test('a billion-laughs alias bomb is refused, named and counted; the services around it are served', async () => {
  await withDir(async (dir) => {
    await writeFile(join(dir, 'a.yaml'), [svcYaml('before', '198.19.0.1'), aliasBomb('bomb'), svcYaml('after', '198.19.0.2')].join('---\n'));
    await writeFile(join(dir, 'b.yaml'), [svcYaml('web', '198.19.0.3'), sliceYaml('web', '198.19.128.1')].join('---\n'));
    const rssBefore = process.memoryUsage().rss;
    const { store, rejected, counters } = await load(dir);
    const grownMiB = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
    console.log(`# alias bomb: RSS grew ${grownMiB.toFixed(0)} MiB while loading`);
    assert.deepEqual(counters, { 'yaml-aliases': 1 });
    assert.equal(rejected.length, 1, rejected.join('\n'));
    assert.match(rejected[0]!, new RegExp(`file=${join(dir, 'a.yaml')} reason=yaml-aliases doc=2 detail=.*aliases expand the document past`));
    assert.deepEqual([...store.services.keys()].sort(), ['default/after', 'default/before', 'default/web']);
    assert.deepEqual(frontends(store), ['198.19.0.1:80/TCP', '198.19.0.2:80/TCP', '198.19.0.3:80/TCP']);
    // 10^9 strings would be gigabytes; refusing early keeps it to what the test itself allocates
    assert.ok(grownMiB < 200, `RSS grew ${grownMiB.toFixed(0)} MiB`);
  });
});

test('anchors used as intended still load', () => {
  const shared = parseManifest(
    'apiVersion: v1\nkind: Service\nmetadata: {name: s, labels: &l {app: web, tier: front}}\nspec:\n  clusterIP: 198.19.0.1\n  selector: *l\n  ports: [{port: 80}]\n',
    false,
  );
  assert.deepEqual(shared.rejects, []);
  assert.deepEqual((shared.objects[0]!.object as V1Service).spec, { clusterIP: '198.19.0.1', selector: { app: 'web', tier: 'front' }, ports: [{ port: 80 }] });
});

test('a document over the size bound is not parsed; a file over the file bound is not read; the rest is served', async () => {
  await withDir(async (dir) => {
    const big = svcYaml('big', '198.19.0.9', `  padding: "${'x'.repeat(MAX_DOCUMENT_CHARS)}"\n`);
    await writeFile(join(dir, 'a.yaml'), [svcYaml('ok', '198.19.0.1'), big].join('---\n'));
    await writeFile(join(dir, 'b.yaml'), svcYaml('small', '198.19.0.2'));
    // the file bound made small for the test: a.yaml (one document over its bound) is read
    const maxFileBytes = MAX_DOCUMENT_CHARS + 4096;
    await writeFile(join(dir, 'c.yaml'), svcYaml('in-a-big-file', '198.19.0.3') + '#'.repeat(maxFileBytes));
    const { store, rejected, counters } = await load(dir, { maxFileBytes });
    assert.deepEqual(counters, { 'too-large': 2 });
    assert.ok(
      rejected.some((l) => l.includes('a.yaml') && l.includes('doc=2') && l.includes(`more than ${MAX_DOCUMENT_CHARS}`)),
      rejected.join('\n'),
    );
    assert.ok(
      rejected.some((l) => l.includes('c.yaml') && l.includes(`more than ${maxFileBytes}`)),
      rejected.join('\n'),
    );
    assert.deepEqual([...store.services.keys()].sort(), ['default/ok', 'default/small']);
  });
});

test("names and fields past Kubernetes' limits are refused; the valid objects are kept", async () => {
  await withDir(async (dir) => {
    const long = 'a'.repeat(200_000);
    const docs = [
      svcYaml(long, '198.19.0.9'),
      svcYaml('x'.repeat(64), '198.19.0.9'), // Service names are DNS-1035 labels: 63 at most
      svcYaml('Upper', '198.19.0.9'),
      svcYaml('1starts-with-digit', '198.19.0.9'),
      svcYaml('ns-too-long', '198.19.0.9').replace('metadata:\n', `metadata:\n  namespace: ${'n'.repeat(64)}\n`),
      svcYaml('label-too-long', '198.19.0.9').replace('metadata:\n', `metadata:\n  labels: {app: ${'v'.repeat(64)}}\n`),
      svcYaml('bad-port-name', '198.19.0.9').replace('name: http', 'name: HTTP_PORT'),
      `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: ${'s'.repeat(254)}}\naddressType: IPv4\nendpoints: []\n`,
      `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: many}\naddressType: IPv4\nendpoints: [${Array.from({ length: 1001 }, () => '{addresses: [198.19.128.1]}').join(',')}]\n`,
      `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${'n'.repeat(64)}}\n`,
      `apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {${'k'.repeat(64)}: v}}\n`,
      svcYaml('x'.repeat(63), '198.19.0.1'),
      `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${'n'.repeat(63)}}\n`,
      `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: ${'s'.repeat(253)}}\naddressType: IPv4\nendpoints: []\n`,
    ];
    await writeFile(join(dir, 'a.yaml'), docs.join('---\n'));
    const { store, rejected, counters } = await load(dir);
    assert.deepEqual(counters, { 'invalid-service': 7, 'invalid-endpointslice': 2, 'invalid-object': 2 });
    assert.deepEqual([...store.services.keys()], [`default/${'x'.repeat(63)}`]);
    assert.equal(store.size('Namespace'), 1);
    assert.equal(store.size('EndpointSlice'), 1);
    assert.equal(store.size('Pod'), 0);
    // one line each, the long name cut to its start and its length
    assert.equal(rejected.length, 11);
    assert.ok(rejected[0]!.length < 1000, rejected[0]);
    assert.match(rejected[0]!, /doc=1 .*metadata\.name: 200000 characters, more than 63/);
    assert.ok(
      rejected.some((l) => /doc=9 .*endpoints: 1001 items, more than 1000/.test(l)),
      rejected.join('\n'),
    );
  });
});
