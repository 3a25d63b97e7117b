// Manifests directory source: multi-document YAML, JSON, Lists, validation at the boundary,
// and incremental application of edits and removals through the watcher.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, rename, rm, writeFile, unlink, cp } from 'node:fs/promises';
import { watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManifestsSource } from '../../src/sources/manifests.js';
import { memoryLogger } from '../../src/log.js';
import { Store } from '../../src/sources/store.js';
import type { SourceEvent } from '../../src/sources/types.js';
import { buildServiceState, sortedFrontends } from '../../src/model/services.js';
import { parseManifest } from '../../src/sources/manifest-parse.js';

const FIXTURES = new URL('../../../test/fixtures/manifests/', import.meta.url).pathname;

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'weir-manifests-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function harness(dir: string, opts: { rescanIntervalMs?: number; debounceMs?: number } = {}) {
  const log = memoryLogger();
  const events: SourceEvent[] = [];
  const store = new Store();
  const src = new ManifestsSource({ dir, log, debounceMs: opts.debounceMs ?? 50, rescanIntervalMs: opts.rescanIntervalMs ?? 0 });
  const sink = (e: SourceEvent) => {
    events.push(e);
    if (e.type !== 'synced') store.apply(e);
  };
  return { log, events, store, src, start: () => src.start(sink) };
}

const summary = (events: SourceEvent[]) => events.map((e) => (e.type === 'synced' ? 'synced' : `${e.type} ${e.kind} ${e.key}`));

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const svcYaml = (name: string, ip: string, port: number | string = 80, ns?: string) => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
${ns ? `  namespace: ${ns}\n` : ''}spec:
  clusterIP: ${ip}
  ports:
    - name: http
      port: ${port}
`;

test('fixtures: multi-doc YAML, a List and JSON load into a working service model', async () => {
  const h = harness(FIXTURES);
  await h.start();
  await h.src.stop();
  assert.deepEqual(summary(h.events), [
    'upsert Service demo/lonely',
    'upsert Service demo/echo',
    'upsert EndpointSlice demo/echo-x1',
    'upsert Service demo/web',
    'upsert EndpointSlice demo/web-abc12',
    'synced',
  ]);
  const first = h.events[0]!;
  assert.ok(first.type !== 'synced' && first.origin.endsWith('no-endpoints.json'));
  assert.equal(h.src.counters.filesLoaded, 3);
  assert.equal(h.src.counters.objectsApplied, 5);
  assert.equal(h.src.counters.rejected.size, 0);
  const state = buildServiceState(h.store, { nodeName: 'node-a', nodeAddresses: ['198.18.0.1'] });
  assert.deepEqual(
    sortedFrontends(state).map((f) => `${f.kind} ${f.id} ${f.reject ? 'reject' : f.backends.map((b) => `${b.address}:${b.port}`).join(',') || 'drop'}`),
    [
      'NodePort 198.18.0.1:30007/TCP drop',
      'ClusterIP 198.19.0.10:80/TCP 198.18.1.10:8080,198.18.1.11:8080,198.18.2.10:8080',
      'ClusterIP 198.19.0.11:7/TCP 198.18.2.20:7007',
      'ClusterIP 198.19.0.12:53/UDP reject',
    ],
  );
});

test('parseManifest: namespace defaults, apiVersion filled in, empty documents ignored', () => {
  const p = parseManifest(`---\n# just a comment\n---\nkind: Service\nmetadata: {name: a}\nspec: {clusterIP: 198.19.0.1, ports: [{port: 80}]}\n...\n`, false);
  assert.equal(p.rejects.length, 0);
  assert.equal(p.objects.length, 1);
  assert.equal(p.objects[0]!.key, 'default/a');
  assert.equal(p.objects[0]!.object.metadata!.namespace, 'default');
  assert.equal(p.objects[0]!.object.apiVersion, 'v1');
  const ns = parseManifest(`apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n`, false);
  assert.equal(ns.objects[0]!.key, 'demo');
});

