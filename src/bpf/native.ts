// src/bpf: loads the native addon (native/, build/Release/weir.node) and declares its raw
// shapes. Only src/bpf/*.ts imports this; the rest of weir uses the typed classes.

import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../package-root.js';

export interface RawMapInfo {
  name: string;
  type: string;
  typeId: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  id: number;
  btfId: number;
  btfKeyTypeId: number;
  btfValueTypeId: number;
  perCpu: boolean;
}

export interface RawMap {
  readonly fd: number;
  info(): RawMapInfo;
  lookup(key: Buffer): Buffer | null;
  update(key: Buffer, value: Buffer, flags?: number): void;
  delete(key: Buffer): boolean;
  nextKey(prev: Buffer | null): Buffer | null;
  lookupBatch(chunk?: number): { keys: Buffer; values: Buffer; count: number };
  lookupBatchChunk(token: Buffer | null, max: number, withData: boolean): { keys?: Buffer; values?: Buffer; count: number; token: Buffer | null };
  updateBatch(keys: Buffer, values: Buffer, count: number, flags?: number): number;
  deleteBatch(keys: Buffer, count: number): number;
  count(): number;
  pin(path: string): void;
  close(): void;
}

export interface RawProgInfo {
  name: string;
  type: string;
  typeId: number;
  id: number;
  tag: string;
  btfId: number;
  section?: string;
  expectedAttachType?: string;
  /** ids of the maps the program uses */
  mapIds: number[];
}

export interface RawTestRunOpts {
  data?: Buffer;
  ctx?: Buffer;
  repeat?: number;
  dataSizeOut?: number;
  ctxSizeOut?: number;
  flags?: number;
}

export interface RawProgram {
  readonly fd: number;
  info(): RawProgInfo;
  testRun(opts: RawTestRunOpts): { retval: number; duration: number; dataOut: Buffer; ctxOut: Buffer };
  pin(path: string): void;
  close(): void;
}

export interface RawLinkInfo {
  type: string;
  id: number;
  progId: number;
  ifindex?: number;
  attachType?: string;
  cgroupId?: bigint;
}

export interface RawLink {
  readonly fd: number;
  info(): RawLinkInfo;
  update(prog: RawProgram): void;
  detach(): void;
  pin(path: string): void;
  close(): void;
}

/** A BTF type, resolved through typedef/const/volatile; `hint` is the first typedef name. */
export interface RawType {
  kind: string;
  id: number;
  name?: string;
  size: number;
  hint?: string;
  signed?: boolean;
  bits?: number;
  bool?: boolean;
  length?: number;
  elem?: RawType;
  members?: RawMember[];
}

export interface RawMember {
  name: string;
  offset: number;
  bitOffset: number;
  bitSize: number;
  size: number;
  type: RawType;
}

export interface RawEnum {
  name: string;
  size: number;
  signed: boolean;
  values: Record<string, number>;
}

export interface RawDatasecVar {
  name: string;
  offset: number;
  size: number;
  type: RawType;
}

export interface RawBtf {
  find(name: string, kind?: string): number | null;
  describe(id: number): RawType;
  struct(name: string): RawType;
  enum(name: string): RawEnum;
  datasec(name: string): RawDatasecVar[];
  names(kind: string): string[];
}

export interface RawObjectMap {
  name: string;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  internal: boolean;
  pinPath?: string;
  btfKeyTypeId: number;
  btfValueTypeId: number;
}

export interface RawObjectProgram {
  name: string;
  section: string;
  type: string;
  expectedAttachType: string;
}

export interface RawObject {
  readonly loaded: boolean;
  readonly closed: boolean;
  setConst(name: string, value: Buffer): void;
  setMaxEntries(map: string, maxEntries: number): void;
  load(): void;
  /** load() on a libuv worker thread; the object is busy (EBUSY) until it settles */
  loadAsync(): Promise<void>;
  close(): void;
  maps(): RawObjectMap[];
  programs(): RawObjectProgram[];
  map(name: string): RawMap;
  program(name: string): RawProgram;
  btf(): RawBtf;
}

export interface RawRingBuf {
  /** up to max records written so far (4096 when omitted); never waits */
  consume(max?: number): Buffer[];
  close(): void;
}

export interface Addon {
  RingBuf: new (mapFd: number) => RawRingBuf;
  Object: { open(path: string, pinRoot?: string): RawObject };
  Map: {
    openPinned(path: string): RawMap;
    fromId(id: number): RawMap;
    create(typeId: number, keySize: number, valueSize: number, maxEntries: number, flags: number, name: string): RawMap;
  };
  Program: { openPinned(path: string): RawProgram; fromId(id: number): RawProgram };
  Link: { openPinned(path: string): RawLink };
  Btf: { fromFile(path: string): RawBtf; fromKernelId(id: number): RawBtf };
  attachTcx(prog: RawProgram, ifindex: number, dir: 'ingress' | 'egress'): RawLink;
  tcxQuery(ifindex: number, dir: 'ingress' | 'egress'): number[];
  tcAttach(
    prog: RawProgram,
    ifindex: number,
    dir: 'ingress' | 'egress',
    handle: number,
    priority: number,
    replace: boolean,
  ): { handle: number; priority: number; progId: number };
  tcDetach(ifindex: number, dir: 'ingress' | 'egress', handle: number, priority: number): void;
  tcQuery(ifindex: number, dir: 'ingress' | 'egress', handle: number, priority: number): number | null;
  attachXdp(prog: RawProgram, ifindex: number, flags: number): RawLink;
  attachCgroup(prog: RawProgram, cgroupDir: string, attachType?: string): RawLink;
  ifNameToIndex(name: string): number;
  netnsEnter(path: string): number;
  netnsRestore(fd: number): void;
  unpin(path: string): void;
  numPossibleCpus(): number;
  /** runs an iterator program to its end (inside netnsPath when given); bytes it printed */
  iterRun(prog: RawProgram, netnsPath?: string): number;
  /** the calling thread's netns cookie (SO_NETNS_COOKIE) */
  netnsCookie(): bigint;
  /** libbpf_major_version().libbpf_minor_version() */
  libbpfVersion(): string;
  /** libbpf_probe_bpf_prog_type / libbpf_probe_bpf_map_type: can this kernel load/create it */
  probeProgType(type: number): boolean;
  probeMapType(type: number): boolean;
}

export const addonPath = process.env.WEIR_ADDON ?? join(packageRoot(), 'build', 'Release', 'weir.node');
export const addon = createRequire(import.meta.url)(addonPath) as Addon;
