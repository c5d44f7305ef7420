import { createHash, createHmac } from 'node:crypto';

/**
 * What Redis and var/tokens/ hold instead of a token: HMAC-SHA1, keyed with the server's token
 * hash key, of the token's SHA-1 (hex). The gateway computes the same with ngx.sha1_bin and
 * ngx.hmac_sha1. Records written before the key existed were keyed by the bare SHA-1; since the
 * SHA-1 is inside, they are migrated without knowing any token (see `migrate`).
 */
export const hashToken = (token: string, key: string) => keyHash(createHash('sha1').update(token).digest('hex'), key);
export const keyHash = (sha1Hex: string, key: string) => createHmac('sha1', key).update(sha1Hex).digest('hex');
/** The user-record field that marks records keyed with the HMAC (absent: legacy SHA-1). */
export const HASH_VERSION = 'hashv';

