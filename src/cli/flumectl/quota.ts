import { CliError, EXIT, call, type Connection } from './client.js';
import { table } from './format.js';

const FIELDS = ['eventsPerSecond', 'bytesPerSecond', 'eventsPerDay', 'bytesPerDay'] as const;
const USAGE = 'usage: flumectl quota [DB [set FIELD=N ... | remove]]   FIELD: eventsPerSecond bytesPerSecond eventsPerDay bytesPerDay';

type View = { db: string; quota: Record<string, number> | null; usage: { eventsPerSecond: number; bytesPerSecond: number; refused: Record<string, number> } };

const limit = (q: View['quota'], k: (typeof FIELDS)[number]) => (q?.[k] === undefined ? '-' : String(q[k]));
const rows = (list: View[]) =>
  table([
    ['DB', 'EVENTS/S', 'BYTES/S', 'EVENTS/DAY', 'BYTES/DAY', 'USED EVENTS/S', 'USED BYTES/S', 'REFUSED (LAST MINUTE)'],
    ...list.map((v) => [
      v.db,
      ...FIELDS.map((k) => limit(v.quota, k)),
      v.usage.eventsPerSecond.toFixed(1),
      v.usage.bytesPerSecond.toFixed(0),
      Object.entries(v.usage.refused).map(([why, n]) => `${why} ${n}`).join(', ') || '0',
    ]),
  ]);

/** flumectl quota [DB [set FIELD=N ... | remove]]: each db's quota at the gateway and its use. */
export async function quota(c: Connection, args: string[], flags: { json?: boolean }, out: (s: string) => void): Promise<number> {
  const [db, action, ...settings] = args;
  const usage = (why: string) => new CliError(EXIT.USAGE, `${why}\n\n${USAGE}`);
  if (db !== undefined && !/^[a-z0-9][a-z0-9_]{0,47}$/.test(db)) throw usage(`${db} is not a db name`);
  let answer: Record<string, unknown>;
  if (!db) answer = (await call(c, 'GET', '/v1/api/quotas')).body;
  else if (!action) answer = (await call(c, 'GET', `/v1/api/quotas/${db}`)).body;
  else if (action === 'remove') answer = (await call(c, 'DELETE', `/v1/api/quotas/${db}`)).body;
  else if (action === 'set') {
    if (!settings.length) throw usage('set takes FIELD=N, one or more');
    const body: Record<string, number> = {};
    for (const s of settings) {
      const m = /^([A-Za-z]+)=(\d{1,15})$/.exec(s);
      if (!m || !(FIELDS as readonly string[]).includes(m[1]!)) throw usage(`${s}: expected FIELD=N with FIELD one of ${FIELDS.join(', ')}`);
      body[m[1]!] = Number(m[2]);
    }
    answer = (await call(c, 'PUT', `/v1/api/quotas/${db}`, { body })).body;
  } else throw usage(`quota DB takes set or remove, not ${action}`);
  if (flags.json) out(JSON.stringify(answer, null, 2));
  else out(rows((answer.dbs as View[] | undefined) ?? [answer as unknown as View]));
  return EXIT.OK;
}
