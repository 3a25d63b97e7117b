// metrics/build-info: which weir this is: the package version, the commit the build came from
// (dist/build-info.json, written by `make ts`), the Node.js and libbpf it runs on. The
// weir_build_info metric and `weir version` both print this.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { libbpfVersion } from '../bpf/features.js';
import { packageRoot } from '../package-root.js';

export interface BuildInfo {
  version: string;
  /** git commit of the build, "unknown" when built outside a git checkout (the image) */
  commit: string;
  /** the tree had uncommitted changes to tracked files when built */
  dirty: boolean;
  nodeVersion: string;
  libbpfVersion: string;
}

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

let cached: BuildInfo | undefined;

/** Read once per process; a missing file or addon gives "unknown", never an error. */
export function buildInfo(): BuildInfo {
  if (cached) return cached;
  const root = packageRoot();
  const pkg = readJson(join(root, 'package.json'));
  const build = readJson(join(root, 'dist', 'build-info.json'));
  let libbpf = 'unknown';
  try {
    libbpf = libbpfVersion();
  } catch {
    /* an addon without the export (an older build): unknown */
  }
  cached = {
    version: typeof pkg.version === 'string' ? pkg.version : 'unknown',
    commit: typeof build.commit === 'string' && build.commit ? build.commit : 'unknown',
    dirty: build.dirty === true,
    nodeVersion: process.versions.node,
    libbpfVersion: libbpf,
  };
  return cached;
}
