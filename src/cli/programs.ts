/**
 * Which agents' supervisord programs or flume.conf differ from what this build and these settings
 * render (a new Flume, new JVM options, a moved state directory, a source behind the intake key):
 * the upgrade and the state migration read it.
 *   node dist/cli/programs.js            prints {"changed":[{program,table,desired,running,rewritten}],"unchanged":N}
 *   node dist/cli/programs.js --write    also rewrites the program files (and flume.conf) of
 *                                        agents whose JVM does not run (their next start uses them);
 *                                        the running ones are left to a restart through the API,
 *                                        a few at a time (scripts/upgrade.sh)
 * "Differ" compares the program's settings as supervisord reads them (comments aside), with the
 * desired state each one has now, and flume.conf's lines (comments aside).
 */
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { parse as parseIni } from 'ini';
import { flumeConfFor, programFor } from '../agents/launch.js';
import { PROJECT_ROOT } from '../config-kinds.js';
import { loadConfig } from '../config-load.js';
import { actAsStateOwner } from '../store/state-owner.js';
import { AgentStore } from '../store/agent-store.js';
import { writeAtomic } from '../store/files.js';
import { processesOf } from '../supervisor/strays.js';

const settingsOf = (text: string) => JSON.stringify(parseIni(text));
const linesOf = (text: string) => text.split('\n').filter((l) => l.trim() && !l.trimStart().startsWith('#')).join('\n');

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
    const paths = store.paths(meta.program);
    const now = await readFile(paths.programFile, 'utf8');
    const want = programFor(cfg, meta, desired === 'running');
    const conf = await readFile(paths.flumeConf, 'utf8').catch(() => '');
    const wantConf = flumeConfFor(cfg, meta, paths);
    const confSame = linesOf(conf) === linesOf(wantConf);
    if (settingsOf(now) === settingsOf(want) && confSame) {
      // Comments only (a new template's wording): written, and nothing restarts for it.
      if (values.write && now !== want) await store.writeProgram(meta.program, want);
      unchanged++;
      continue;
    }
    const isRunning = running.has(meta.program);
    const rewrite = values.write && !isRunning;
    if (rewrite) {
      await writeAtomic(paths.flumeConf, wantConf);
      await store.writeProgram(meta.program, want);
    }
    changed.push({ program: meta.program, table: `${meta.db}.${meta.table}`, desired, running: isRunning, rewritten: rewrite });
  }
  console.log(JSON.stringify({ changed, unchanged }));
}

main().catch((e: Error) => {
  console.error(`programs: ${e.message}`);
  process.exit(1);
});
