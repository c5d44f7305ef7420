import { CliError, EXIT, call, type Connection } from './client.js';
import { table } from './format.js';

/** flumectl loggers DB.TABLE [LOGGER LEVEL [--save] | LOGGER --forget]: an agent's log levels. */
export async function loggers(
  c: Connection,
  r: { db: string; table: string },
  args: string[],
  flags: { save?: boolean; forget?: boolean; json?: boolean },
  out: (s: string) => void,
): Promise<number> {
  const [logger, level] = args;
  const usage = (why: string) => new CliError(EXIT.USAGE, `${why}\n\nusage: flumectl loggers DB.TABLE [LOGGER LEVEL [--save] | LOGGER --forget]`);
  if (logger && !/^[A-Za-z0-9_.$]{1,200}$/.test(logger)) throw usage(`${logger} is not a logger name (root, or a dotted Java name)`);
  if (logger && !level && !flags.forget) throw usage('a LOGGER takes a LEVEL (OFF FATAL ERROR WARN INFO DEBUG TRACE ALL), or --forget');
  const url = `/v1/api/${r.db}/${r.table}/loggers${logger ? `/${logger}` : ''}`;
  const { body } = !logger
    ? await call(c, 'GET', url)
    : flags.forget
      ? await call(c, 'DELETE', url)
      : await call(c, 'PUT', url, { body: { level: level!.toUpperCase(), save: Boolean(flags.save) } });
  if (flags.json) {
    out(JSON.stringify(body, null, 2));
    return EXIT.OK;
  }
  const running = (body.loggers ?? null) as Record<string, string> | null;
  const saved = (body.saved ?? {}) as Record<string, string>;
  const lines = logger ? [String(body.message)] : [];
  if (running) lines.push(table([['LOGGER', 'LEVEL', 'SAVED'], ...Object.entries(running).map(([n, l]) => [n, l, saved[n] ?? ''])]));
  else {
    lines.push(`${r.db}.${r.table} is not running`);
    if (Object.keys(saved).length) lines.push(table([['LOGGER', 'SAVED'], ...Object.entries(saved)]));
  }
  out(lines.join('\n'));
  return EXIT.OK;
}
