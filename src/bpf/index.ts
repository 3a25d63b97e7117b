// src/bpf: the public API of weir's BPF layer. Everything above src/bpf (dataplane,
// metrics, CLI) imports from here, never from native.ts or the addon.

export { BpfError } from './errors.js';
export { BpfObject, type ConstValue, type OpenOptions } from './object.js';
export { BpfMap, type MapInfo, type UpdateFlags } from './map.js';
export { TypedMap, typedMap } from './typed-map.js';
export { BpfProgram, type ProgramInfo, type TestRunOptions, type TestRunResult } from './program.js';
export { BpfLink, type LinkInfo } from './link.js';
export {
  attachCgroup,
  attachTc,
  attachXdp,
  tcxPrograms,
  type CgroupAttachOptions,
  type TcAttachment,
  type TcAttachOptions,
  type TcDirection,
  type TcMode,
  type XdpAttachment,
  type XdpAttachOptions,
} from './attach.js';
export { withNetns, ifindexOf, netnsCookie } from './netns.js';
export { runIterator } from './iter.js';
export { RingBuffer } from './ringbuf.js';
export { Btf, isStruct, normalizeType, type DatasecVar, type MemberLayout, type StructLayout, type TypeLayout } from './btf.js';
export * from './codec.js';
export { bytesToIp4, bytesToIp6, ip4ToBytes, ip6ToBytes } from './ip.js';
export { layouts, enums, maps as abiMaps } from './abi.gen.js';
export type * from './abi.gen.js';
