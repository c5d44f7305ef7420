import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { TokenListing, TokenRequest, TokenSetResult } from '../resources/token.js';
import { AppError, ErrorCodes, forbidden, tokenUserNotFound } from '../errors.js';
import { writeAtomic } from '../store/files.js';
import { redisCall } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';

export { tokenRequestSchema, type TokenListing, type TokenRequest, type TokenSetResult } from '../resources/token.js';

/**
 * What Redis and var/tokens/ hold instead of a token: HMAC-SHA1, keyed with the server's token
 * hash key, of the token's SHA-1 (hex). The gateway computes the same with ngx.sha1_bin and
 * ngx.hmac_sha1. Records written before the key existed were keyed by the bare SHA-1; since the
 * SHA-1 is inside, they are migrated without knowing any token (see `migrate`).
 */
export const hashToken = (token: string, key: string) => keyHash(createHash('sha1').update(token).digest('hex'), key);
const keyHash = (sha1Hex: string, key: string) => createHmac('sha1', key).update(sha1Hex).digest('hex');
/** The user-record field that marks records keyed with the HMAC (absent: legacy SHA-1). */
const HASH_VERSION = 'hashv';

// Sets a user's token, keeping the one it replaces valid for a grace period.
// KEYS: 1 user hash, 2 new token hash key, 3 current token key (as read), 4 previous token key
//       (as read), 5 users set.
// ARGV: 1 username, 2 new hash, 3 scope, 4 exp (unix s, 0 = none), 5 now, 6 grace seconds,
//       7 expected current hash ('' = none), 8 expected previous hash, 9 invalidate channel,
//       10 key prefix of token keys (for invalidation messages only), 11 expected current scope
//       ('' = none: the scope the caller was checked against).
// Returns 'RETRY' if the user changed since it was read, else the graceUntil of the old token.
const SET_TOKEN = `
local cur = redis.call('HGET', KEYS[1], 'current') or ''
local prev = redis.call('HGET', KEYS[1], 'previous') or ''
local scope = redis.call('HGET', KEYS[1], 'scope') or ''
if cur ~= ARGV[7] or prev ~= ARGV[8] or scope ~= ARGV[11] then return 'RETRY' end
local now, grace = tonumber(ARGV[5]), tonumber(ARGV[6])
if prev ~= '' and prev ~= ARGV[2] then
  redis.call('DEL', KEYS[4])
  redis.call('PUBLISH', ARGV[9], 'token:' .. prev)
end
local graceUntil = 0
if cur ~= '' and cur ~= ARGV[2] then
  if grace > 0 then
    graceUntil = now + grace
    redis.call('HSET', KEYS[3], 'graceUntil', graceUntil)
    redis.call('EXPIREAT', KEYS[3], graceUntil + 60)
  else
    redis.call('DEL', KEYS[3])
    cur = ''
  end
  redis.call('PUBLISH', ARGV[9], 'token:' .. ARGV[7])
else
  cur = ''
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'user', ARGV[1], 'scope', ARGV[3], 'exp', ARGV[4], 'graceUntil', 0)
if tonumber(ARGV[4]) > 0 then redis.call('EXPIREAT', KEYS[2], tonumber(ARGV[4]) + 60) end
redis.call('PUBLISH', ARGV[9], 'token:' .. ARGV[2])
redis.call('HSET', KEYS[1], 'current', ARGV[2], 'previous', cur, 'previousUntil', graceUntil,
  'scope', ARGV[3], 'exp', ARGV[4], 'createdAt', now, 'hashv', '2')
redis.call('SADD', KEYS[5], ARGV[1])
return tostring(graceUntil)`;

