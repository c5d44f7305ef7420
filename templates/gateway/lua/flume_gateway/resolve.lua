-- A request's token record and route: from the cache while fresh, else from Redis in one round
-- trip (redis_conn.lookup), else, while Redis is away, from a stale entry.
local cache = require "flume_gateway.cache"
local redis_conn = require "flume_gateway.redis_conn"
local metrics = require "flume_gateway.metrics"

-- -> token record ("" = no such token), route ("none", "down" or the value), whether Redis
-- holds the service's data (true when answered from the cache) and the db's quota ("" = none);
-- or nil, nil, nil, err.
return function(hash, db, tbl)
  local gen = cache.generation()
  local tok, tok_fresh = cache.token(hash, gen)
  local route, route_fresh = cache.get("r:" .. db .. ":" .. tbl, nil, gen)
  local quota, quota_fresh = cache.get("q:" .. db, nil, gen)
  if tok_fresh and route_fresh and quota_fresh then return tok, route, true, quota end
  local res, err = redis_conn.lookup(hash, db, tbl)
  if not res then
    if tok and route then
      ngx.log(ngx.WARN, "redis: ", err, "; answering from a stale cache entry")
      metrics.count("redis_errors")
      metrics.count("stale_answers")
      return tok, route, true, quota or ""
    end
    return nil, nil, nil, err
  end
  local filled = tonumber(res[7]) == 1
  local fresh_tok = res[1] == "" and "" or table.concat({ res[1], res[2], res[3], res[4] }, "\t")
  local fresh_route = res[5] ~= "" and res[5] or (tonumber(res[6]) == 1 and "down" or "none")
  -- Redis answers but has lost its data and is not refilled yet: what this gateway knew to be
  -- valid (within the stale window) is truer than the empty Redis.
  if not filled and fresh_tok == "" and tok and tok ~= "" then
    ngx.log(ngx.WARN, "redis holds no data yet (restoring); answering from a stale cache entry")
    metrics.count("stale_answers")
    return tok, route or fresh_route, route ~= nil, quota or ""
  end
  tok, route = fresh_tok, fresh_route
  -- While Redis is being refilled, "no such token" or "no such table" may be untrue: not cached.
  if tok ~= "" then cache.put("t:" .. hash, tok) elseif filled then cache.put("t:" .. hash, tok, cache.bad) end
  if route ~= "none" or filled then cache.put("r:" .. db .. ":" .. tbl, route) end
  local fresh_quota = type(res[8]) == "string" and res[8] or ""
  if filled then cache.put("q:" .. db, fresh_quota) end
  return tok, route, filled, fresh_quota
end
