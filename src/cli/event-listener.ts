/**
 * supervisord event listener ([eventlistener:agent-events], events=PROCESS_STATE): forwards each
 * process state change to the Redis stream <p>supervisor-events, where the API's incident
 * service reads it. Speaks supervisor's listener protocol on stdin/stdout, so it writes
 * nothing else to stdout. It always acknowledges (RESULT OK): an event it could not forward is
 * recovered by the API's periodic resync, never retried into supervisord's buffer.
 */
import { loadConfig } from '../config-load.js';
import { createRedis } from '../redis/client.js';
import { makeKeys } from '../redis/keys.js';

const cfg = loadConfig();
const keys = makeKeys(cfg.REDIS_KEY_PREFIX);
const redis = createRedis(cfg.REDIS_URL, cfg.REDIS_TLS_CA_FILE);
redis.on('error', () => undefined);
void redis.connect().catch(() => undefined);

const parse = (line: string) =>
  Object.fromEntries(
    line
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf(':')), kv.slice(kv.indexOf(':') + 1)]),
  );

let buf = Buffer.alloc(0);
let header: Record<string, string> | null = null;

async function forward(eventname: string, payload: Record<string, string>): Promise<void> {
  try {
    await redis.xadd(keys.supervisorEvents(), 'MAXLEN', '~', '10000', '*', 'event', eventname, 'at', String(Date.now()), ...Object.entries(payload).flat());
  } catch (e) {
    process.stderr.write(`event-listener: could not forward ${eventname}: ${(e as Error).message}\n`);
  }
}

async function drain(): Promise<void> {
  for (;;) {
    if (!header) {
      const nl = buf.indexOf(10);
      if (nl < 0) return;
      header = parse(buf.subarray(0, nl).toString('utf8'));
      buf = buf.subarray(nl + 1);
    }
    const len = Number(header.len ?? 0);
    if (buf.length < len) return;
    const body = buf.subarray(0, len).toString('utf8');
    buf = buf.subarray(len);
    const eventname = header.eventname ?? 'UNKNOWN';
    header = null;
    // The payload's first line holds the fields; PROCESS_LOG events would carry data after it.
    await forward(eventname, parse(body.split('\n')[0] ?? ''));
    process.stdout.write('RESULT 2\nOKREADY\n');
  }
}

let chain = Promise.resolve();
process.stdin.on('data', (chunk: Buffer) => {
  buf = Buffer.concat([buf, chunk]);
  chain = chain.then(drain);
});
process.stdin.on('end', () => process.exit(0));
process.stdout.write('READY\n');
