// The clean-up stage's socket step over both families (issue 14): a removed IPv6 UDP backend is
// listed in weir_sock_destroy6 (an IPv4 one in weir_sock_destroy4) for the one iterator run,
// and both lists are emptied again; a peer another UDP frontend still uses keeps its sockets.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BackendCleanup } from '../../src/dataplane/backend-cleanup.js';
import type { DesiredFrontend } from '../../src/dataplane/frontend-entries.js';
import type { RemovedBackend } from '../../src/dataplane/frontend-plan.js';
import { memoryLogger } from '../../src/log.js';
import { fakeDualStackMaps } from './fake-maps.js';

const V6 = '2001:2:1::10';
const V6_KEPT = '2001:2:1::11';
const V4 = '198.18.1.10';

const gone = (family: 4 | 6, address: string, protocol = 17): RemovedBackend => ({ family, frontendId: 1, address, port: 5353, protocol });

/** A UDP frontend of @family still using @address:5353 (only the fields the socket step reads). */
const stillUsing = (family: 4 | 6, address: string): DesiredFrontend =>
  ({ family, key: { protocol: 17 }, backends: [{ address, port: 5353 }] }) as unknown as DesiredFrontend;

test('IPv6 and IPv4 UDP peers go to their own destroy list for one iterator run, then leave it', () => {
  const { fake, fake6, maps } = fakeDualStackMaps();
  const sockDestroy6 = fake6.sockDestroy;
  const seen: { v4: string[]; v6: string[] }[] = [];
  const cleanup = new BackendCleanup(maps, memoryLogger(), {
    destroySockets: () => {
      const addresses = (keys: Iterable<unknown>) => [...keys].map((k) => `${(k as { address: string }).address}:${(k as { port: number }).port}`);
      seen.push({ v4: addresses(fake.sockDestroy.keys()), v6: addresses(sockDestroy6.keys()) });
      return 1;
    },
  });
  cleanup.run({
    removedBackends: [gone(6, V6), gone(6, V6_KEPT), gone(4, V4), gone(6, '2001:2:1::12', 6)],
    releasedIds: [],
    desired: [stillUsing(6, V6_KEPT)],
  });
  assert.deepEqual(seen, [{ v4: [`${V4}:5353`], v6: [`${V6}:5353`] }], 'one run; TCP and still-used peers not listed');
  assert.equal(sockDestroy6.data.size, 0, 'the IPv6 list is emptied again');
  assert.equal(fake.sockDestroy.data.size, 0, 'the IPv4 list is emptied again');
  assert.equal(cleanup.stats.socketDestroyRuns, 1);
});

test('IPv6 alone: the iterator runs for a removed IPv6 UDP backend', () => {
  const { fake6, maps } = fakeDualStackMaps();
  const sockDestroy6 = fake6.sockDestroy;
  const listed: unknown[][] = [];
  const cleanup = new BackendCleanup(maps, memoryLogger(), {
    destroySockets: () => {
      listed.push([...sockDestroy6.keys()]);
      return 1;
    },
  });
  cleanup.run({ removedBackends: [gone(6, V6)], releasedIds: [], desired: [] });
  assert.deepEqual(listed, [[{ address: V6, port: 5353, pad: 0 }]], 'one run with the peer listed');
  assert.equal(cleanup.stats.errors, 0);
});
