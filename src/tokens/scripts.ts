/** The token records' Lua scripts: each changes a user's records atomically, or says RETRY. */

// Sets a user's token, keeping the one it replaces valid for a grace period.
// KEYS: 1 user hash, 2 new token hash key, 3 current token key (as read), 4 previous token key
//       (as read), 5 users set.
// ARGV: 1 username, 2 new hash, 3 scope, 4 exp (unix s, 0 = none), 5 now, 6 grace seconds,
//       7 expected current hash ('' = none), 8 expected previous hash, 9 invalidate channel,
//       10 key prefix of token keys (for invalidation messages only), 11 expected current scope
//       ('' = none: the scope the caller was checked against).
// Returns 'RETRY' if the user changed since it was read, else the graceUntil of the old token.
export const SET_TOKEN = `
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
export const REVOKE = `
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
export const MIGRATE = `
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