// Revokes all of a user's tokens at once.
// KEYS: 1 user hash, 2 current token key, 3 previous token key, 4 users set.
// ARGV: 1 username, 2 expected current, 3 expected previous, 4 invalidate channel.
// Returns 'RETRY' if the user changed since it was read, 'NONE' if unknown, else 'OK'.
const REVOKE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'NONE' end
local cur = redis.call('HGET', KEYS[1], 'current') or ''
local prev = redis.call('HGET', KEYS[1], 'previous') or ''
if cur ~= ARGV[2] or prev ~= ARGV[3] then return 'RETRY' end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('SREM', KEYS[4], ARGV[1])
if cur ~= '' then redis.call('PUBLISH', ARGV[4], 'token:' .. cur) end
if prev ~= '' then redis.call('PUBLISH', ARGV[4], 'token:' .. prev) end
return 'OK'`;

// Re-keys one user's legacy (bare SHA-1) records with the HMAC.
// KEYS: 1 user hash, 2 old current key, 3 old previous key, 4 new current key, 5 new previous key.
// ARGV: 1 expected old current, 2 expected old previous, 3 new current, 4 new previous, 5 channel.
// Returns 'DONE' (already migrated or gone), 'RETRY' if the user changed, else 'OK'.
const MIGRATE = `
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HGET', KEYS[1], 'hashv') == '2' then return 'DONE' end
local cur = redis.call('HGET', KEYS[1], 'current') or ''
local prev = redis.call('HGET', KEYS[1], 'previous') or ''
if cur ~= ARGV[1] or prev ~= ARGV[2] then return 'RETRY' end
if cur ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RENAME', KEYS[2], KEYS[4]) end
if prev ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then redis.call('RENAME', KEYS[3], KEYS[5]) end
redis.call('HSET', KEYS[1], 'current', ARGV[3], 'previous', ARGV[4], 'hashv', '2')
if cur ~= '' then redis.call('PUBLISH', ARGV[5], 'token:' .. cur) end
if prev ~= '' then redis.call('PUBLISH', ARGV[5], 'token:' .. prev) end
return 'OK'`;

/** var/tokens/<user>.json: what Redis holds for one user (hashes only). */
const savedUserSchema = z.object({
  username: z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/),
  user: z.record(z.string(), z.string()),
  tokens: z.record(z.string(), z.record(z.string(), z.string())),
});
type SavedUser = z.infer<typeof savedUserSchema>;

const iso = (unix: string | number | undefined | null) => (Number(unix) > 0 ? new Date(Number(unix) * 1000).toISOString() : null);
const scopeOut = (s: string | undefined): string[] | '*' => (!s || s === '*' ? '*' : s.split(' '));

/**
 * Ingestion tokens, as the gateway checks them.
 *
 * Guarantees: Redis and var/tokens/ hold only keyed hashes of tokens (see hashToken); set and revoke are atomic Lua scripts
 * (a concurrent change makes them re-read and retry); setting a new token keeps the replaced
 * one valid for TOKEN_GRACE_SECONDS and ends any older one; revoke ends all at once; every
 * change is published on the invalidate channel so gateway caches drop it immediately; every
 * change is copied to var/tokens/ (hashes only) so a Redis loss loses no sender's token.
 */
export class TokenService {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly graceSeconds: number,
    private readonly log: Logger,
    /** var/tokens/: a copy of each user's records (hashes only), to survive a Redis loss. */
    private readonly dir: string,
    /** Keys token hashes (HMAC); kept outside Redis. */
    private readonly hashKey: string,
  ) {}

  private file(username: string): string {
    return join(this.dir, `${username}.json`);
  }

  /** Copies what Redis now holds for the user to disk (mode 0600). Logged, never thrown. */
  private async persist(username: string): Promise<void> {
    try {
      const user = await this.redis.hgetall(this.keys.user(username));
      const tokens: Record<string, Record<string, string>> = {};
      for (const hash of [user.current, user.previous].filter((h): h is string => !!h)) {
        const { lastUsed: _l, ...record } = await this.redis.hgetall(this.keys.token(hash));
        if (record.user) tokens[hash] = record;
      }
      await this.writeSaved({ username, user, tokens });
    } catch (err) {
      this.log.error({ err, username }, 'could not copy the token records to disk');
    }
  }

  /**
   * Puts back into Redis the users (and their unexpired tokens) that are on disk but not in
   * Redis: after a Redis that keeps nothing restarted, senders' tokens work again.
   * Idempotent. Returns the usernames restored.
   */
  readonly part = 'tokens';

  /** Restorable: the tokens on disk back into Redis (every restore, lost or not). */
  restore(): Promise<string[]> {
    return this.restoreFromDisk();
  }

  async restoreFromDisk(): Promise<string[]> {
    await this.migrate();
    const restored: string[] = [];
    const now = Math.floor(Date.now() / 1000);
    for (const f of (await readdir(this.dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json') && !n.startsWith('.'))) {
      const saved = await this.readSaved(f);
      if (!saved) continue;
      if (await redisCall(() => this.redis.exists(this.keys.user(saved.username)))) continue;
      const tx = this.redis.multi().hset(this.keys.user(saved.username), saved.user).sadd(this.keys.users(), saved.username);
      for (const [hash, record] of Object.entries(saved.tokens)) {
        const ends = [Number(record.exp), Number(record.graceUntil)].filter((t) => t > 0);
        if (ends.some((t) => t <= now)) continue;
        tx.hset(this.keys.token(hash), record);
        if (ends.length) tx.expireat(this.keys.token(hash), Math.min(...ends) + 60);
        tx.publish(this.keys.invalidateChannel(), `token:${hash}`);
      }
      await redisCall(() => tx.exec());
      restored.push(saved.username);
    }
    if (restored.length) this.log.warn({ users: restored }, 'restored ingestion tokens from disk into Redis');
    return restored;
  }

  /**
   * Re-keys records written before token hashes were keyed (bare SHA-1) with the HMAC, on disk
   * and in Redis; every token keeps working. Idempotent: run by every restore. Returns the
   * users migrated.
   */
  async migrate(): Promise<string[]> {
    const migrated = new Set<string>();
    const rekey = (h: string | undefined) => (h ? keyHash(h, this.hashKey) : '');
    for (const f of (await readdir(this.dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json') && !n.startsWith('.'))) {
      const saved = await this.readSaved(f);
      if (!saved || saved.user[HASH_VERSION] === '2') continue;
      const user = { ...saved.user, current: rekey(saved.user.current), previous: rekey(saved.user.previous), [HASH_VERSION]: '2' };
      const tokens = Object.fromEntries(Object.entries(saved.tokens).map(([h, r]) => [rekey(h), r]));
      await this.writeSaved({ username: saved.username, user, tokens });
      migrated.add(saved.username);
    }
    for (const username of await redisCall(() => this.redis.smembers(this.keys.users()))) {
      for (let attempt = 0; attempt < 5; attempt++) {
        const { cur, prev, version } = await this.heads(username);
        if (version === '2') break;
        const r = await redisCall(() =>
          this.redis.eval(
            MIGRATE,
            5,
            this.keys.user(username),
            this.keys.token(cur || 'none'),
            this.keys.token(prev || 'none'),
            this.keys.token(rekey(cur) || 'none'),
            this.keys.token(rekey(prev) || 'none'),
            cur,
            prev,
            rekey(cur),
            rekey(prev),
            this.keys.invalidateChannel(),
          ),
        );
        if (r === 'RETRY') continue;
        if (r === 'OK') {
          migrated.add(username);
          await this.persist(username);
        }
        break;
      }
    }
    if (migrated.size) this.log.warn({ users: [...migrated] }, 'ingestion token records re-keyed with the token hash key (HMAC)');
    return [...migrated];
  }

  /** The user's current and previous token hashes and hash version, '' where absent. */
  private async heads(username: string): Promise<{ cur: string; prev: string; version: string }> {
    const [cur, prev, version] = await redisCall(() => this.redis.hmget(this.keys.user(username), 'current', 'previous', HASH_VERSION));
    return { cur: cur ?? '', prev: prev ?? '', version: version ?? '' };
  }

  private async writeSaved(saved: SavedUser): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeAtomic(this.file(saved.username), JSON.stringify(saved), 0o600);
  }

  /** One var/tokens/ file; null (logged) if it is not a readable record: one bad file stops nothing. */
  private async readSaved(f: string): Promise<SavedUser | null> {
    try {
      const saved = savedUserSchema.parse(JSON.parse(await readFile(join(this.dir, f), 'utf8')));
      if (`${saved.username}.json` !== f) throw new Error(`it holds user ${saved.username}`);
      return saved;
    } catch (err) {
      this.log.error({ file: join(this.dir, f), err: (err as Error).message }, 'skipped an unreadable ingestion token record');
      return null;
    }
  }

  /**
   * Sets (or rotates) the user's token. `mayReplace` is asked about the scope the user has now
   * (not called for a new user); false: `forbidden` is thrown and nothing changes. The scope it
   * was asked about is the one replaced (the script re-checks it), so a caller limited to some
   * dbs can never take over another db's user.
   */
  async set(req: TokenRequest, mayReplace: (scope: string[] | '*') => boolean = () => true): Promise<TokenSetResult> {
    const token = req.token ?? randomBytes(32).toString('base64url');
    const hash = hashToken(token, this.hashKey);
    const now = Math.floor(Date.now() / 1000);
    const exp = req.ttlSeconds ? now + req.ttlSeconds : 0;
    const scope = req.scope ? [...new Set(req.scope)].join(' ') : '*';
    for (let attempt = 0; attempt < 5; attempt++) {
      const { cur, prev } = await this.heads(req.username);
      const current = (await redisCall(() => this.redis.hget(this.keys.user(req.username), 'scope'))) ?? '';
      if (current !== '' && !mayReplace(scopeOut(current))) {
        throw forbidden(`${req.username}'s token reaches dbs this control token is not limited to`);
      }
      const r = await redisCall(() =>
        this.redis.eval(
          SET_TOKEN,
          5,
          this.keys.user(req.username),
          this.keys.token(hash),
          this.keys.token(cur || 'none'),
          this.keys.token(prev || 'none'),
          this.keys.users(),
          req.username,
          hash,
          scope,
          exp,
          now,
          this.graceSeconds,
          cur,
          prev,
          this.keys.invalidateChannel(),
          this.keys.prefix,
          current,
        ),
      );
      if (r === 'RETRY') continue;
      this.log.info({ username: req.username, scope, exp, rotated: cur !== '' }, 'ingestion token set');
      await this.persist(req.username);
      return {
        username: req.username,
        ...(req.token ? {} : { token }),
        scope: scopeOut(scope),
        expiresAt: iso(exp),
        previousValidUntil: iso(String(r)),
      };
    }
    throw new AppError(ErrorCodes.BUSY, 'BUSY', 409, `the token of ${req.username} is being changed concurrently; retry`);
  }

  async revoke(username: string): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const { cur, prev } = await this.heads(username);
      const r = await redisCall(() =>
        this.redis.eval(
          REVOKE,
          4,
          this.keys.user(username),
          this.keys.token(cur || 'none'),
          this.keys.token(prev || 'none'),
          this.keys.users(),
          username,
          cur,
          prev,
          this.keys.invalidateChannel(),
        ),
      );
      if (r === 'NONE') throw tokenUserNotFound(username);
      if (r === 'OK') {
        await rm(this.file(username), { force: true });
        this.log.info({ username }, 'ingestion tokens revoked');
        return;
      }
    }
    throw new AppError(ErrorCodes.BUSY, 'BUSY', 409, `the token of ${username} is being changed concurrently; retry`);
  }

  /** A user's scope, or null if the user has no token. */
  async scopeOf(username: string): Promise<string[] | '*' | null> {
    const scope = await redisCall(() => this.redis.hget(this.keys.user(username), 'scope'));
    return scope === null ? null : scopeOut(scope);
  }

  async list(): Promise<TokenListing[]> {
    const users = (await redisCall(() => this.redis.smembers(this.keys.users()))).sort();
    const pipe = this.redis.pipeline();
    for (const u of users) pipe.hgetall(this.keys.user(u));
    const records = ((await redisCall(() => pipe.exec())) ?? []).map(([, v]) => v as Record<string, string>);
    const used = this.redis.pipeline();
    for (const r of records) used.hget(this.keys.token(r.current || 'none'), 'lastUsed');
    const lastUsed = ((await redisCall(() => used.exec())) ?? []).map(([, v]) => v as string | null);
    const now = Math.floor(Date.now() / 1000);
    return users.map((username, i) => {
      const r = records[i] ?? {};
      return {
        username,
        scope: scopeOut(r.scope),
        createdAt: iso(r.createdAt),
        expiresAt: iso(r.exp),
        lastUsedAt: iso(lastUsed[i]),
        previousValidUntil: Number(r.previousUntil) > now ? iso(r.previousUntil) : null,
      };
    });
  }
}
