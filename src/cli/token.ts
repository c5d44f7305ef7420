/**
 * Mints a control-API token, signed with the same secret the API uses.
 *   npm run -s token -- --role admin [--db shop --db crm] [--ttl 30d] [--sub alice]
 * Prints the token alone on stdout, so TOKEN=$(npm run -s token -- --role admin) works. Without
 * --sub, the subject is the shell user plus a random suffix (alice-3f9a1c2e): every token minted
 * is its own principal in the audit trail and for Idempotency-Key.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import Fastify from 'fastify';
import fastifyJwt from '@fastify/jwt';
import { mintClaimsSchema, ROLES } from '../auth/roles.js';
import { loadOrCreateSecret } from '../auth/secret.js';
import { PROJECT_ROOT } from '../config-kinds.js';
import { loadConfig } from '../config-load.js';
import { actAsStateOwner } from '../store/state-owner.js';

const usage = `usage: npm run -s token -- --role ${ROLES.join('|')} [--db NAME]... [--ttl 30d] [--sub NAME]`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      role: { type: 'string' },
      db: { type: 'string', multiple: true },
      ttl: { type: 'string', default: '30d' },
      // Unique by default: the audit trail and Idempotency-Key records tell two minted tokens apart.
      sub: { type: 'string', default: `${process.env.USER || 'operator'}-${randomBytes(4).toString('hex')}` },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  const ttl = /^(\d+)([smhd])$/.exec(values.ttl);
  const seconds = ttl ? Number(ttl[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[ttl[2] as 's' | 'm' | 'h' | 'd'] : 0;
  if (!ttl || seconds < 1 || seconds > 365 * 86400) throw new Error(`--ttl must look like 45m, 12h or 30d, at most 365d\n${usage}`);
  const claims = mintClaimsSchema.safeParse({ sub: values.sub, role: values.role, dbs: values.db });
  if (!claims.success) {
    throw new Error(`${claims.error.issues.map((i) => `--${i.path[0] === 'dbs' ? 'db' : String(i.path[0])}: ${i.message}`).join('\n')}\n${usage}`);
  }
  // Run as root: as the state's owner from here on (var/jwt-secret is that user's file).
  actAsStateOwner(PROJECT_ROOT);
  const app = Fastify();
  await app.register(fastifyJwt, { secret: loadOrCreateSecret(loadConfig()), sign: { algorithm: 'HS256' } });
  await app.ready();
  const payload = Object.fromEntries(Object.entries(claims.data).filter(([, v]) => v !== undefined));
  // jti: the id by which this one token can be revoked (POST /v1/api/control-tokens/revoke).
  console.log(app.jwt.sign({ ...payload, jti: randomUUID() }, { expiresIn: seconds }));
  await app.close();
}

main().catch((e: Error) => {
  console.error(`token: ${e.message}`);
  process.exit(2);
});
