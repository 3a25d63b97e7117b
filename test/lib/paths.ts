// Where the built artifacts of this checkout live, for tests.

import { join } from 'node:path';
import { packageRoot } from '../../src/package-root.js';

export const repoRoot = packageRoot();
export const bpfObject = (name: string) => join(repoRoot, 'build', 'bpf', `${name}.o`);
export const binWeir = join(repoRoot, 'bin', 'weir');
