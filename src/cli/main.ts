// cli/main: the `weir` command. A thin shell over the library: each area registers its
// commands; errors the user can act on print as one line with exit code 1 (no weir state:
// EXIT_NO_STATE). Importing it builds the command tree without running it (completion, tests).

import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { packageRoot } from '../package-root.js';
import { registerDaemonCommand } from './daemon.js';
import { registerDiffCommand } from './diff.js';
import { registerExplainCommand } from './explain.js';
import { registerIfaceCommand } from './ifaces.js';
import { registerInspectCommands } from './inspect.js';
import { registerMonitorCommand } from './monitor.js';
import { registerNatCommand } from './nat.js';
import { registerNodesCommand } from './nodes.js';
import { registerCompletionCommand } from './completion.js';
import { CliError, EXIT_NO_STATE, NoStateError } from './output.js';
import { registerPolicyCommands } from './policy.js';
import { registerServiceCommands } from './services.js';
import { registerStatusCommand } from './status.js';
import { registerTakeoverCommand } from './takeover.js';
import { registerUninstallCommand } from './uninstall.js';
import { registerVersionCommand } from './version.js';

const version = (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;

export const program = new Command('weir').description('eBPF service dataplane for Kubernetes nodes').version(version).showHelpAfterError().exitOverride();

registerDaemonCommand(program);
registerInspectCommands(program);
registerServiceCommands(program);
registerNatCommand(program);
registerIfaceCommand(program);
registerNodesCommand(program);
registerPolicyCommands(program);
registerExplainCommand(program);
registerMonitorCommand(program);
registerStatusCommand(program);
registerDiffCommand(program);
registerTakeoverCommand(program);
registerUninstallCommand(program);
registerVersionCommand(program);
registerCompletionCommand(program);

const isMain = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) process.exit(e.exitCode);
    const msg = e instanceof CliError ? e.message : `${(e as Error).message ?? e}`.split('\n')[0];
    process.stderr.write(`weir: ${msg}\n`);
    process.exit(e instanceof NoStateError ? EXIT_NO_STATE : 1);
  }
}
