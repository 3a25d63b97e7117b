// A private bpffs instance per test: pins never touch /sys/fs/bpf and vanish with
// the mount, so a failed test cannot leave pinned maps or links behind.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onCleanup } from './cleanup.js';

export interface PrivateBpffs {
  /** mount point: a fresh, empty bpffs */
  path: string;
  /** unmount and remove the directory (also runs at process exit) */
  cleanup: () => Promise<void>;
}

export function mountPrivateBpffs(label = 'bpffs'): PrivateBpffs {
  const path = mkdtempSync(join(tmpdir(), `weir-${label}-`));
  execFileSync('mount', ['-t', 'bpf', 'bpf', path]);
  const cleanup = onCleanup(`unmount bpffs ${path}`, () => {
    try {
      execFileSync('umount', ['-l', path], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
    rmSync(path, { recursive: true, force: true });
  });
  return { path, cleanup };
}
