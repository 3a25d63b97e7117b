// src/bpf: running a BPF iterator program (iter/udp, iter/tcp, ...) to completion: the
// addon creates an iterator link and reads it to the end, which runs the program once per
// object. A socket iterator walks the network namespace its reading fd is opened in.

import { native } from './errors.js';
import { addon } from './native.js';
import { netnsPath } from './netns.js';
import type { BpfProgram } from './program.js';

/** Runs `prog` once over every object, inside `netns` (a name or an ns file path) when given; returns the bytes it printed. */
export function runIterator(prog: BpfProgram, netns?: string): number {
  return native(() => addon.iterRun(prog.raw, netns === undefined ? undefined : netnsPath(netns)));
}
