import { z } from 'zod';
import { NAME_PATTERN, parseProgramName } from '../resources/table.js';

/**
 * What a backup holds, paths relative to STATE_DIR: the one list backup and restore both read.
 * - services/<program>/: each agent's spec, generated Flume config, metadata and revisions;
 *   its supervisord program is not kept (it holds this host's absolute paths): restore renders
 *   it again from the metadata and the desired state in the manifest.
 * - the secrets (control-token signing key, ingestion-token hash key, webhook signing key), the
 *   ingestion tokens, the revoked control tokens, pending webhook deliveries, the audit trail.
 * - optionally var/<program>/channel/ of agents that do not run (a channel copied while its
 *   JVM writes it would not be consistent).
 * Redis holds nothing a backup needs: it is filled again from these files.
 */
export const BACKUP_FORMAT = 1;

/** Single files under STATE_DIR, kept when present. */
export const STATE_FILES = [
  'var/jwt-secret',
  'var/token-hash-key',
  'var/webhook-secret',
  'var/revoked-control-tokens.json',
  'var/audit.log',
  ...[1, 2, 3, 4, 5].map((i) => `var/audit.log.${i}`),
] as const;

/** Directories under STATE_DIR, kept whole when present. */
export const STATE_DIRS = ['var/tokens', 'var/webhooks'] as const;

/** Where the settings file goes in the archive. */
export const SETTINGS_ENTRY = 'settings.env';
export const MANIFEST_ENTRY = 'backup.json';

const program = z.string().refine((p) => parseProgramName(p) !== null, 'must be flume-<db>-<table>');

export const manifestSchema = z.object({
  format: z.literal(BACKUP_FORMAT),
  createdAt: z.string(),
  /** The service's version that wrote it (package.json). */
  version: z.string(),
  host: z.string(),
  agents: z.array(
    z.object({
      program,
      db: z.string().regex(NAME_PATTERN),
      table: z.string().regex(NAME_PATTERN),
      desired: z.enum(['running', 'stopped']),
      /** Its channel is in the archive (var/<program>/channel/). */
      channel: z.boolean(),
    }),
  ),
  tokens: z.number().int().min(0),
  auditFiles: z.number().int().min(0),
  settings: z.boolean(),
});
export type Manifest = z.infer<typeof manifestSchema>;

/**
 * Whether an archive entry (as `tar -t` lists it, './' prefix removed) is one a backup writes.
 * Anything else (another path, '..', an absolute path) makes restore refuse the whole archive.
 */
export function allowedEntry(entry: string): boolean {
  const e = entry.replace(/^\.\//, '').replace(/\/$/, '');
  if (e === '' || e === '.' || e === MANIFEST_ENTRY || e === SETTINGS_ENTRY) return true;
  if (e.split('/').some((part) => part === '..' || part === '' || part === '.') || e.startsWith('/')) return false;
  if (!/^[A-Za-z0-9_.\/-]+$/.test(e)) return false;
  if (e === 'var' || e === 'services') return true;
  if ((STATE_FILES as readonly string[]).includes(e)) return true;
  if (STATE_DIRS.some((d) => e === d || e.startsWith(`${d}/`))) return true;
  const [top, prog, sub] = e.split('/');
  if (top === 'services' && prog && parseProgramName(prog)) return true;
  if (top === 'var' && prog && parseProgramName(prog) && (sub === undefined || sub === 'channel')) return true;
  return false;
}
