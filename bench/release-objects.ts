// bench: BPF objects built elsewhere than build/bpf, for side-by-side runs: an earlier
// release's (its bpf-c/ taken from the git history, `git archive REV bpf-c`) and variants of
// this tree's (extra -D flags), compiled with the Makefile's clang flags into build/bench/.

import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BUILD_DIR, ROOT } from './tools.js';

/** The release the pipeline rework is measured against (issue 11, must-show 7). */
export const BASELINE_REV = '2e42a8d';

/** The objects the per-packet and verifier benches load. */
export const HOOK_OBJECTS = ['from_pod', 'from_host', 'to_pod'] as const;

function clangFlags(srcRoot: string): string[] {
  const multiarch = execFileSync('cc', ['-print-multiarch'], { encoding: 'utf8' }).trim();
  // as BPF_CFLAGS in the Makefile
  return [
    '-O2',
    '-g',
    '-target',
    'bpf',
    '-Wall',
    '-Werror',
    '-Wno-unused-function',
    '-I',
    join(srcRoot, 'bpf-c'),
    '-I',
    join(srcRoot, 'bpf-c', 'include'),
    '-I',
    `/usr/include/${multiarch}`,
  ];
}

function compile(srcRoot: string, outDir: string, defines: string[] = []): void {
  mkdirSync(outDir, { recursive: true });
  for (const name of HOOK_OBJECTS) {
    execFileSync(
      process.env.CLANG ?? 'clang',
      [...clangFlags(srcRoot), ...defines.map((d) => `-D${d}`), '-c', join(srcRoot, 'bpf-c', `${name}.c`), '-o', join(outDir, `${name}.o`)],
      {
        stdio: 'inherit',
      },
    );
  }
}

/** The hook objects of release `rev`, built once into build/bench/<rev>/. Returns that directory. */
export function releaseObjects(rev = BASELINE_REV): string {
  const dir = join(BUILD_DIR, rev);
  if (HOOK_OBJECTS.every((n) => existsSync(join(dir, `${n}.o`)))) return dir;
  const src = join(dir, 'src');
  rmSync(src, { recursive: true, force: true });
  mkdirSync(src, { recursive: true });
  const tar = execFileSync('git', ['-C', ROOT, 'archive', rev, 'bpf-c']);
  execFileSync('tar', ['-x', '-C', src], { input: tar });
  compile(src, dir);
  return dir;
}

/** This tree's hook objects built with extra `defines` into build/bench/variants/<name>/ (rebuilt every call: the sources may have changed). */
export function variantObjects(name: string, defines: string[]): string {
  const dir = join(BUILD_DIR, 'variants', name);
  compile(ROOT, dir, defines);
  return dir;
}

/**
 * from_pod with its new-flow path behind a tail call (bench/tools/from_pod_tailcall.bpf.c,
 * every stage inlined), next to this tree's from_host and to_pod, in
 * build/bench/variants/tailcall/: the option the global subprograms were chosen over.
 */
export function tailcallObjects(): string {
  const dir = join(BUILD_DIR, 'variants', 'tailcall');
  mkdirSync(dir, { recursive: true });
  const src = join(ROOT, 'bench', 'tools', 'from_pod_tailcall.bpf.c');
  execFileSync(process.env.CLANG ?? 'clang', [...clangFlags(ROOT), '-DWEIR_SLOW_PATH_INLINE', '-c', src, '-o', join(dir, 'from_pod.o')], { stdio: 'inherit' });
  for (const n of ['from_host', 'to_pod']) copyFileSync(join(ROOT, 'build', 'bpf', `${n}.o`), join(dir, `${n}.o`));
  return dir;
}

export function objectsIn(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.o'));
}