test('malformed files and objects are logged, counted and skipped; the rest keeps working', async () => {
  await withDir(async (dir) => {
    await writeFile(join(dir, 'good.yaml'), svcYaml('good', '198.19.0.1'));
    await writeFile(join(dir, 'broken.yaml'), `${svcYaml('before', '198.19.0.2')}---\nkind: Service\nmetadata: {name: x\n  spec: [\n`);
    await writeFile(
      join(dir, 'mixed.yaml'),
      [
        svcYaml('bad-port', '198.19.0.3', 70000),
        svcYaml('nan-port', '198.19.0.4', 'abc'),
        svcYaml('bad-ip', '198.19.0.300'),
        'apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\nspec: {ports: [{port: 80}]}\n',
        'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n',
        'apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s, labels: {kubernetes.io/service-name: ok}}\naddressType: IPv4\nendpoints: [{addresses: [garbage]}]\n',
        'apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: t}\naddressType: IPv7\nendpoints: []\n',
        svcYaml('ok', '198.19.0.5'),
      ].join('---\n'),
    );
    await writeFile(join(dir, 'list.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ kind: 'Pod', metadata: { name: 'p' } }, 42] }));
    const h = harness(dir);
    await h.start();
    await h.src.stop();
    assert.deepEqual(summary(h.events), [
      'upsert Service default/before',
      'upsert Service default/good',
      'upsert Pod default/p',
      'upsert Service default/ok',
      'synced',
    ]);
    assert.deepEqual(Object.fromEntries([...h.src.counters.rejected].sort()), {
      'invalid-endpointslice': 2,
      'invalid-service': 3,
      'missing-name': 1,
      'not-an-object': 1,
      'unknown-kind': 1,
      'yaml-syntax': 1,
    });
    const warn = h.log.lines.filter((l) => l.startsWith('warn manifests: rejected'));
    assert.equal(warn.length, 9);
    assert.ok(
      warn.some(
        (l) => l.includes(`file=${join(dir, 'mixed.yaml')}`) && l.includes('reason=invalid-service') && l.includes('spec.ports[0].port: invalid port 70000'),
      ),
      warn.join('\n'),
    );
    assert.ok(warn.some((l) => l.includes('reason=yaml-syntax') && l.includes('broken.yaml')));
    assert.ok(
      warn.some((l) => l.includes('reason=invalid-endpointslice') && l.includes('invalid address \\"garbage\\"')),
      warn.join('\n'),
    );
  });
});

test('watch: add, edit and remove files apply incrementally', async () => {
  await withDir(async (dir) => {
    await writeFile(join(dir, 'a.yaml'), svcYaml('a', '198.19.0.1') + '---\n' + svcYaml('b', '198.19.0.2'));
    const h = harness(dir);
    try {
      await h.start();
      assert.deepEqual(summary(h.events), ['upsert Service default/a', 'upsert Service default/b', 'synced']);
      h.events.length = 0;

      // Edit: a changes, b is dropped, c is new; unchanged objects are not re-emitted.
      await writeFile(join(dir, 'a.yaml'), svcYaml('a', '198.19.0.11') + '---\n' + svcYaml('c', '198.19.0.3'));
      await until(() => h.events.length >= 3, 'edit events');
      assert.deepEqual(summary(h.events).sort(), ['delete Service default/b', 'upsert Service default/a', 'upsert Service default/c']);
      assert.equal(h.store.get('Service', 'default/a')!.spec!.clusterIP, '198.19.0.11');
      h.events.length = 0;

      // New file.
      const d = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'd' }, spec: { clusterIP: '198.19.0.4', ports: [{ port: 80 }] } };
      await writeFile(join(dir, 'd.json'), JSON.stringify(d));
      await until(() => h.events.length >= 1, 'new file');
      assert.deepEqual(summary(h.events), ['upsert Service default/d']);
      h.events.length = 0;

      // A bad edit keeps the last good version; other objects of the file still update.
      // (a file's events are emitted synchronously with its load: once filesLoaded moved, they are all in)
      let loaded = h.src.counters.filesLoaded;
      await writeFile(join(dir, 'a.yaml'), svcYaml('a', '198.19.0.11', 70000) + '---\n' + svcYaml('c', '198.19.0.33'));
      await until(() => h.events.length >= 1 && h.src.counters.filesLoaded > loaded, 'partial edit');
      assert.deepEqual(summary(h.events), ['upsert Service default/c']);
      assert.equal(h.store.get('Service', 'default/a')!.spec!.ports![0]!.port, 80);
      h.events.length = 0;

      // A syntax error deletes nothing.
      loaded = h.src.counters.filesLoaded;
      await writeFile(join(dir, 'a.yaml'), 'kind: [\n');
      await until(() => (h.src.counters.rejected.get('yaml-syntax') ?? 0) >= 1 && h.src.counters.filesLoaded > loaded, 'syntax error counted, file loaded');
      assert.deepEqual(summary(h.events), []);
      assert.equal(h.store.size('Service'), 3);

      // Removing the file deletes its objects.
      await unlink(join(dir, 'a.yaml'));
      await until(() => h.events.length >= 2, 'file removal');
      assert.deepEqual(summary(h.events).sort(), ['delete Service default/a', 'delete Service default/c']);
      assert.deepEqual([...h.store.map('Service').keys()], ['default/d']);
    } finally {
      await h.src.stop(); // a failed assertion must not leave the watcher holding the process
    }
  });
});

