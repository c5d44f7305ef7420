import { randomBytes } from 'node:crypto';
import type { ChainableCommander, Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { TokenListing, TokenRequest, TokenSetResult } from '../resources/token.js';
import { AppError, appError, forbidden, tokenUserNotFound } from '../errors.js';
import { redisCall } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';
import { HASH_VERSION, hashToken, keyHash } from './hash.js';
import { MIGRATE, REVOKE, SET_TOKEN } from './scripts.js';
import { TokenFiles, type SavedUser } from './token-files.js';


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
    dir: string,
    /** Keys token hashes (HMAC); kept outside Redis. */
    private readonly hashKey: string,
  ) {
    this.files = new TokenFiles(dir, log);
  }

  private readonly files: TokenFiles;

  private readonly changed: Array<(username: string, saved: SavedUser | null) => Promise<void>> = [];

  /**
   * `f` is told of every change of a user's records made through this host (null: revoked), after
   * it holds here: with many hosts, how it reaches the others. A listener's error is the caller's.
   */
  onChange(f: (username: string, saved: SavedUser | null) => Promise<void>): void {
    this.changed.push(f);
  }

  /** Copies what Redis now holds for the user to disk (mode 0600). Logged, never thrown. */
  private async persist(username: string): Promise<SavedUser | null> {
    try {
      const user = await this.redis.hgetall(this.keys.user(username));
      const tokens: Record<string, Record<string, string>> = {};
      for (const hash of [user.current, user.previous].filter((h): h is string => !!h)) {
        const { lastUsed: _l, ...record } = await this.redis.hgetall(this.keys.token(hash));
        if (record.user) tokens[hash] = record;
      }
      const saved = { username, user, tokens };
      await this.files.write(saved);
      return saved;
    } catch (err) {
      this.log.error({ err, username }, 'could not copy the token records to disk');
      return null;
    }
  }

  /** Every user's record as this host's disk has it. */
  saved(): Promise<SavedUser[]> {
    return this.files.all();
  }

  /**
   * Makes this host hold exactly `saved` for its user (records another host made), or nothing
   * (`null`: revoked there): Redis and var/tokens/ replaced, every gateway cache of the hashes
   * involved dropped. Returns false when it held that already.
   */
  async apply(username: string, saved: SavedUser | null): Promise<boolean> {
    const mine = (await this.files.all()).find((s) => s.username === username) ?? null;
    if (JSON.stringify(mine) === JSON.stringify(saved)) return false;
    const { cur, prev } = await this.heads(username);
    const now = Math.floor(Date.now() / 1000);
    const tx = this.redis.multi().del(this.keys.user(username));
    for (const h of [cur, prev].filter(Boolean)) tx.del(this.keys.token(h)).publish(this.keys.invalidateChannel(), `token:${h}`);
    if (!saved) {
      tx.srem(this.keys.users(), username);
    } else {
      this.putSaved(tx, saved, now);
    }
    await redisCall(() => tx.exec());
    if (saved) await this.files.write(saved);
    else await this.files.remove(username);
    this.log.info({ username, revoked: !saved }, 'ingestion token records taken from the cluster');
    return true;
  }

  /** Queues a user's records into `tx`: the user, and each token not yet over (expiring when it ends), each gateway cache told. */
  private putSaved(tx: ChainableCommander, saved: SavedUser, now: number): void {
    tx.hset(this.keys.user(saved.username), saved.user).sadd(this.keys.users(), saved.username);
    for (const [hash, record] of Object.entries(saved.tokens)) {
      const ends = [Number(record.exp), Number(record.graceUntil)].filter((t) => t > 0);
      if (ends.some((t) => t <= now)) continue;
      tx.hset(this.keys.token(hash), record);
      if (ends.length) tx.expireat(this.keys.token(hash), Math.min(...ends) + 60);
      tx.publish(this.keys.invalidateChannel(), `token:${hash}`);
    }
  }

  readonly part = 'tokens';

  /** Restorable: the tokens on disk back into Redis (every restore, lost or not). */
  restore(): Promise<string[]> {
    return this.restoreFromDisk();
  }

  /**
   * Puts back into Redis the users (and their unexpired tokens) that are on disk but not in
   * Redis: after a Redis that keeps nothing restarted, senders' tokens work again.
   * Idempotent. Returns the usernames restored.
   */
  async restoreFromDisk(): Promise<string[]> {
    await this.migrate();
    const restored: string[] = [];
    const now = Math.floor(Date.now() / 1000);
    for (const saved of await this.files.all()) {
      if (await redisCall(() => this.redis.exists(this.keys.user(saved.username)))) continue;
      const tx = this.redis.multi();
      this.putSaved(tx, saved, now);
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
    for (const saved of await this.files.all()) {
      if (saved.user[HASH_VERSION] === '2') continue;
      const user = { ...saved.user, current: rekey(saved.user.current), previous: rekey(saved.user.previous), [HASH_VERSION]: '2' };
      const tokens = Object.fromEntries(Object.entries(saved.tokens).map(([h, r]) => [rekey(h), r]));
      await this.files.write({ username: saved.username, user, tokens });
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
      const saved = await this.persist(req.username);
      if (saved) for (const f of this.changed) await f(req.username, saved);
      return {
        username: req.username,
        ...(req.token ? {} : { token }),
        scope: scopeOut(scope),
        expiresAt: iso(exp),
        previousValidUntil: iso(String(r)),
      };
    }
    throw appError('BUSY', `the token of ${req.username} is being changed concurrently; retry`);
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
        await this.files.remove(username);
        this.log.info({ username }, 'ingestion tokens revoked');
        for (const f of this.changed) await f(username, null);
        return;
      }
    }
    throw appError('BUSY', `the token of ${username} is being changed concurrently; retry`);
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
