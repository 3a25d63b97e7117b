// Packets for BPF_PROG_TEST_RUN tests: build the bytes a program gets, decode the bytes it
// returns, and compare field by field. One import for tests; the parts live in ./packet/:
// addr (address text), checksum, names (protocol numbers, flag and ICMP type names),
// spec + build (the builder), layers + decode (the decoder), diff (assertions).

export * from './packet/addr.js';
export * from './packet/checksum.js';
export * from './packet/names.js';
export * from './packet/spec.js';
export { PacketBuilder, eth, ipv4, ipv6, raw, truncate } from './packet/build.js';
export * from './packet/layers.js';
export { decodePacket } from './packet/decode.js';
export * from './packet/diff.js';
