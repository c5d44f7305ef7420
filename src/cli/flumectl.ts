#!/usr/bin/env node
/**
 * flumectl: the control API from a shell. URL and token from --url/--token(-file) or
 * FLUME_API_URL / FLUME_TOKEN (FLUME_TOKEN_FILE); --json prints the API's answers as they are.
 * Exit codes: 0 done, 1 the API refused (its message printed), 2 usage, 3 API unreachable,
 * 4 done with failures (a bulk operation). `flumectl help` lists the commands.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CliError, EXIT, call, connection, events, type Connection } from './flumectl/client.js';
import { table, tableRef } from './flumectl/format.js';
import { countDuplicates } from './flumectl/duplicates.js';
import { applyFleet, exportFleet, readFleet } from './flumectl/fleet.js';
import { loggers } from './flumectl/loggers.js';
import { quota } from './flumectl/quota.js';
import { adoptPlan } from './flumectl/adopt.js';
import { follow, summary, type OperationView } from './flumectl/operation.js';

const USAGE = `usage: flumectl [--url URL] [--token TOKEN | --token-file FILE] [--json] COMMAND

  status [DB | DB.TABLE]                 every agent (or one db's, or one table's status)
  create DB.TABLE [-f SPEC.json]         create and start an agent (no file: file_roll defaults)
  start | stop | restart DB.TABLE
  pause | resume DB.TABLE
  delete DB.TABLE [--force]
  config get DB.TABLE                    the desired spec and its revision
  config diff DB.TABLE -f SPEC.json      what applying SPEC would change (a dry run)
  config apply DB.TABLE -f SPEC.json     apply SPEC, only if nobody changed the config since it was read
  bulk OP (--db DB | --tables A.B,C.D | --all) [--concurrency N]
                                         OP: start stop restart pause resume delete; shows progress
  fleet export [--db DB]                 every table's desired spec as a fleet document (YAML; --json: JSON)
  apply -f FLEET.yaml [--db DB] [--dry-run] [--prune] [--canary N] [--concurrency N] [--drain-seconds N]
                                         make the tables so: --dry-run shows the plan with diffs; a change that
                                         does not come up halts it (exit 4); --prune drains and deletes absent tables
  adopt --from DIR [--seed-redis URL] [--name-node hdfs://H:P] [--apply [--tables A.B,C.D]]
                                         take over an installation of the original design (its conf.d/,
                                         services/ and Redis ports): the plan (read only); --apply does it,
                                         a table at a time, keeping each port and channel (admin)
  logs DB.TABLE [-n LINES] [--follow]    the agent's log
  loggers DB.TABLE [LOGGER LEVEL [--save] | LOGGER --forget]
                                         log levels: list; set one now (until a restart, or every start with
                                         --save); forget a saved one. LOGGER: root or e.g. org.apache.flume.sink
  quota [DB [set FIELD=N ... | remove]]  each db's quota at the gateway and its use; set (admin): FIELD is
                                         eventsPerSecond, bytesPerSecond, eventsPerDay or bytesPerDay
  incidents [DB.TABLE] [-n N]            the newest incidents
  ack DB.TABLE INCIDENT_ID               acknowledge one
  token USERNAME [--scope DB,DB.TABLE]   mint (or rotate) an ingestion token; prints it
  trace DB.TABLE REQUEST_ID              where an ingest request got to: accepted, committed, taken by the sink
  duplicates                             count records that repeat an eventId, from stdin: the output of
                                         kafka-console-consumer.sh ... --property print.headers=true

environment: FLUME_API_URL (default http://127.0.0.1:8001), FLUME_TOKEN or FLUME_TOKEN_FILE
exit codes: 0 done, 1 the API refused, 2 usage, 3 API unreachable, 4 done with failures`;

type Flags = {
  url?: string;
  token?: string;
  'token-file'?: string;
  json?: boolean;
  file?: string;
  force?: boolean;
  db?: string;
  tables?: string;
  all?: boolean;
  concurrency?: string;
  canary?: string;
  'dry-run'?: boolean;
  prune?: boolean;
  save?: boolean;
  from?: string;
  apply?: boolean;
  'seed-supervisorctl'?: string;
  'seed-redis'?: string;
  'name-node'?: string;
  forget?: boolean;
  'drain-seconds'?: string;
  lines?: string;
  follow?: boolean;
  scope?: string;
  help?: boolean;
};

const usage = (why: string) => new CliError(EXIT.USAGE, `${why}\n\n${USAGE}`);
const ref = (arg: string | undefined) => {
  const r = tableRef(arg);
  if (!r) throw usage(`expected DB.TABLE (lower-case letters, digits, _), got ${arg ?? 'nothing'}`);
  return r;
};
const readSpec = (file: string | undefined): unknown => {
  if (!file) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as unknown;
  } catch (err) {
    throw new CliError(EXIT.USAGE, `cannot read the spec ${file}: ${(err as Error).message}`);
  }
};

/** Lines of stdin, as they come. */
async function* stdinLines(): AsyncGenerator<string> {
  let rest = '';
  for await (const chunk of process.stdin) {
    const lines = (rest + String(chunk)).split('\n');
    rest = lines.pop() ?? '';
    yield* lines;
  }
  if (rest) yield rest;
}

