// cli/uninstall: `weir uninstall [--dry-run]`, the node clean-up after weir is removed (like
// `cilium-dbg post-uninstall-cleanup`, calico-bpf `cleanup`, `kube-proxy --cleanup`). Run it
// in the node's network namespace once the daemon is stopped; the library
// (src/dataplane/uninstall.ts) does the work, this prints one line per item or -o json.

import type { Command } from 'commander';
import { DEFAULT_BPF_ROOT, findBpfRoot } from '../dataplane/bpffs.js';
import { defaultInstance } from '../dataplane/instance.js';
import { runningDaemons } from '../dataplane/instance-lock.js';
import { bpfRootProblem, instanceDir, uninstall, type UninstallItem } from '../dataplane/uninstall.js';
import { CliError, document, outputOption, type OutputFormat } from './output.js';

interface Flags {
  bpfRoot?: string;
  instance?: string;
  dryRun: boolean;
  force: boolean;
  output: OutputFormat;
}

const VERBS: Record<UninstallItem['kind'], [done: string, would: string]> = {
  sysctl: ['restored', 'would restore'],
  link: ['detached', 'would detach'],
  map: ['removed', 'would remove'],
  program: ['removed', 'would remove'],
  pin: ['removed', 'would remove'],
  dir: ['removed', 'would remove'],
  nft: ['deleted', 'would delete'],
};

function line(i: UninstallItem, dryRun: boolean): string {
  const verb = i.outcome === 'done' ? VERBS[i.kind][dryRun ? 1 : 0] : i.outcome;
  const what =
    i.kind === 'sysctl'
      ? `sysctl ${i.name} = ${i.detail}`
      : i.kind === 'nft'
        ? `nft table ${i.name}: ${i.detail}`
        : i.kind === 'dir'
          ? `dir ${i.name}`
          : `${i.kind} ${i.name}: ${i.detail}`;
  return `${verb.padEnd(13)} ${what}${i.reason ? ` (${i.reason})` : ''}`;
}

export function registerUninstallCommand(program: Command): void {
  program
    .command('uninstall')
    .description(
      'remove what weir put on this node for an instance: pinned links (detached), pinned maps, the pin directory, ' +
        "weir's nft table, and the sysctls it set (restored); run in the node's network namespace with the daemon stopped",
    )
    .option(
      '--bpf-root <dir>',
      `bpffs mount holding weir/<instance> (default: found as the daemon finds it: ${DEFAULT_BPF_ROOT}, or the node's from ip netns exec)`,
    )
    .option('--instance <name>', "weir instance on this node (default: the daemon's default: the netns name under `ip netns exec`, else 'default')")
    .option('--dry-run', 'list what would be removed, change nothing', false)
    .option('--force', 'remove even while a weir daemon runs for the instance (it keeps its fds; stop it)', false)
    .addOption(outputOption())
    .action(async (flags: Flags) => {
      // the same defaults as the daemon's, so a plain `weir uninstall` where the daemon ran finds its state
      const o = { ...flags, bpfRoot: flags.bpfRoot ?? findBpfRoot()?.path ?? DEFAULT_BPF_ROOT, instance: flags.instance ?? defaultInstance() };
      try {
        instanceDir(o.bpfRoot, o.instance);
      } catch (e) {
        throw new CliError((e as Error).message);
      }
      const problem = bpfRootProblem(o.bpfRoot);
      if (problem) throw new CliError(`${problem} (pass the daemon's --bpf-root; run where the node's bpffs is mounted)`);
      const running = await runningDaemons(o.instance);
      if (running.length && !o.force && !o.dryRun) {
        const how = running.map((r) => (r.how === 'lock' ? 'it holds the instance lock' : `pid ${r.pid}`)).join(', ');
        const msg = `a weir daemon is running for instance ${o.instance} in this network namespace (${how})`;
        throw new CliError(`${msg}: stop it first (delete the DaemonSet), or use --force`);
      }
      const r = await uninstall({ bpfRoot: o.bpfRoot, instance: o.instance, dryRun: o.dryRun });
      if (o.output !== 'table') process.stdout.write(document(o.output, { ...r, daemonRunning: running.length > 0 }) + '\n');
      else if (r.items.length === 0) process.stdout.write(`nothing to remove for instance ${o.instance} (no pins at ${r.pinDir}, no weir nft table)\n`);
      else {
        for (const i of r.items) process.stdout.write(line(i, r.dryRun) + '\n');
        if (r.dryRun) process.stdout.write(`(dry run: nothing changed${running.length ? '; a weir daemon is running for this instance' : ''})\n`);
      }
      if (r.failed) process.exitCode = 1;
    });
}
