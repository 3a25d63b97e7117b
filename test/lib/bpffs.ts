// A private bpffs instance per test: pins never touch /sys/fs/bpf and vanish with
// the mount, so a failed test cannot leave pinned maps or links behind.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onCleanup } from './cleanup.js';
import { BpfLink } from '../../src/bpf/index.js';

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

/** Detach and unpin every link pinned under `dir` (what a failed test left attached); gone ones are skipped. */
export function detachPinnedLinks(dir: string | undefined): void {
  if (!dir || !existsSync(dir)) return;
  for (const n of readdirSync(dir)) {
    try {
      const l = BpfLink.openPinned(join(dir, n));
      l.detach();
      l.unpin();
      l.close();
    } catch {
      /* gone */
    }
  }
}
