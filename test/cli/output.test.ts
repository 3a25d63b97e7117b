// Issue 15 (CLI polish): `-o yaml` prints the `-o json` document (bigints, nested objects,
// empty lists and undefined fields alike), `-o` accepts exactly table/json/yaml, and `weir diff`
// picks its source as the daemon does (manifests, kubeconfig, the pod's service account).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { load } from 'js-yaml';
import { diffSource } from '../../src/cli/diff.js';
import { json, outputOption, yaml } from '../../src/cli/output.js';

describe('cli output', () => {
  test('yaml() parses to what json() parses to', () => {
    const value = {
      frontend: '198.18.0.1:80/tcp/internal',
      bytes: 12n,
      huge: 2n ** 64n - 1n,
      flags: [],
      backends: [{ address: '198.18.1.2', port: 8080, flags: ['local'] }],
      missing: undefined,
      note: 'yes', // a YAML 1.1 boolean word: must stay a string
      version: '1.10',
    };
    const y = yaml(value);
    assert.deepEqual(load(y), JSON.parse(json(value)));
    assert.match(y, /^huge: '18446744073709551615'$/m);
    assert.doesNotMatch(y, /missing/);
  });

  test('-o takes table, json or yaml (default table), nothing else', () => {
    const o = outputOption();
    assert.deepEqual(o.argChoices, ['table', 'json', 'yaml']);
    assert.equal(o.defaultValue, 'table');
  });

  test("weir diff's source: the daemon's rule", () => {
    assert.deepEqual(diffSource({ manifests: '/m' }, {}), { kind: 'manifests', dir: '/m' });
    assert.deepEqual(diffSource({ kubeconfig: '/k' }, {}), { kind: 'kube', kubeconfig: '/k' });
    assert.deepEqual(diffSource({}, { KUBERNETES_SERVICE_HOST: '198.18.0.100' }), { kind: 'kube' });
    assert.throws(() => diffSource({}, {}), /no source: --manifests DIR or --kubeconfig FILE/);
    assert.throws(() => diffSource({ manifests: '/m', kubeconfig: '/k' }, {}), /exclude each other/);
  });
});
