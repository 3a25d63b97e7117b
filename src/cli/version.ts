// cli/version: `weir version`: which weir this is (version, the commit it was built from, Node.js,
// libbpf) and what this node's kernel offers it (release, and each feature weir uses, probed now).
// What a bug report starts with; `kubectl exec ds/weir -- weir version -o json` in a cluster.

import type { Command } from 'commander';
import { kernelFeatures, kernelRelease, type KernelFeature } from '../bpf/features.js';
import { buildInfo } from '../metrics/build-info.js';
import { outputOption, render, table, type OutputFormat } from './output.js';

export interface VersionReport {
  version: string;
  commit: string;
  dirty: boolean;
  nodeVersion: string;
  libbpfVersion: string;
  kernelRelease: string;
  features: KernelFeature[];
}

export function versionReport(): VersionReport {
  return { ...buildInfo(), kernelRelease: kernelRelease(), features: kernelFeatures() };
}

function text(r: VersionReport): string {
  const yesNo = (a: boolean | null) => (a === null ? 'unknown' : a ? 'yes' : 'no');
  return [
    `weir:    ${r.version}`,
    `commit:  ${r.commit}${r.dirty ? ' (with uncommitted changes)' : ''}`,
    `Node.js: ${r.nodeVersion}`,
    `libbpf:  ${r.libbpfVersion}`,
    `kernel:  ${r.kernelRelease}`,
    '',
    table(
      r.features.map((f) => ({ feature: f.name, available: yesNo(f.available), 'used for': f.use, probe: f.probe })),
      ['feature', 'available', 'used for', 'probe'],
    ),
  ].join('\n');
}

export function registerVersionCommand(program: Command): void {
  program
    .command('version')
    .description('version, commit, Node.js and libbpf of this weir; the kernel release and the kernel features weir uses (probed now)')
    .addOption(outputOption())
    .action((o: { output: OutputFormat }) => {
      const r = versionReport();
      process.stdout.write(render(o.output, r, () => text(r)) + '\n');
    });
}
