// package-root: where this checkout or installed package lives (the addon, the BPF objects and
// package.json are found from it). Layer-free (node:fs only), so every layer may import it.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository (package) root: the nearest directory above this file holding package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`weir: no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}