test('watch: a file renamed into place is read at once; a file written in place waits for the debounce', async () => {
  await withDir(async (dir) => {
    await writeFile(join(dir, 'a.yaml'), svcYaml('a', '198.19.0.1'));
    // a debounce far longer than any read: "at once" needs no clock, only the order of events
    const DEBOUNCE = 5000;
    const h = harness(dir, { debounceMs: DEBOUNCE });
    try {
      await h.start();
      h.events.length = 0;

      // atomic replace (write elsewhere, rename over): applied without waiting for the debounce
      let t = Date.now();
      await writeFile(join(dir, '.a.yaml.tmp'), svcYaml('a', '198.19.0.2'));
      await rename(join(dir, '.a.yaml.tmp'), join(dir, 'a.yaml'));
      await until(() => h.events.length >= 1, 'renamed file applied', DEBOUNCE - 500);
      console.log(`# rename applied after ${Date.now() - t} ms (debounce ${DEBOUNCE} ms)`);
      assert.equal(h.store.get('Service', 'default/a')!.spec!.clusterIP, '198.19.0.2');
      h.events.length = 0;

      // in place: the first half of the file must not be applied; the whole file is, after the quiet time
      t = Date.now();
      const loaded = h.src.counters.filesLoaded;
      const text = svcYaml('a', '198.19.0.3') + '---\n' + svcYaml('b', '198.19.0.4');
      // a watcher of our own: once it has seen the write, so has the source's (one inotify queue)
      let seen = false;
      const w = watch(dir, (_event, name) => name === 'a.yaml' && (seen = true));
      try {
        const fh = await open(join(dir, 'a.yaml'), 'r+');
        await fh.truncate(0);
        await fh.write(text.slice(0, text.indexOf('---')), 0);
        await until(() => seen, 'the in-place write noticed');
        await new Promise((r) => setImmediate(r));
        assert.deepEqual(summary(h.events), [], 'nothing applied while the file is being written');
        assert.equal(h.src.counters.filesLoaded, loaded, 'not even read');
        await fh.write(text.slice(text.indexOf('---')), text.indexOf('---'));
        await fh.close();
      } finally {
        w.close();
      }
      await until(() => h.events.length >= 2, 'in-place write applied', DEBOUNCE + 5000);
      assert.ok(Date.now() - t >= DEBOUNCE, `in-place write applied after ${Date.now() - t} ms, before the debounce`);
      assert.equal(h.src.counters.filesLoaded, loaded + 1, 'read once, whole');
      assert.deepEqual(summary(h.events).sort(), ['upsert Service default/a', 'upsert Service default/b']);
    } finally {
      await h.src.stop(); // a failed assertion must not leave the watcher holding the process
    }
  });
});

test('the same object in two files: the last file wins, with a warning; removal falls back', async () => {
  await withDir(async (dir) => {
    await writeFile(join(dir, '10-a.yaml'), svcYaml('dup', '198.19.0.1'));
    await writeFile(join(dir, '20-b.yaml'), svcYaml('dup', '198.19.0.2'));
    const h = harness(dir);
    await h.start();
    assert.equal(h.store.get('Service', 'default/dup')!.spec!.clusterIP, '198.19.0.2');
    assert.equal(h.src.counters.duplicates, 1);
    assert.ok(h.log.lines.some((l) => l.startsWith('warn manifests: object defined in several files')));
    h.events.length = 0;
    await unlink(join(dir, '20-b.yaml'));
    await until(() => h.events.length >= 1, 'fallback');
    assert.deepEqual(summary(h.events), ['upsert Service default/dup']);
    assert.equal(h.store.get('Service', 'default/dup')!.spec!.clusterIP, '198.19.0.1');
    await h.src.stop();
  });
});

test('periodic rescan picks up changes without the watcher', async () => {
  await withDir(async (dir) => {
    await cp(join(FIXTURES, 'no-endpoints.json'), join(dir, 'x.json'));
    const h = harness(dir, { rescanIntervalMs: 100 });
    await h.start();
    // Simulate a lost notification: stop the watcher, keep the rescan timer.
    (h.src as unknown as { watcher: { close(): void } | null }).watcher?.close();
    (h.src as unknown as { watcher: unknown }).watcher = { close() {} };
    h.events.length = 0;
    await unlink(join(dir, 'x.json'));
    await until(() => h.events.length >= 1, 'rescan');
    assert.deepEqual(summary(h.events), ['delete Service demo/lonely']);
    await h.src.stop();
  });
});
