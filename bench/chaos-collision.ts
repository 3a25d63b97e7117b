// bench/chaos-collision: the reproducer of what the first full `make chaos` run found (docs/operations.md,
// Chaos): the chaos lab with one external client (chaos-lab.ts, sharedClient), no fault at all. A
// stream from the client's port 40000 to node1:NodePort A (backend be1, local to node1), then a
// second connection from the same port to node2:NodePort A (forwarded to be1 in DSR mode, the
// client's address kept): be1 sees one 4-tuple twice. Prints what each connection got; exits 1
// while the first stream dies of it, 0 once it survives.
//
//   node dist/bench/chaos-collision.js

import { chaosLab, NODEPORT_A, type ChaosLab } from '../test/lib/chaos-lab.js';
import { runCleanups } from '../test/lib/cleanup.js';

const CLIENT = `
import socket, sys, time
n1, n2, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
def conn(dst):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', 40000)); s.settimeout(2); s.connect((dst, port)); return s
def replies(s, base):
    got = 0
    for i in range(20):
        try:
            s.sendall(b'%d\\n' % (base + i))
            if s.recv(4096): got += 1
        except Exception as e:
            print('  error', e); break
        time.sleep(0.02)
    return got
a = conn(n1)
print('stream to %s:%d from :40000: %d/20 replies' % (n1, port, replies(a, 0)))
try:
    b = conn(n2); print('second connection to %s:%d from :40000: %d/1 replies' % (n2, port, replies(b, 0) and 1)); b.close()
except Exception as e:
    print('second connection to %s:%d from :40000 failed: %s' % (n2, port, e))
after = replies(a, 100)
print('stream after it: %d/20 replies' % after)
sys.exit(0 if after == 20 else 1)
`;

let c: ChaosLab | undefined;
try {
  c = await chaosLab('chaos-collide', { sharedClient: true });
  const r = await c.clients['node1-local'].ns.exec('python3', ['-c', CLIENT, c.nodes[0].address, c.nodes[1].address, String(NODEPORT_A)], {
    check: false,
    timeoutMs: 60_000,
  });
  process.stdout.write(r.stdout + r.stderr);
  process.exitCode = r.code === 0 ? 0 : 1;
} finally {
  await c?.lab.destroy();
  await runCleanups();
}
