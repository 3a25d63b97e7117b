// test/k8s/fake-apiserver-main: the fake API server as a process of its own, so that it can
// run inside a lab network namespace (`nsenter --net=... node fake-apiserver-main.js ...`) and
// be reached over the lab's underlay, or through a ClusterIP, like a real control plane.
// The test drives it through a control channel on a unix socket (a path on the shared
// filesystem, reachable from any network namespace): POST / with {op, args} calls the
// FakeApiServer method of that name. remote-apiserver.ts is the client side.
//
//   node fake-apiserver-main.js '<FakeApiServerOptions JSON>' <control socket path>
// prints `listening <url>` once the API server listens.

import { createServer, type IncomingMessage } from 'node:http';
import { rmSync } from 'node:fs';
import { FakeApiServer, FAKE_RESOURCES, type FakeApiServerOptions, type KubeObject } from './fake-apiserver.js';

const [optsJson, controlPath] = process.argv.slice(2);
if (!optsJson || !controlPath) {
  process.stderr.write('usage: fake-apiserver-main <options json> <control socket>\n');
  process.exit(2);
}
const server = new FakeApiServer(JSON.parse(optsJson) as FakeApiServerOptions);

const body = (req: IncomingMessage) =>
  new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });

/** kind → key → resourceVersion: what the server holds, in the shape tests compare. */
function versions(): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const r of FAKE_RESOURCES) out[r.kind] = Object.fromEntries([...server.state(r.kind)].map(([k, o]) => [k, String(o.metadata?.resourceVersion ?? '')]));
  return out;
}

// the control messages are JSON from the test process: each case reads the shape it expects
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function call(op: string, args: any): Promise<unknown> {
  switch (op) {
    case 'apply':
      for (const o of args as KubeObject[]) server.apply(o);
      return server.resourceVersion;
    case 'delete':
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      return (args as { kind: any; namespace?: string; name: string }[]).map((d) => server.delete(d.kind, d.namespace, d.name));
    case 'dropWatches':
      return server.dropWatches(args ?? 'clean');
    case 'expireOpenWatches':
      return server.expireOpenWatches();
    case 'compactHistory':
      return server.compactHistory();
    case 'serveGroup': {
      const { group, served } = args as { group: string; served: boolean };
      return server.serveGroup(group, served);
    }
    case 'stop':
      return server.stop();
    case 'restart':
      return server.restart(args ?? {});
    case 'batch': {
      // several ops in one turn of the event loop: no client can reconnect in between
      const out: unknown[] = [];
      for (const c of args as { op: string; args?: unknown }[]) out.push(call(c.op, c.args));
      return Promise.all(out);
    }
    case 'state':
      return versions();
    case 'objects':
      return Object.fromEntries([...server.state(args)]);
    case 'info':
      return {
        url: server.url,
        resourceVersion: server.resourceVersion,
        openWatches: server.openWatches,
        counters: server.counters,
        listening: server.listening,
        caPem: server.caPem,
      };
    default:
      throw new Error(`unknown op ${op}`);
  }
}

rmSync(controlPath, { force: true });
const control = createServer((req, res) => {
  void body(req)
    .then(async (text) => {
      const { op, args } = JSON.parse(text) as { op: string; args?: unknown };
      const result = await call(op, args);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ result: result ?? null }));
    })
    .catch((e: unknown) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: e instanceof Error ? e.message : String(e) }));
    });
});
control.listen(controlPath, () => {
  void server.start().then(() => process.stdout.write(`listening ${server.url}\n`));
});
const quit = () => {
  void server.stop().finally(() => {
    rmSync(controlPath, { force: true });
    process.exit(0);
  });
};
process.on('SIGTERM', quit);
process.on('SIGINT', quit);
