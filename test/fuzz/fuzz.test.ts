// The hostile-packet campaign (campaign.ts) as a sample for `make test`: 30,000 packets of a
// fixed seed through every packet program, with the oracles (safe, no misparse, no rewrite
// without state, rewrites keep checksums) asserted exactly; `make fuzz` runs a million per program. Also that
// the stream replays byte for byte from its seed.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fuzzStream, stateless } from '../lib/packet/fuzz.js';
import { PROGRAMS, runCampaign } from './campaign.js';

const SEED = 20261130;
const COUNT = 30_000;

test('the stream replays from its seed, byte for byte, and differs under another seed', () => {
  const a = [...fuzzStream(SEED, 500)].map((g) => g.packet.toString('hex'));
  const b = [...fuzzStream(SEED, 500)].map((g) => g.packet.toString('hex'));
  const c = [...fuzzStream(SEED + 1, 500)].map((g) => g.packet.toString('hex'));
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

test('stateless(): a packet with a state address anywhere is stateful, strangers are not', () => {
  const packets = [...fuzzStream(SEED, 2000)];
  assert.ok(packets.some((g) => stateless(g.packet)));
  assert.ok(packets.some((g) => !stateless(g.packet)));
  assert.equal(stateless(Buffer.from([0, 198, 18, 0])), false);
  assert.equal(stateless(Buffer.from([0, 198, 19, 0])), true);
});

test(`${COUNT} hostile packets through every packet program: safe, parsed as the host parses, nothing rewritten without state`, async () => {
  const failureDir = mkdtempSync(join(tmpdir(), 'weir-fuzz-'));
  try {
    const r = await runCampaign({ seed: SEED, count: COUNT, chunk: 15_000, failureDir });
    for (const f of r.failures) console.log(`# ${f.program} packet ${f.index} ${f.oracle}: ${f.detail}\n# ${readFileSync(f.file, 'utf8').split('\n')[2]}`);
    assert.deepEqual(r.dmesgNew, [], 'no kernel warning');
    assert.deepEqual(
      r.programs.map((p) => p.program),
      PROGRAMS.map((p) => p.name),
    );
    for (const p of r.programs)
      console.log(
        `# ${p.program}: parse ${p.parseAgree}/${p.parseCompared}, decision ${p.decisionAgree}/${p.decisionChecked}, ` +
          `stateless ${p.stateless} (${p.statelessRewritten} rewritten), rewrites checked ${p.rewrittenChecked} (${p.checksumsBroken} broken), ` +
          `refused ${p.refused}, ${p.runSeconds.toFixed(1)} s`,
      );
    for (const p of r.programs) {
      assert.equal(p.packets, COUNT, p.program);
      assert.equal(p.unsafe, 0, `${p.program}: unsafe runs`);
      assert.equal(p.parseAgree, p.parseCompared, `${p.program}: kernel and host parse agree`);
      assert.ok(p.parseCompared > COUNT * 0.8, `${p.program}: most packets compared`);
      assert.equal(p.decisionAgree, p.decisionChecked, `${p.program}: decisions follow the parse`);
      assert.equal(p.statelessRewritten, 0, `${p.program}: no rewrite without state`);
      assert.equal(p.checksumsBroken, 0, `${p.program}: rewrites keep checksums right`);
      // family 'none' (to_pod, and the host policy programs without a host endpoint): no stateless oracle
      if (PROGRAMS.find((x) => x.name === p.program)!.family !== 'none') assert.ok(p.stateless > COUNT * 0.1, `${p.program}: stateless packets checked`);
    }
    // the stream reached the state: NAT, reverse NAT, ICMP errors about NAT'd flows, the tunnel both ways
    const reasons = (name: string) => r.programs.find((p) => p.program === name)!.reasons;
    for (const name of ['from_pod', 'from_pod6', 'from_host', 'from_host6'])
      for (const why of ['service_nat', 'nat_established', 'reverse_nat', 'icmp_error_revnat', 'no_backend_reject'])
        assert.ok((reasons(name)[why] ?? 0) > 0, `${name} ${why}`);
    for (const name of ['from_pod', 'from_pod6', 'from_host', 'from_host6']) assert.ok(r.programs.find((p) => p.program === name)!.rewrittenChecked > 0, name);
    for (const name of ['from_host', 'from_host6'])
      for (const why of ['tunnel_decap', 'tunnel_denied', 'tunnel_encap']) assert.ok((reasons(name)[why] ?? 0) > 0, `${name} ${why}`);
    assert.deepEqual(r.failures, []);
  } finally {
    rmSync(failureDir, { recursive: true, force: true });
  }
});
