-- What the gateway knows of tokens and routes, in shared dicts all workers read.
-- "t:<hash>" -> "user\tscope\texp\tgraceUntil" ("" = no such token: kept in `bad`);
-- "r:<db>:<table>" -> the route | "down" (table, no route) | "none" (no table);
-- "q:<db>" -> the db's quota (tenants.lua reads it) | "" (none).
-- Entries (cache_entry.lua) are fresh for conf.cache_ttl and kept conf.stale_seconds longer: used
-- only when Redis does not answer, instead of refusing every sender.
local entry = require "flume_gateway.cache_entry"
local conf = require "flume_gateway.settings"

local M = {}
M.dict = ngx.shared.flume_gateway_cache
-- Unknown tokens and per-address counts of them live apart, so a flood of random tokens never
-- evicts the entries of valid ones.
M.bad = ngx.shared.flume_gateway_bad

function M.generation()
  return M.dict:get("gen") or 0
end

-- A missed invalidation may have left any entry untrue: every entry so far is looked up again.
function M.next_generation()
  M.dict:incr("gen", 1, 0)
end

-- gen: the generation, when the caller read it already (one read for a request's lookups).
function M.get(key, dict, gen)
  return entry.decode((dict or M.dict):get(key), gen or M.generation(), ngx.now())
end

function M.put(key, value, dict)
  local keep = conf.cache_ttl + conf.stale_seconds
  if keep <= 0 then return end
  (dict or M.dict):set(key, entry.encode(M.generation(), ngx.now() + conf.cache_ttl, value), keep)
end

-- A token's cached record: a valid one from the main cache, an unknown one ("") from `bad`.
function M.token(hash, gen)
  local tok, fresh = M.get("t:" .. hash, nil, gen)
  if tok then return tok, fresh end
  return M.get("t:" .. hash, M.bad, gen)
end

-- Whether this worker holds the token as valid (even stale).
function M.knows_token(hash)
  return M.dict:get("t:" .. hash) ~= nil
end

-- An invalidation message's kind and subject ("token:<hash>", "route:<db>:<table>", "quota:<db>",
-- anything else).
function M.invalidate(kind, subject)
  if kind == "token" then
    M.dict:delete("t:" .. subject)
    M.bad:delete("t:" .. subject)
  elseif kind == "route" then
    M.dict:delete("r:" .. subject)
  elseif kind == "quota" then
    M.dict:delete("q:" .. subject)
  else
    M.next_generation()
  end
end

return M
