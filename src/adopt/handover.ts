import { lstat } from 'node:fs/promises';
import { isAbsolute, normalize } from 'node:path';
import type { Handover } from '../agents/agent-files.js';
import { acceptsConnections } from '../agents/port-allocator.js';
import { invalidRequest } from '../errors.js';

/**
 * Whether another installation's table can be handed over to us as it is: its port free now
 * (its JVM stopped: one JVM per table at every moment), its channel's directories real
 * directories (not links) of the service's own user, on the file system of ours (so they are
 * moved, never copied), with a file channel in them. Each refusal is a 400 saying which.
 */
export async function checkHandover(h: Handover, ours: { varDir: string; servicesDir: string; uid: number }): Promise<void> {
  if (await acceptsConnections(h.port)) throw invalidRequest(`port ${h.port} still takes connections: stop the old agent first (one JVM per table)`);
  const varDev = (await lstat(ours.varDir)).dev;
  for (const [what, dir] of [['checkpointDir', h.checkpointDir], ['dataDir', h.dataDir]] as const) {
    if (!isAbsolute(dir) || normalize(dir) !== dir) throw invalidRequest(`${what} must be an absolute, normalized path`);
    // Another installation's: never one of our own agents' directories.
    if ([ours.varDir, ours.servicesDir].some((d) => dir === d || dir.startsWith(`${d}/`))) throw invalidRequest(`${what} ${dir} is this service's own`);
    const st = await lstat(dir).catch(() => null);
    if (!st) throw invalidRequest(`${what} ${dir} does not exist`);
    if (!st.isDirectory()) throw invalidRequest(`${what} ${dir} is not a directory${st.isSymbolicLink() ? ' (a link)' : ''}`);
    if (st.uid !== ours.uid) throw invalidRequest(`${what} ${dir} is owned by uid ${st.uid}, not the service's user (uid ${ours.uid}): chown it first`);
    if (st.dev !== varDev) throw invalidRequest(`${what} ${dir} is on another file system than ${ours.varDir}: it would be copied, not moved`);
  }
  if (h.checkpointDir === h.dataDir) throw invalidRequest('checkpointDir and dataDir must differ');
}
