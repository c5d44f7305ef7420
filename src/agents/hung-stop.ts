import { infoOrNull, type SupervisorDriver } from '../supervisor/driver.js';

/** How long a hung agent's JVM gets after SIGTERM before the healer's restart kills it. */
export const HUNG_STOP_MS = 5000;

/** supervisord's stop, with SIGKILL for a process still there HUNG_STOP_MS after the stop began. */
export async function stopHung(driver: SupervisorDriver, program: string): Promise<void> {
  const pid = (await infoOrNull(driver, program))?.pid ?? 0;
  const stopping = driver.stop(program);
  const killer = setTimeout(() => {
    try {
      if (pid > 0) process.kill(pid, 'SIGKILL');
    } catch {
      // gone already, or not ours to signal: supervisord's own stopwaitsecs ends it
    }
  }, HUNG_STOP_MS);
  try {
    await stopping;
  } finally {
    clearTimeout(killer);
  }
}