async function run(args: string[], flags: Flags, out: (s: string) => void): Promise<number> {
  const [command, ...rest] = args;
  if (!command || command === 'help' || flags.help) {
    out(USAGE);
    return command || flags.help ? EXIT.OK : EXIT.USAGE;
  }
  if (command === 'duplicates') {
    // Reads Kafka's console consumer, not the API: no URL or token needed.
    const lines: string[] = [];
    for await (const l of stdinLines()) lines.push(l);
    const c = countDuplicates(lines);
    out(
      flags.json
        ? JSON.stringify(c, null, 2)
        : [
            `${c.records} record(s), ${c.events} event(s) by eventId: ${c.duplicates} duplicate(s)${c.withoutId ? `, ${c.withoutId} without an eventId` : ''}`,
            ...c.top.map((t) => `  ${t.eventId}: ${t.copies} copies`),
          ].join('\n'),
    );
    return EXIT.OK;
  }
  const c: Connection = connection(flags);
  const print = (body: Record<string, unknown>, text: () => string) => out(flags.json ? JSON.stringify(body, null, 2) : text());
  const path = (r: { db: string; table: string }) => `/v1/api/${r.db}/${r.table}`;

  switch (command) {
    case 'status': {
      const one = tableRef(rest[0]);
      if (one) {
        const { body } = await call(c, 'GET', `${path(one)}/status`);
        print(body, () => `${String(body.program)}: ${String(body.state)}, ${String(body.health)} (${String(body.healthReason)})${body.paused ? ', paused' : ''}`);
        return EXIT.OK;
      }
      if (rest[0] && !/^[a-z0-9][a-z0-9_]{0,47}$/.test(rest[0])) throw usage(`expected DB or DB.TABLE, got ${rest[0]}`);
      const { body } = await call(c, 'GET', `/v1/api/services${rest[0] ? `?db=${rest[0]}` : ''}`);
      const agents = (body.agents ?? []) as Array<Record<string, unknown>>;
      print(body, () =>
        agents.length
          ? table([
              ['TABLE', 'STATE', 'DESIRED', 'HEALTH', 'ACCEPTING', 'NODE', 'REASON'],
              ...agents.map((a) => [`${String(a.db)}.${String(a.table)}`, String(a.state), String(a.desired), String(a.health) + (a.paused ? ' (paused)' : ''), a.accepting ? 'yes' : 'no', String(a.node), String(a.healthReason)]),
            ])
          : 'no agents',
      );
      return EXIT.OK;
    }
    case 'create': {
      const r = ref(rest[0]);
      const { status, body } = await call(c, 'POST', `${path(r)}/create`, { body: readSpec(flags.file) ?? {} });
      print(body, () => `${String(body.message)}${status === 200 ? ' (it was there already)' : ''}`);
      return EXIT.OK;
    }
    case 'start':
    case 'stop':
    case 'restart':
    case 'pause':
    case 'resume': {
      const { body } = await call(c, 'POST', `${path(ref(rest[0]))}/${command}`);
      print(body, () => String(body.message));
      return EXIT.OK;
    }
    case 'delete': {
      const { body } = await call(c, 'DELETE', `${path(ref(rest[0]))}${flags.force ? '?force=true' : ''}`);
      print(body, () => String(body.message));
      return EXIT.OK;
    }
    case 'config': {
      const [sub, target] = rest;
      const r = ref(target);
      if (sub === 'get') {
        const { body } = await call(c, 'GET', `${path(r)}/config`);
        print(body, () => `${String(body.program)} revision ${String((body.revision as { desired: number }).desired)}\n${JSON.stringify(body.spec, null, 2)}`);
        return EXIT.OK;
      }
      if (sub !== 'diff' && sub !== 'apply') throw usage(`config takes get, diff or apply, not ${sub ?? 'nothing'}`);
      const spec = readSpec(flags.file);
      if (spec === undefined) throw usage(`config ${sub} needs -f SPEC.json`);
      if (sub === 'diff') {
        const { body } = await call(c, 'PUT', `${path(r)}/config?dryRun=true`, { body: spec });
        print(body, () => (String(body.diff).includes('@@') ? String(body.diff) : 'no change'));
        return EXIT.OK;
      }
      // Applied only onto the revision read here: someone else's change in between is a 412, not lost.
      const read = await call(c, 'GET', `${path(r)}/config`);
      const { body } = await call(c, 'PUT', `${path(r)}/config`, { body: spec, headers: { 'if-match': read.headers.get('etag') ?? '*' } });
      print(body, () => String(body.message));
      return EXIT.OK;
    }
    case 'bulk': {
      const op = rest[0];
      if (!op || !['start', 'stop', 'restart', 'pause', 'resume', 'delete'].includes(op)) throw usage(`bulk takes start, stop, restart, pause, resume or delete, not ${op ?? 'nothing'}`);
      const selector = flags.all ? { all: true } : flags.db ? { db: flags.db } : flags.tables ? { tables: flags.tables.split(',').map((t) => t.trim()) } : null;
      if (!selector) throw usage('bulk needs --db DB, --tables A.B,C.D or --all');
      const concurrency = flags.concurrency ? Number(flags.concurrency) : undefined;
      if (concurrency !== undefined && !Number.isInteger(concurrency)) throw usage('--concurrency is a whole number');
      const started = await call(c, 'POST', `/v1/api/bulk/${op}`, { body: { ...selector, ...(concurrency ? { concurrency } : {}) } });
      const o = await follow(c, started.body.operation as OperationView, op, Boolean(flags.json));
      print({ code: 0, operation: o }, () => summary(op, o));
      return o.counts.failed ? EXIT.PARTIAL : EXIT.OK;
    }
    case 'fleet': {
      if (rest[0] !== 'export') throw usage(`fleet takes export, not ${rest[0] ?? 'nothing'}`);
      out(await exportFleet(c, flags.db, Boolean(flags.json)));
      return EXIT.OK;
    }
    case 'apply':
      return applyFleet(c, readFleet(flags.file), flags, out);
    case 'adopt':
      return adoptPlan(c, flags, out);
    case 'loggers':
      return loggers(c, ref(rest[0]), rest.slice(1), flags, out);
    case 'quota':
      return quota(c, rest, flags, out);
    case 'logs': {
      const r = ref(rest[0]);
      const lines = flags.lines ?? '50';
      if (!/^\d{1,4}$/.test(lines)) throw usage('-n takes a number of lines (at most 1000)');
      if (flags.follow) {
        for await (const e of events(c, `${path(r)}/logs?lines=${lines}&follow=true`)) {
          const d = e.data as { line?: string; lines?: string[] };
          for (const l of d.lines ?? (d.line !== undefined ? [d.line] : [])) out(l);
        }
        return EXIT.OK;
      }
      const { body } = await call(c, 'GET', `${path(r)}/logs?lines=${lines}`);
      print(body, () => ((body.lines ?? []) as string[]).join('\n'));
      return EXIT.OK;
    }
    case 'incidents': {
      const n = flags.lines ?? '20';
      if (!/^\d{1,3}$/.test(n)) throw usage('-n takes a number of incidents');
      const one = rest[0] ? ref(rest[0]) : null;
      const { body } = await call(c, 'GET', one ? `${path(one)}/incidents` : `/v1/api/incidents?limit=${n}`);
      const list = ((body.incidents ?? []) as Array<Record<string, unknown>>).slice(0, Number(n));
      print(body, () =>
        list.length
          ? table([['AT', 'TABLE', 'TYPE', 'SEVERITY', 'ACK', 'ID', 'MESSAGE'], ...list.map((i) => [String(i.at), `${String(i.db)}.${String(i.table)}`, String(i.type), String(i.severity), i.acknowledged ? 'yes' : 'no', String(i.id), String(i.message)])])
          : 'no incidents',
      );
      return EXIT.OK;
    }
    case 'ack': {
      const r = ref(rest[0]);
      if (!rest[1] || !/^[0-9a-f-]{36}$/.test(rest[1])) throw usage('ack takes DB.TABLE and the incident id');
      const { body } = await call(c, 'POST', `${path(r)}/incidents/${rest[1]}/ack`);
      print(body, () => String(body.message));
      return EXIT.OK;
    }
    case 'token': {
      const username = rest[0];
      if (!username) throw usage('token takes the sender name');
      const scope = flags.scope ? flags.scope.split(',').map((s) => s.trim()) : undefined;
      const { body } = await call(c, 'POST', '/v1/api/token', { body: { username, ...(scope ? { scope } : {}) } });
      // The token alone on stdout: TOKEN=$(flumectl token billing) works.
      print(body, () => String(body.token));
      return EXIT.OK;
    }
    case 'trace': {
      const r = ref(rest[0]);
      const id = rest[1];
      if (!id || !/^[A-Za-z0-9._:@/+=-]{1,128}$/.test(id)) throw usage('trace takes DB.TABLE and the request id (the X-Request-Id the gateway answered)');
      const { body } = await call(c, 'GET', `${path(r)}/trace/${encodeURIComponent(id)}`);
      const at = (k: string) => (body[k] ? Date.parse(String(body[k])) : null);
      const [t0, t1, t2] = [at('acceptedAt'), at('committedAt'), at('takenBy')];
      print(body, () =>
        [
          `${id}: ${String(body.events)} event(s), answered on the ${String(body.ack)}`,
          `  accepted                 ${String(body.acceptedAt)}`,
          `  committed to the channel ${String(body.committedAt)} (+${t1! - t0!} ms)`,
          `  taken by the sink        ${t2 === null ? 'not yet known' : `by ${String(body.takenBy)} (+${t2 - t0!} ms)`}`,
        ].join('\n'),
      );
      return EXIT.OK;
    }
    default:
      throw usage(`unknown command ${command}`);
  }
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        url: { type: 'string' },
        token: { type: 'string' },
        'token-file': { type: 'string' },
        json: { type: 'boolean' },
        file: { type: 'string', short: 'f' },
        force: { type: 'boolean' },
        db: { type: 'string' },
        tables: { type: 'string' },
        all: { type: 'boolean' },
        concurrency: { type: 'string' },
        canary: { type: 'string' },
        'dry-run': { type: 'boolean' },
        prune: { type: 'boolean' },
        save: { type: 'boolean' },
        from: { type: 'string' },
        apply: { type: 'boolean' },
        'seed-supervisorctl': { type: 'string' },
        'seed-redis': { type: 'string' },
        'name-node': { type: 'string' },
        forget: { type: 'boolean' },
        'drain-seconds': { type: 'string' },
        lines: { type: 'string', short: 'n' },
        follow: { type: 'boolean' },
        scope: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    process.stderr.write(`flumectl: ${(err as Error).message}\n\n${USAGE}\n`);
    process.exit(EXIT.USAGE);
  }
  try {
    process.exitCode = await run(parsed.positionals, parsed.values as Flags, (s) => process.stdout.write(`${s}\n`));
  } catch (err) {
    if (err instanceof CliError) {
      if (parsed.values.json && err.body) process.stdout.write(`${JSON.stringify(err.body, null, 2)}\n`);
      process.stderr.write(`flumectl: ${err.message}\n`);
      process.exitCode = err.exitCode;
      return;
    }
    throw err;
  }
}

await main();
