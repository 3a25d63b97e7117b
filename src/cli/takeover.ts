// cli/takeover: `weir kube-proxy detect|cleanup`, the kube-proxy takeover step by hand (the
// daemon runs the same library call, src/dataplane/kube-proxy.ts, after its first sync).
// Acts on the network namespace it runs in. Log lines (logfmt) go to stderr, the result to
// stdout; exit 1 when a command failed.

import type { Command } from 'commander';
import { describeState, detectKubeProxy, takeOverKubeProxy, type KubeProxyReport } from '../dataplane/kube-proxy.js';
import { createLogfmtLogger } from '../log.js';
import { document, outputOption, render, type OutputFormat } from './output.js';

function describeReport(r: KubeProxyReport): string {
  const lines = [`state      ${describeState(r)}`];
  for (const t of r.iptables) lines.push(`  iptables-${t.backend} ipv${t.family} ${t.table}: ${t.chains.join(' ')}`);
  lines.push(`processes  ${r.processes.map((p) => `${p.pid} (${p.cmdline || p.comm})`).join(', ') || 'none'}`);
  if (r.missingTools.length) lines.push(`not installed  ${r.missingTools.join(' ')}`);
  for (const e of r.errors) lines.push(`error      ${e}`);
  return lines.join('\n');
}

export function registerTakeoverCommand(program: Command): void {
  const kp = program.command('kube-proxy').description("kube-proxy's iptables/nftables state in this network namespace: find it, remove it");
  kp.command('detect')
    .description('list KUBE-* chains (iptables-nft and -legacy, IPv4 and IPv6), the ip/ip6 kube-proxy nftables tables, and kube-proxy processes')
    .option('--host-proc <dir>', "the node's /proc to look for a kube-proxy process in (in weir's pod: /nodeproc)", '/proc')
    .addOption(outputOption())
    .action(async (o: { output: OutputFormat; hostProc: string }) => {
      const r = await detectKubeProxy({ procRoot: o.hostProc });
      process.stdout.write(render(o.output, r, () => describeReport(r)) + '\n');
      if (r.errors.length) process.exitCode = 1;
    });
  kp.command('cleanup')
    .description(
      "remove kube-proxy's KUBE-* chains (and the jumps to them) and its nftables tables, leaving every other rule; run it once weir serves the services",
    )
    .option('--dry-run', 'change nothing: warn naming what would be left', false)
    .option('--host-proc <dir>', "the node's /proc to look for a kube-proxy process in (in weir's pod: /nodeproc)", '/proc')
    .addOption(outputOption())
    .action(async (o: { dryRun: boolean; output: OutputFormat; hostProc: string }) => {
      const log = createLogfmtLogger('info', (l) => process.stderr.write(`${l}\n`));
      const r = await takeOverKubeProxy({ cleanup: !o.dryRun, log, procRoot: o.hostProc });
      const errors = [...r.report.errors, ...(r.cleanup?.errors ?? [])];
      if (o.output !== 'table') {
        const removed = r.cleanup ? { iptables: r.cleanup.iptables.map(({ input: _input, ...t }) => t), nftables: r.cleanup.nftables } : null;
        process.stdout.write(document(o.output, { dryRun: o.dryRun, found: r.report, removed, errors }) + '\n');
      } else {
        process.stdout.write(describeReport(r.report) + '\n');
        if (r.cleanup)
          process.stdout.write(
            `removed    ${
              r.cleanup.iptables
                .map((t) => `iptables-${t.backend} ipv${t.family} ${t.table} (${t.chains} chains, ${t.jumps} jumps)`)
                .concat(r.cleanup.nftables.map((n) => `nft ${n}`))
                .join('; ') || 'nothing'
            }\n`,
          );
        else if (o.dryRun) process.stdout.write('removed    nothing (--dry-run)\n');
      }
      if (errors.length) process.exitCode = 1;
    });
}
