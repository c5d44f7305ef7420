/**
 * Which agents' supervisord programs differ from what this build and these settings render
 * (a new Flume, new JVM options, a moved state directory): the upgrade and the state migration
 * read it.
 *   node dist/cli/programs.js            prints {"changed":[{program,table,desired,running,rewritten}],"unchanged":N}
 *   node dist/cli/programs.js --write    also rewrites the program files of agents whose JVM does
 *                                        not run (their next start uses the new command line);
 *                                        the running ones are left to a restart through the API,
 *                                        a few at a time (scripts/upgrade.sh)
 * "Differ" compares the program's settings as supervisord reads them (comments aside), with the
 * desired state each one has now.
 */
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { parse as parseIni } from 'ini';
import { programFor } from '../agents/launch.js';
import { PROJECT_ROOT } from '../config-kinds.js';
import { loadConfig } from '../config-load.js';
import { actAsStateOwner } from '../store/state-owner.js';
import { AgentStore } from '../store/agent-store.js';
import { processesOf } from '../supervisor/strays.js';

const settingsOf = (text: string) => JSON.stringify(parseIni(text));

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { write: { type: 'boolean', default: false } } });
  actAsStateOwner(PROJECT_ROOT);
  const cfg = loadConfig();
  const store = new AgentStore(cfg);
  const onDisk = new Set(await store.programFiles());
  const running = new Set(processesOf(cfg).filter((p) => p.kind === 'agent' && p.program).map((p) => p.program!));
  const changed: Array<{ program: string; table: string; desired: string; running: boolean; rewritten: boolean }> = [];
  let unchanged = 0;
  for (const meta of await store.allMetas()) {
    if (!onDisk.has(meta.program)) continue;
    const desired = await store.desired(meta.program);
    const now = await readFile(store.paths(meta.program).programFile, 'utf8');
    const want = programFor(cfg, meta, desired === 'running');
    if (settingsOf(now) === settingsOf(want)) {
      // Comments only (a new template's wording): written, and nothing restarts for it.
      if (values.write && now !== want) await store.writeProgram(meta.program, want);
      unchanged++;
      continue;
    }
    const isRunning = running.has(meta.program);
    const rewrite = values.write && !isRunning;
    if (rewrite) await store.writeProgram(meta.program, want);
    changed.push({ program: meta.program, table: `${meta.db}.${meta.table}`, desired, running: isRunning, rewritten: rewrite });
  }
  console.log(JSON.stringify({ changed, unchanged }));
}

main().catch((e: Error) => {
  console.error(`programs: ${e.message}`);
  process.exit(1);
});
