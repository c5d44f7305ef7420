import { z } from 'zod';
import { desiredSchema } from '../resources/agent-status.js';
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
      desired: desiredSchema,
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

/** One entry of an archive as GNU tar -tv lists it. */
export interface ArchiveEntry {
  /** '-' a file, 'd' a directory, anything else (a link, a device) refused. */
  type: string;
  size: number;
  /** As listed, './' prefix and trailing '/' removed. */
  name: string;
}

/**
 * GNU tar -tv lines: "drwxr-x--- root/root 0 2026-12-02 18:00 ./services/" (mode, owner, size,
 * date, time, name; names a backup writes have no spaces). A line of another shape is kept with
 * type '?', so it is refused.
 */
export function parseTarListing(stdout: string): ArchiveEntry[] {
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const f = line.split(/\s+/);
      const size = Number(f[2]);
      const name = f.slice(5).join(' ').replace(/^\.\//, '').replace(/\/$/, '');
      return { type: f.length >= 6 && Number.isSafeInteger(size) ? line[0]! : '?', size: Number.isSafeInteger(size) ? size : Infinity, name };
    });
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/**
 * The largest an entry may be: each kind of file a backup writes has a size it never exceeds on
 * the host that wrote it (an audit file rotates at AUDIT_LOG_MAX_BYTES, a secret is a line),
 * with room to spare; a channel file is Flume's (a data file is at most 2 GiB by default).
 */
export function entryCap(name: string, auditMaxBytes: number): number {
  if (name === MANIFEST_ENTRY) return 16 * MiB;
  if (name === SETTINGS_ENTRY) return 64 * KiB;
  if (name === 'var/jwt-secret' || name === 'var/token-hash-key' || name === 'var/webhook-secret') return 4 * KiB;
  if (name === 'var/revoked-control-tokens.json') return 16 * MiB;
  // Rotated at the writing host's limit, which may have been larger than this host's: twice this host's, at least 20 MiB.
  if (name.startsWith('var/audit.log')) return Math.max(2 * auditMaxBytes, 20 * MiB);
  if (name.startsWith('var/tokens/')) return 256 * KiB;
  if (name.startsWith('var/webhooks/')) return 4 * MiB;
  if (name.startsWith('services/')) return 4 * MiB;
  if (/^var\/[^/]+\/channel\//.test(name)) return 4 * GiB;
  return 0;
}

/** What is wrong with an archive's entries (empty: nothing): names, types and sizes, and the whole's `maxTotal`. */
export function archiveProblems(entries: ArchiveEntry[], limits: { auditMaxBytes: number; maxTotal: number }): string[] {
  const problems: string[] = [];
  const bad = entries.filter((e) => (e.type !== '-' && e.type !== 'd') || !allowedEntry(e.name)).map((e) => e.name || '(unnamed)');
  if (bad.length) problems.push(`it holds entries a backup never writes: ${bad.slice(0, 5).join(', ')}${bad.length > 5 ? ', ...' : ''}`);
  const large = entries.filter((e) => e.type === '-' && e.size > entryCap(e.name, limits.auditMaxBytes));
  if (large.length) {
    problems.push(`entries larger than a backup writes them: ${large.slice(0, 5).map((e) => `${e.name} (${e.size} bytes, at most ${entryCap(e.name, limits.auditMaxBytes)})`).join(', ')}${large.length > 5 ? ', ...' : ''}`);
  }
  const total = entries.reduce((n, e) => n + (e.type === '-' ? e.size : 0), 0);
  if (total > limits.maxTotal) problems.push(`it unpacks to ${total} bytes, over the ${limits.maxTotal} this restore takes (--max-bytes)`);
  return problems;
}
