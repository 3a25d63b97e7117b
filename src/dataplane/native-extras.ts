// dataplane/native-extras: two addon calls the typed BPF layer (src/bpf) does not wrap yet:
// running an iterator program inside a network namespace (native/iter.cc) and reading the
// netns cookie the socket LB compares against. They belong in src/bpf once its owner adds
// them there; until then this is the one place above src/bpf that touches the raw addon.

import { BpfError, type BpfProgram } from '../bpf/index.js';
import { wrapError } from '../bpf/errors.js';
import { addon } from '../bpf/native.js';

interface IterAddon {
  iterRun(prog: BpfProgram['raw'], netnsPath?: string): number;
  netnsCookie(): bigint;
}

const extra = addon as unknown as Partial<IterAddon>;

function call<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw wrapError(e);
  }
}

/** Runs an iterator program to completion inside a network namespace (path of an ns file). */
export function runIterator(prog: BpfProgram, netnsPath?: string): number {
  if (!extra.iterRun) throw new BpfError('run iterator: the addon has no iterRun (rebuild it)', { code: 'ENOSYS', errno: 38, op: 'run iterator' });
  return call(() => extra.iterRun!(prog.raw, netnsPath));
}

/** The calling thread's network namespace cookie (what bpf_get_netns_cookie returns). */
export function netnsCookie(): bigint {
  if (!extra.netnsCookie) throw new BpfError('read netns cookie: the addon has no netnsCookie (rebuild it)', { code: 'ENOSYS', errno: 38, op: 'read netns cookie' });
  return call(() => extra.netnsCookie!());
}
