// The per-CPU weir_counters map, read as named rows: which hook, which reason, how many
// packets and bytes. Names come from the ABI enums in BTF (abi.gen.ts): the C name
// WEIR_REASON_SERVICE_NAT becomes reason "service_nat", the metric label and CLI column.

import { enums } from '../bpf/abi.gen.js';
import type { BpfMap } from '../bpf/map.js';

export interface CounterRow {
  hook: string;
  reason: string;
  packets: bigint;
  bytes: bigint;
}

function names(e: Record<string, number>, prefix: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const [name, value] of Object.entries(e)) {
    if (name.endsWith('__MAX')) continue;
    out.set(value, name.slice(prefix.length).toLowerCase());
  }
  return out;
}

export const hookNames = names(enums.weir_hook, 'WEIR_HOOK_');
export const reasonNames = names(enums.weir_reason, 'WEIR_REASON_');
const REASONS_PER_HOOK = enums.weir_reason.WEIR_REASON__MAX;

/** The counter slot of a hook and reason, as the C side computes it. */
export function counterSlot(hook: string, reason: string): number {
  const h = [...hookNames].find(([, n]) => n === hook)?.[0];
  const r = [...reasonNames].find(([, n]) => n === reason)?.[0];
  if (h === undefined || r === undefined) throw new Error(`unknown counter ${hook}/${reason}`);
  return h * REASONS_PER_HOOK + r;
}

/** Every non-zero slot, summed over CPUs. */
export function readCounters(map: BpfMap): CounterRow[] {
  const rows: CounterRow[] = [];
  for (const [key, value] of map.lookupBatch()) {
    const slot = key.readUInt32LE(0);
    let packets = 0n;
    let bytes = 0n;
    for (const cpu of map.splitPerCpu(value)) {
      packets += cpu.readBigUInt64LE(0);
      bytes += cpu.readBigUInt64LE(8);
    }
    if (packets === 0n && bytes === 0n) continue;
    const hook = Math.floor(slot / REASONS_PER_HOOK);
    const reason = slot % REASONS_PER_HOOK;
    rows.push({
      hook: hookNames.get(hook) ?? `hook_${hook}`,
      reason: reasonNames.get(reason) ?? `reason_${reason}`,
      packets,
      bytes,
    });
  }
  return rows;
}

/** {hook: {reason: packets}} for the non-zero slots: the shape tests compare exactly. */
export function counterTotals(rows: CounterRow[]): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const r of rows) (out[r.hook] ??= {})[r.reason] = Number(r.packets);
  return out;
}

/** Zero every slot on every CPU. */
export function resetCounters(map: BpfMap): void {
  const keys: Buffer[] = [];
  for (let i = 0; i < map.maxEntries; i++) {
    const k = Buffer.alloc(4);
    k.writeUInt32LE(i);
    keys.push(k);
  }
  const zero = map.joinPerCpu(Array(map.cpuCount()).fill(Buffer.alloc(map.valueSize)));
  map.updateBatch(
    keys,
    keys.map(() => zero),
  );
}
