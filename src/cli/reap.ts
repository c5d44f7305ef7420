/**
 * Stops what a dead supervisord of this installation left running (agents, API, gateway master
 * and workers, event listener, embedded Redis), as supervisord would have stopped it, before a
 * new supervisord starts the stack again. scripts/up.sh runs it; it touches nothing that a live
 * supervisord of this installation owns, and nothing of another installation
 * (src/supervisor/strays.ts). Prints one line per process, and nothing when there is none.
 */
import { PROJECT_ROOT } from '../config-kinds.js';
import { loadConfig } from '../config-load.js';
import { actAsStateOwner } from '../store/state-owner.js';
import { findStrays, reap } from '../supervisor/strays.js';

async function main(): Promise<void> {
  // The service's processes are its user's: that user can stop them, and nothing else.
  actAsStateOwner(PROJECT_ROOT);
  const cfg = loadConfig();
  const strays = findStrays(cfg);
  if (!strays.length) return;
  console.log(`found ${strays.length} process(es) of this installation that no live supervisord owns (a supervisord that died?): stopping them`);
  const started = Date.now();
  for (const r of await reap(strays)) {
    const what = r.program ? `${r.kind} ${r.program}` : r.kind;
    console.log(`  ${what} (pid ${r.pid}): ${r.signal}, ${r.graceful ? `exited in ${r.ms} ms` : `still running after ${r.ms} ms: SIGKILL`}`);
  }
  console.log(`stopped in ${Date.now() - started} ms; agents keep their channels (Flume checkpointed them on SIGTERM)`);
}

main().catch((e: Error) => {
  console.error(`reap: ${e.message}`);
  process.exit(2);
});
