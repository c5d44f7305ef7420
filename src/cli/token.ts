/**
 * Mints a control-API token, signed with the same secret the API uses.
 *   npm run -s token -- --role admin [--db shop --db crm] [--ttl 30d] [--sub alice]
 * Prints the token alone on stdout, so TOKEN=$(npm run -s token -- --role admin) works.
 */
import { parseArgs } from 'node:util';
import Fastify from 'fastify';
import fastifyJwt from '@fastify/jwt';
import { claimsSchema, ROLES } from '../auth/roles.js';
import { loadOrCreateSecret } from '../auth/secret.js';
import { loadConfig } from '../config.js';

const usage = `usage: npm run -s token -- --role ${ROLES.join('|')} [--db NAME]... [--ttl 30d] [--sub NAME]`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      role: { type: 'string' },
      db: { type: 'string', multiple: true },
      ttl: { type: 'string', default: '30d' },
      sub: { type: 'string', default: process.env.USER ?? 'operator' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  if (!/^\d+[smhd]$/.test(values.ttl)) throw new Error(`--ttl must look like 45m, 12h or 30d\n${usage}`);
  const claims = claimsSchema.safeParse({ sub: values.sub, role: values.role, dbs: values.db });
  if (!claims.success) {
    throw new Error(`${claims.error.issues.map((i) => `--${i.path[0] === 'dbs' ? 'db' : String(i.path[0])}: ${i.message}`).join('\n')}\n${usage}`);
  }
  const app = Fastify();
  await app.register(fastifyJwt, { secret: loadOrCreateSecret(loadConfig()), sign: { algorithm: 'HS256' } });
  await app.ready();
  const payload = Object.fromEntries(Object.entries(claims.data).filter(([, v]) => v !== undefined));
  console.log(app.jwt.sign(payload, { expiresIn: values.ttl }));
  await app.close();
}

main().catch((e: Error) => {
  console.error(`token: ${e.message}`);
  process.exit(2);
});
