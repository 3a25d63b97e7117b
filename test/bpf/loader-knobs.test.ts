// test/bpf: the loader sets the hook table's knobs. The four objects are loaded into a private
// bpffs with non-default options, and each object's frozen .rodata map is read back from the
// kernel: every knob the table gives the object holds the value the options ask for.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { enums, netnsCookie, typeCodec } from '../../src/bpf/index.js';
import { OBJECT_NAMES, OBJECTS } from '../../src/dataplane/hooks.js';
import { loadDataplane, type LoadedDataplane } from '../../src/dataplane/loader.js';
import { mountPrivateBpffs } from '../lib/bpffs.js';

const fs = mountPrivateBpffs('loader-knobs');
let dp: LoadedDataplane | undefined;

after(async () => {
  dp?.close();
  await fs.cleanup();
});

/** The loaded values of an object's .rodata variables, decoded by their BTF types. */
function loadedRodata(name: (typeof OBJECT_NAMES)[number]): Map<string, unknown> {
  const obj = dp!.objects[name];
  const def = obj.mapDefs().find((m) => m.internal && m.name.endsWith('.rodata'));
  assert.ok(def, `${name}: no .rodata map`);
  const bytes = obj.map(def.name).lookup(Buffer.alloc(4));
  assert.ok(bytes, `${name}: .rodata unreadable`);
  const out = new Map<string, unknown>();
  for (const v of obj.btf().datasec('.rodata')) out.set(v.name, typeCodec(v.type).decode(bytes.subarray(v.offset, v.offset + v.size)));
  return out;
}

test('every knob of the table reaches the loaded .rodata of its object', () => {
  dp = loadDataplane({
    bpfRoot: fs.path,
    instance: 'knobs',
    sockLbMode: 'host-only',
    serviceStats: false,
    ctTrackAll: true,
    maglevTableSize: 4093,
    tunnelPort: 8472,
    externalServiceMode: 'dsr',
    networkPolicy: true,
    policyStats: false,
    podSourceCheck: true,
    hostPolicy: true,
  });
  assert.deepEqual(dp.missingKnobs, []);
  const cookie = netnsCookie();
  assert.equal(dp.hostNetnsCookie, cookie);
  // the compiled-in defaults are the other way round: stats on, all namespaces, cookie 0, track NAT'd flows only, M 16381, port 4789,
  // no policy, policy stats on, no source check
  const want: Record<string, unknown> = {
    lb_stats_enabled: 0,
    sock_lb_mode: enums.weir_sock_lb_mode.WEIR_SOCK_LB_HOST_ONLY,
    host_netns_cookie: cookie,
    ct_track_all: 1,
    maglev_table_size: 4093,
    tunnel_port: 8472,
    external_service_mode: enums.weir_tunnel_mode.WEIR_TUNNEL_MODE_DSR,
    policy_enabled: 1,
    policy_stats_enabled: 0,
    pod_source_check: 1,
  };
  let checked = 0;
  // objects that take no knob (to_pod, the host policy ones) may have no .rodata
  for (const name of OBJECT_NAMES.filter((n) => OBJECTS[n].knobs.length > 0)) {
    const rodata = loadedRodata(name);
    for (const k of OBJECTS[name].knobs) {
      assert.equal(rodata.get(k), want[k], `${name}.${k}`);
      checked++;
    }
  }
  assert.equal(checked, 36);
});
