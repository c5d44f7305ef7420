-- A Redis script (EVALSHA): one round trip for everything a request needs. Source only.
-- KEYS: 1 token key (<p>token:<hash>), 2 route key (<p>route:<db>:<table>), 3 tables set
--       (<p>tables), 4 marker (<p>epoch: present once the service has filled Redis from disk),
--       5 quotas (<p>quotas).
-- ARGV: 1 "<db>:<table>", 2 now (unix seconds, stamped as the token's lastUsed), 3 db.
-- Returns: { user, scope, exp, graceUntil, route, table exists (0/1), marker exists (0/1),
--          the db's quota }, "" (or "0") for what is missing.
return [[
local t = redis.call('HMGET', KEYS[1], 'user', 'scope', 'exp', 'graceUntil')
if t[1] then redis.call('HSET', KEYS[1], 'lastUsed', ARGV[2]) end
local r = redis.call('GET', KEYS[2])
return { t[1] or '', t[2] or '', t[3] or '0', t[4] or '0', r or '', redis.call('SISMEMBER', KEYS[3], ARGV[1]), redis.call('EXISTS', KEYS[4]), redis.call('HGET', KEYS[5], ARGV[3]) or '' }
]]
