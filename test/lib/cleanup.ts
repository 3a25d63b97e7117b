// Test resource cleanup that runs even when a test fails or the run is interrupted.
// Every resource a test creates (namespace, mount, cgroup, process) registers an undo
// step here; steps run in reverse order at `runCleanups()`, at process exit, and on
// SIGINT/SIGTERM. A failing step is reported and the rest still run.

type Step = { what: string; undo: () => void | Promise<void> };

const steps: Step[] = [];
let hooked = false;

function hookProcess(): void {
  if (hooked) return;
  hooked = true;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      void runCleanups().finally(() => process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1)));
    });
  }
  // last resort for synchronous steps if nobody called runCleanups()
  process.once('exit', () => {
    for (const s of steps.splice(0).reverse()) {
      try {
        const r = s.undo();
        if (r instanceof Promise) r.catch(() => {});
      } catch {
        /* exit path: nothing left to report to */
      }
    }
  });
}

/** Register an undo step; returns a function that runs (and unregisters) just this step. */
export function onCleanup(what: string, undo: () => void | Promise<void>): () => Promise<void> {
  hookProcess();
  const step = { what, undo };
  steps.push(step);
  return async () => {
    const i = steps.indexOf(step);
    if (i < 0) return;
    steps.splice(i, 1);
    await step.undo();
  };
}

/** Run every registered step, newest first. Errors are collected, not thrown midway. */
export async function runCleanups(): Promise<void> {
  const errors: string[] = [];
  for (const s of steps.splice(0).reverse()) {
    try {
      await s.undo();
    } catch (e) {
      errors.push(`${s.what}: ${(e as Error).message}`);
    }
  }
  if (errors.length) console.error(`cleanup errors:\n  ${errors.join('\n  ')}`);
}

/** A script's entry point: runs `main`, then every clean-up step (also when `main` threw, which
 *  is printed), then exits with main's code (1 when it threw). */
export async function exitAfter(main: () => Promise<number>): Promise<never> {
  let code = 1;
  try {
    code = await main();
  } catch (e) {
    console.error(e);
  } finally {
    await runCleanups();
  }
  process.exit(code);
}
