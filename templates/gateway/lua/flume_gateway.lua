-- flume-service ingestion gateway: token check, table -> agent port, body rewrite.
-- Runs on OpenResty (resty.redis) and on Debian's nginx (lua-nginx-redis installs it as
-- nginx.redis; that library is 0.27: set_timeout only, no set_timeouts).
--
-- Redis schema (src/redis/keys.ts): <p>token:<hash> HASH user scope exp graceUntil lastUsed, where
-- hash = hex(HMAC-SHA1(token hash key, hex(SHA-1(token)))) (src/tokens/token-service.ts);
-- <p>route:<db>:<table> "host:port tx=<transactionCapacity>[ max=<bytes>]" | "paused" (ROUTE below, generated);
-- <p>tables SET "<db>:<table>"; <p>epoch STRING (present once the service has filled Redis from
-- disk; absent right after Redis lost its data); <p>invalidate PUBSUB.

local ok_redis, redis = pcall(require, "resty.redis")
if not ok_redis then redis = require "nginx.redis" end
local cjson = require "cjson.safe"
-- The error catalogue, generated from src/errors.ts into var/gateway/lua/ at set-up.
local ERRORS = require "flume_errors"
-- The route value's format, generated from src/agents/route-table.ts (ROUTE_VALUE).
local ROUTE = require "flume_routes"
-- NaN, Infinity and hexadecimal numbers are not JSON: refused when read (they could not be
-- written back for the agent either).
cjson.decode_invalid_numbers(false)
local semaphore = require "ngx.semaphore"

local M = {}
local conf
local cache = ngx.shared.flume_gateway_cache
-- Unknown tokens and per-address counts of them live apart, so a flood of random tokens never
-- evicts the entries of valid ones.
local bad = ngx.shared.flume_gateway_bad

-- One round trip: the token record (stamping lastUsed), the route, whether the table exists and
-- whether Redis holds the service's data (its marker).
-- KEYS: 1 token key, 2 route key, 3 tables set, 4 marker. ARGV: 1 "<db>:<table>", 2 now.
local LOOKUP = [[
local t = redis.call('HMGET', KEYS[1], 'user', 'scope', 'exp', 'graceUntil')
if t[1] then redis.call('HSET', KEYS[1], 'lastUsed', ARGV[2]) end
local r = redis.call('GET', KEYS[2])
return { t[1] or '', t[2] or '', t[3] or '0', t[4] or '0', r or '', redis.call('SISMEMBER', KEYS[3], ARGV[1]), redis.call('EXISTS', KEYS[4]) }
]]
local LOOKUP_SHA -- set by SCRIPT LOAD on first use

-- Headers that would steer a sink (Flume's Kafka sink reads "topic" and "key"; a table's
-- token must not reach another topic or choose partitions). "username" is set here, always.
local RESERVED_HEADERS = { topic = true, key = true }

-- cjson reads [] and {} alike (an empty table): an empty array inside the top-level array,
-- where an event or its headers object belongs, would pass for an empty object. Looked for in
-- the text, outside strings; the scan runs only when "[" and "]" meet with only spaces between.
local function nested_empty_array(body)
  local first = body:find("[", 1, true)
  if not first or not body:find("%[%s*%]", first + 1) then return false end
  local in_str, esc = false, false
  for i = first + 1, #body do
    local c = body:byte(i)
    if in_str then
      if esc then esc = false elseif c == 92 then esc = true elseif c == 34 then in_str = false end
    elseif c == 34 then
      in_str = true
    elseif c == 91 then
      local j = body:find("[^%s]", i + 1)
      if j and body:byte(j) == 93 then return true end
    end
  end
  return false
end

-- The request's id, as the API's: the sender's X-Request-Id when it is 1-128 characters of
-- letters, digits and ._:@/+=-, else nginx's own ($request_id). Echoed and in error bodies.
local function request_id()
  local given = ngx.var.http_x_request_id
  if given and #given <= 128 and given:find("^[%w%._:@/%+=%-]+$") then return given end
  return ngx.var.request_id
end

-- Metrics, in a shared dict all workers add to (flume_gateway_metrics), shown by M.metrics() on
-- the metrics listener. Tables are labelled only once their route is known (an existing table),
-- so senders cannot make up series: anything else counts as db="", table="".
local metrics_dict = ngx.shared.flume_gateway_metrics
local LATENCY_BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }
local BATCH_BUCKETS = { 1, 2, 5, 10, 20, 50, 100, 200 }
local function count(key, by)
  if metrics_dict then metrics_dict:incr(key, by or 1, 0) end
end
local function observe(name, buckets, v)
  for _, le in ipairs(buckets) do
    if v <= le then count(name .. "_bucket\t" .. le) end
  end
  count(name .. "_bucket\t+Inf")
  count(name .. "_sum", v)
  count(name .. "_count")
end

-- An error answer: its status, code and Retry-After come from the catalogue generated from
-- src/errors.ts (var/gateway/lua/flume_errors.lua), never from here.
-- `retry_after`, when given, says better than the catalogue when to come back.
local function reply(err, message, retry_after)
  local e = ERRORS[err] or ERRORS.INTERNAL
  local rid = request_id()
  ngx.status = e.status
  ngx.header["Content-Type"] = "application/json"
  ngx.header["X-Request-Id"] = rid
  retry_after = retry_after or e.retry_after
  if retry_after then ngx.header["Retry-After"] = tostring(retry_after) end
  ngx.say(cjson.encode({ code = e.code, error = err, message = message, requestId = rid }))
  return ngx.exit(ngx.HTTP_OK)
end

-- What a sender gets once the agent committed its n events (proxied or group-committed).
local function accepted_body(n)
  return '{"code":0,"message":"accepted","events":' .. n .. '}\n'
end

local function accepted(n)
  ngx.status = 200
  ngx.header["Content-Type"] = "application/json"
  ngx.print(accepted_body(n))
  return ngx.exit(ngx.HTTP_OK)
end

-- What a sender sees when the agent did not take its events, by the agent's (or nginx's
-- upstream) status: the direct path's error pages (nginx.conf) and group commits answer alike.
local AGENT_FAILURES = {
  [400] = { "BAD_EVENTS", "the agent refused the body: send a JSON array of {\"headers\":{...},\"body\":\"...\"}" },
  [500] = { "INTERNAL", "the gateway or the agent failed; see var/log/gateway.log and the agent log" },
  [502] = { "AGENT_UNREACHABLE", "the table's agent did not answer" },
  [503] = { "CHANNEL_FULL", "the agent's channel is full or the batch exceeds its transaction capacity; retry later or send smaller batches" },
}
AGENT_FAILURES[504] = AGENT_FAILURES[502]

-- A full channel's Retry-After, from the time its sink needs to make room (the API writes it into
-- <p>retry-after from the fleet model, src/agents/retry-hints.ts); nil: the catalogue's. Held a
-- second per worker, so a crowd of refused senders costs Redis one read a second.
local channel_retry_after

function M.agent_failure(status)
  local f = AGENT_FAILURES[status] or AGENT_FAILURES[500]
  if status == 503 then
    return reply(f[1], f[2], channel_retry_after(ngx.var.ingest_db, ngx.var.ingest_table))
  end
  return reply(f[1], f[2])
end

local function to_hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", string.byte(c)) end))
end

local function connect()
  local red = redis:new()
  red:set_timeout(500)
  local ok, err = red:connect(conf.redis_host, conf.redis_port)
  if not ok then return nil, err end
  if red:get_reused_times() == 0 then
    -- rediss://: TLS, the certificate verified (lua_ssl_trusted_certificate) for the URL's host.
    if conf.redis_tls then
      -- In a pcall: some lua-resty-core versions assert (instead of answering nil, err) when the
      -- certificate fails verification within the first call. Either way: no Redis, no talk.
      local sock = rawget(red, "_sock")
      local called, session, err3 = pcall(sock.sslhandshake, sock, nil, conf.redis_server_name, true)
      if not called or not session then
        pcall(sock.close, sock)
        return nil, "TLS with Redis: " .. tostring(called and err3 or session)
      end
    end
    if conf.redis_password ~= "" then
      local ok2, err2
      -- A Redis ACL user (redis://user:password@...), or the default user.
      if conf.redis_username ~= "" then
        ok2, err2 = red:auth(conf.redis_username, conf.redis_password)
      else
        ok2, err2 = red:auth(conf.redis_password)
      end
      if not ok2 then
        red:close()
        return nil, err2
      end
    end
    if conf.redis_db ~= 0 then red:select(conf.redis_db) end
  end
  return red
end

local function lookup(hash, db, tbl)
  local red, err = connect()
  if not red then return nil, err end
  local keys = { conf.prefix .. "token:" .. hash, conf.prefix .. "route:" .. db .. ":" .. tbl, conf.prefix .. "tables", conf.prefix .. "epoch" }
  local res
  if LOOKUP_SHA then
    res, err = red:evalsha(LOOKUP_SHA, 4, keys[1], keys[2], keys[3], keys[4], db .. ":" .. tbl, ngx.time())
  end
  if not res then
    if not LOOKUP_SHA or (err and err:find("NOSCRIPT", 1, true)) then
      LOOKUP_SHA = red:script("load", LOOKUP)
      res, err = red:eval(LOOKUP, 4, keys[1], keys[2], keys[3], keys[4], db .. ":" .. tbl, ngx.time())
    end
  end
  if not res then
    red:close()
    return nil, err
  end
  red:set_keepalive(60000, 100)
  return res
end

channel_retry_after = function(db, tbl)
  if not db or not tbl or db == "" or tbl == "" then return nil end
  local key = "h:" .. db .. ":" .. tbl
  local v = cache:get(key)
  if v == nil then
    v = 0
    local red = connect()
    if red then
      local res, err = red:hget(conf.prefix .. "retry-after", db .. ":" .. tbl)
      if err then red:close() else red:set_keepalive(60000, 100) end
      v = tonumber(res) or 0
    end
    cache:set(key, v, 1)
  end
  if v > 0 then return math.floor(v) end
  return nil
end

-- Cached: "t:<hash>" -> "user\tscope\texp\tgraceUntil" ("" = no such token);
--         "r:<db>:<table>" -> "host:port" | "down" (table, no route) | "none" (no table).
-- Each entry is "<generation>|<fresh until>|<value>". A fresh entry answers without Redis. An
-- entry past its freshness, or from an older generation (the invalidation subscription broke,
-- so messages may have been missed), is looked up again; only if Redis does not answer is it
-- used, for at most conf.stale_seconds after it was stored, instead of refusing every sender.
local function generation()
  return cache:get("gen") or 0
end

local function cache_get(key, dict)
  local v = (dict or cache):get(key)
  if not v then return nil end
  local gen, fresh_until, value = v:match("^(%d+)|([^|]+)|(.*)$")
  if not gen then return nil end
  return value, tonumber(gen) == generation() and tonumber(fresh_until) > ngx.now()
end

local function cache_put(key, value, dict)
  local keep = conf.cache_ttl + conf.stale_seconds
  if keep <= 0 then return end
  (dict or cache):set(key, generation() .. "|" .. (ngx.now() + conf.cache_ttl) .. "|" .. value, keep)
end

-- A token's cached record: a valid one from the main cache, an unknown one ("") from `bad`.
local function cached_token(hash)
  local tok, fresh = cache_get("t:" .. hash)
  if tok then return tok, fresh end
  return cache_get("t:" .. hash, bad)
end

-- Returns the token record, the route and whether Redis holds the service's data (true when
-- answered from the cache), or nil, nil, nil, err.
local function resolve(hash, db, tbl)
  local tok, tok_fresh = cached_token(hash)
  local route, route_fresh = cache_get("r:" .. db .. ":" .. tbl)
  if tok_fresh and route_fresh then return tok, route, true end
  local res, err = lookup(hash, db, tbl)
  if not res then
    if tok and route then
      ngx.log(ngx.WARN, "redis: ", err, "; answering from a stale cache entry")
      count("redis_errors")
      count("stale_answers")
      return tok, route, true
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
    count("stale_answers")
    return tok, route or fresh_route, route ~= nil
  end
  tok, route = fresh_tok, fresh_route
  -- While Redis is being refilled, "no such token" or "no such table" may be untrue: not cached.
  if tok ~= "" then cache_put("t:" .. hash, tok) elseif filled then cache_put("t:" .. hash, tok, bad) end
  if route ~= "none" or filled then cache_put("r:" .. db .. ":" .. tbl, route) end
  return tok, route, filled
end

-- Unknown tokens per client address and second: past conf.bad_token_limit only tokens the
-- gateway holds as valid get through until the next second.
local function address_key(ip) return "a:" .. ip .. ":" .. ngx.time() end
local function address_blocked(ip)
  local n = bad:get(address_key(ip))
  return n and n >= conf.bad_token_limit
end
local function count_unknown(ip)
  bad:incr(address_key(ip), 1, 0, 2)
end

-- Per token, per second, across workers: more than conf.rate_limit requests answer 429. Every
-- request with a token counts, also those that arrive before the gateway knows the token (a
-- new token's first burst); only a token found valid is judged by it.
local function over_limit(hash)
  if conf.rate_limit <= 0 then return false end
  local n = cache:incr("l:" .. hash .. ":" .. ngx.time(), 1, 0, 2)
  return n ~= nil and n > conf.rate_limit
end

local function in_scope(scope, db, tbl)
  if scope == "*" then return true end
  for s in scope:gmatch("%S+") do
    if s == db or s == db .. "." .. tbl then return true end
  end
  return false
end

-- Group commit, per worker: requests for one agent that arrive within conf.batch_window seconds
-- of the first (the leader) join its batch, up to the table's transactionCapacity events. The
-- leader sends the batch (one Flume request: one channel transaction, one fsync) and every member
-- gets the batch's outcome: 200 only once the agent committed all of it, else the same failure.
-- A full batch leaves at once; a request that does not fit leads the next one.
local filling = {} -- "host:port" -> the batch still taking requests
-- A member waits at most this long: the proxy's own deadlines (connect, send, read) and the window.
local MEMBER_WAIT = 45

local function send_batch(b)
  local ok, res = pcall(ngx.location.capture, "/_flume_batch", {
    method = ngx.HTTP_POST,
    body = "[" .. table.concat(b.parts, ",") .. "]",
    ctx = { agent_host = b.host, agent_port = b.port },
  })
  if not ok then
    ngx.log(ngx.ERR, "group commit: ", res)
    return 500
  end
  return res.status
end

local function group_commit(host, port, events_json, n, cap)
  local key = host .. ":" .. port
  local part = events_json:sub(2, -2) -- the events without the array's brackets
  local b = filling[key]
  if b and b.count + n <= cap then
    b.parts[#b.parts + 1] = part
    b.count = b.count + n
    b.members = b.members + 1
    if b.count == cap then
      filling[key] = nil
      b.full:post(1)
    end
    if not b.done:wait(MEMBER_WAIT) then return M.agent_failure(504) end
  else
    b = { host = host, port = port, parts = { part }, count = n, members = 0, full = semaphore.new(), done = semaphore.new() }
    filling[key] = b
    b.full:wait(conf.batch_window)
    if filling[key] == b then filling[key] = nil end
    b.status = send_batch(b)
    observe("batch_requests", BATCH_BUCKETS, b.members + 1)
    if b.members > 0 then b.done:post(b.members) end
  end
  if b.status == 200 then return accepted(n) end
  return M.agent_failure(b.status)
end

-- Many hosts: the table runs on another host. Its gateway takes the request (it checks the
-- token again and commits into its own loopback agent); its answer, streamed back, is this
-- answer. X-Flume-Hop counts the gateways a request went through: one more is allowed while a
-- table moves (this host still routes to the old one, which already routes to the new one),
-- never a third, so two gateways that each route to the other cannot pass a request around.
local MAX_HOPS = 2
local function hops_so_far()
  local h = ngx.var.http_x_flume_hop
  if not h then return 0 end
  return tonumber(h) or MAX_HOPS
end
local function hop(host, port, db, tbl)
  return ngx.exec("/_flume_hop", { h = host, p = port, db = db, tbl = tbl, n = hops_so_far() + 1 })
end

function M.balance_hop()
  local balancer = require "ngx.balancer"
  local ok, err = balancer.set_current_peer(ngx.var.hop_host, tonumber(ngx.var.hop_port))
  if not ok then ngx.log(ngx.ERR, "set_current_peer (hop): ", err) end
  balancer.set_more_tries(0)
end

function M.access(db, tbl)
  if ngx.req.get_method() ~= "POST" then
    ngx.req.discard_body()
    ngx.header["Allow"] = "POST"
    return reply("METHOD_NOT_ALLOWED", "use POST")
  end
  local auth = ngx.var.http_authorization or ""
  local token = auth:match("^[Bb]earer%s+(%S+)%s*$")
  if not token then
    return reply("TOKEN_MISSING", "send Authorization: Bearer <ingestion token>")
  end
  if not db:match("^[a-z0-9][a-z0-9_]*$") or not tbl:match("^[a-z0-9][a-z0-9_]*$") or #db > 48 or #tbl > 48 then
    return reply("TABLE_NOT_FOUND", "no such table")
  end

  local hash = to_hex(ngx.hmac_sha1(conf.token_hash_key, to_hex(ngx.sha1_bin(token))))
  local ip = ngx.var.remote_addr
  local known = cache:get("t:" .. hash) ~= nil
  if not known and address_blocked(ip) then
    return reply("RATE_LIMITED", "more than " .. conf.bad_token_limit .. " requests per second with unknown tokens from this address; retry")
  end
  local over = over_limit(hash)
  if known and over then
    return reply("RATE_LIMITED", "more than " .. conf.rate_limit .. " requests per second with this token; retry")
  end
  local tok, route, filled, err = resolve(hash, db, tbl)
  if not tok then
    ngx.log(ngx.ERR, "redis: ", err)
    count("redis_errors")
    return reply("REDIS_UNAVAILABLE", "the gateway cannot reach Redis; retry")
  end
  if tok == "" then
    count_unknown(ip)
    if not filled then
      return reply("REDIS_RESTORING", "the service is restoring its data after a Redis restart; retry")
    end
    return reply("TOKEN_INVALID", "invalid or revoked token")
  end
  if over then
    return reply("RATE_LIMITED", "more than " .. conf.rate_limit .. " requests per second with this token; retry")
  end
  local user, scope, exp, grace = tok:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$")
  local now = ngx.time()
  exp, grace = tonumber(exp) or 0, tonumber(grace) or 0
  if (exp > 0 and now >= exp) or (grace > 0 and now >= grace) then
    return reply("TOKEN_EXPIRED", "the token has expired")
  end
  if not in_scope(scope, db, tbl) then
    return reply("TOKEN_SCOPE", "this token may not send to " .. db .. "." .. tbl)
  end
  if route == "none" then
    if not filled then
      return reply("REDIS_RESTORING", "the service is restoring its data after a Redis restart; retry")
    end
    return reply("TABLE_NOT_FOUND", "no agent for " .. db .. "." .. tbl)
  end
  ngx.ctx.metric_table = db .. "\t" .. tbl
  if route == ROUTE.paused then
    return reply("AGENT_PAUSED", "intake for " .. db .. "." .. tbl .. " is paused by an operator; retry later")
  end
  if route == "down" then
    return reply("AGENT_DOWN", "the agent for " .. db .. "." .. tbl .. " is not running")
  end
  if route == ROUTE.fenced then
    return reply("NODE_FENCED", "this host lost touch with the cluster and stopped intake for " .. db .. "." .. tbl .. "; retry, or send through another host")
  end
  if route == ROUTE.nodeDown then
    return reply("NODE_DOWN", "the host that runs " .. db .. "." .. tbl .. " is not alive; retry later")
  end
  local via_host, via_port = route:match(ROUTE.via)
  if via_host then
    if hops_so_far() >= MAX_HOPS then
      return reply("AGENT_DOWN", "this host does not run " .. db .. "." .. tbl .. " (the request was forwarded " .. MAX_HOPS .. " times already); retry")
    end
    return hop(via_host, via_port, db, tbl)
  end
  local host, port, rest = route:match(ROUTE.address)
  local cap = rest and rest:match(ROUTE.capacity)
  -- The largest event the table's sink can ever deliver (the Kafka producer's request size).
  local max_event = rest and tonumber(rest:match(ROUTE.maxEvent))
  if not host or (rest ~= "" and not cap) then
    return reply("AGENT_DOWN", "the route of " .. db .. "." .. tbl .. " is unreadable")
  end

  -- The caller's name reaches the agent as an event header.
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  local events = body and cjson.decode(body)
  if type(events) ~= "table" or (body:match("^%s*{")) or nested_empty_array(body) then
    return reply("BAD_EVENTS", "send a JSON array of {\"headers\":{...},\"body\":\"...\"}")
  end
  -- One request is one channel transaction: more events than the table's transactionCapacity
  -- (or GATEWAY_MAX_EVENTS) would be refused by Flume after it read them all into its heap.
  local max_events = math.min(tonumber(cap) or conf.max_events, conf.max_events)
  if #events > max_events then
    return reply("TOO_MANY_EVENTS", #events .. " events in one request; at most " .. max_events .. " for " .. db .. "." .. tbl .. ": send smaller batches")
  end
  if #events > 0 then
    for i, ev in ipairs(events) do
      if type(ev) ~= "table" or ev[1] ~= nil then
        return reply("BAD_EVENTS", "event " .. i .. " must be an object")
      end
      -- Flume would refuse it: refused here, so one sender's bad event never fails a group commit.
      if ev.body ~= nil and type(ev.body) ~= "string" then
        return reply("BAD_EVENTS", "event " .. i .. ": body must be a string")
      end
      local headers = ev.headers
      if headers == nil then
        headers = {}
        ev.headers = headers
      elseif type(headers) ~= "table" or headers[1] ~= nil then
        return reply("BAD_EVENTS", "event " .. i .. ": headers must be an object of strings")
      end
      for k, v in pairs(headers) do
        if type(k) ~= "string" or type(v) ~= "string" then
          return reply("BAD_EVENTS", "event " .. i .. ": header " .. tostring(k) .. " must be a string")
        end
        if k == "" or #k > 256 or k:find("%c") then
          return reply("BAD_EVENTS", "event " .. i .. ": a header name must be 1-256 characters without control characters")
        end
        if RESERVED_HEADERS[k] then
          return reply("RESERVED_HEADER", "event " .. i .. ": header " .. k .. " steers the sink and may not be sent")
        end
      end
      headers.username = user
      if max_event then
        local size = #(ev.body or "")
        for k, v in pairs(headers) do size = size + #k + #v end
        if size > max_event then
          return reply("EVENT_TOO_LARGE", "event " .. i .. " is " .. size .. " bytes (body and headers); " .. db .. "." .. tbl .. "'s sink can never deliver more than " .. max_event .. ": nothing was accepted")
        end
      end
    end
    body = cjson.encode(events)
    cap = tonumber(cap)
    if conf.batch_window > 0 and cap and #events < cap then
      return group_commit(host, tonumber(port), body, #events, cap)
    end
    ngx.req.set_body_data(body)
  end
  ngx.ctx.events = #events
  ngx.ctx.agent_host = host
  ngx.ctx.agent_port = tonumber(port)
end

function M.balance()
  local balancer = require "ngx.balancer"
  local ok, err = balancer.set_current_peer(ngx.ctx.agent_host, ngx.ctx.agent_port)
  if not ok then ngx.log(ngx.ERR, "set_current_peer: ", err) end
  balancer.set_more_tries(0)
end

function M.header_filter()
  if ngx.status == 200 and ngx.ctx.events then
    ngx.ctx.accepted = true
    ngx.header["Content-Length"] = nil
    ngx.header["Content-Type"] = "application/json"
  end
end

function M.body_filter()
  if not ngx.ctx.accepted then return end
  if ngx.arg[2] then
    ngx.arg[1] = accepted_body(ngx.ctx.events)
  else
    ngx.arg[1] = nil
  end
end

-- Invalidation: one worker subscribes to <p>invalidate and drops the named cache entries.
-- If the subscription breaks, a message may have been missed: the generation moves on, so every
-- entry cached so far is looked up again before it is trusted (see cache_get).
local function subscribe(premature)
  if premature then return end
  local red = connect()
  local channel = conf.prefix .. "invalidate"
  if red and red:subscribe(channel) then
    red:set_timeout(5000)
    while not ngx.worker.exiting() do
      local msg, err = red:read_reply()
      if msg and msg[1] == "message" then
        local kind, rest = msg[3]:match("^(%a+):(.+)$")
        if kind == "token" then
          cache:delete("t:" .. rest)
          bad:delete("t:" .. rest)
        elseif kind == "route" then cache:delete("r:" .. rest)
        else cache:incr("gen", 1, 0) end
      elseif err and err ~= "timeout" then
        break
      end
    end
    red:close()
  end
  cache:incr("gen", 1, 0)
  if not ngx.worker.exiting() then ngx.timer.at(1, subscribe) end
end

-- A worker whose master died (kill -9, the OOM killer) would hold the port forever with the
-- config of that moment, and no new master could bind it: every second each worker compares its
-- parent with the master it started under, and once they differ it quits gracefully (SIGQUIT to
-- itself: it stops listening, finishes its requests and exits).
local ffi = require "ffi"
pcall(ffi.cdef, "int getppid(void); int kill(int pid, int sig);")
local SIGQUIT = 3

local function watch_master(premature, master)
  if premature then return end
  if ffi.C.getppid() ~= master then
    ngx.log(ngx.WARN, "the gateway's master (pid ", master, ") is gone: this worker stops")
    ffi.C.kill(ngx.worker.pid(), SIGQUIT)
  end
end

-- GET /readyz for load balancers: 200 while this gateway reaches Redis (so it can check tokens
-- and find routes), else 503 REDIS_UNAVAILABLE with Retry-After. /healthz (nginx.conf) only says
-- it is up.
function M.ready()
  local red, err = connect()
  local pong = red and red:ping()
  if not pong or pong == ngx.null then
    if red then red:close() end
    return reply("REDIS_UNAVAILABLE", "the gateway cannot reach Redis: " .. tostring(err or "no answer to PING"))
  end
  red:set_keepalive(60000, 100)
  ngx.status = 200
  ngx.header["Content-Type"] = "application/json"
  ngx.say('{"code":0,"message":"ready"}')
  return ngx.exit(ngx.HTTP_OK)
end

-- log_by_lua, every request to /ingest: its answer by table and status, and how long it took.
function M.log()
  local db = ngx.var.ingest_db
  if not db or db == "" then return end
  local t = ngx.ctx.metric_table or "\t"
  count("requests\t" .. t .. "\t" .. ngx.status)
  observe("request_duration_seconds", LATENCY_BUCKETS, tonumber(ngx.var.request_time) or 0)
  local up = tonumber(ngx.var.upstream_response_time)
  if up then observe("upstream_duration_seconds", LATENCY_BUCKETS, up) end
end

local HELP = {
  requests = { "flume_gateway_requests_total", "counter", "Ingest requests answered, by table and HTTP status (db and table empty: not an existing table)." },
  request_duration_seconds = { "flume_gateway_request_duration_seconds", "histogram", "Ingest request time, as nginx measures it." },
  upstream_duration_seconds = { "flume_gateway_upstream_duration_seconds", "histogram", "Time the agent took to answer a proxied request." },
  batch_requests = { "flume_gateway_batch_requests", "histogram", "Requests per group-committed batch sent to an agent." },
  redis_errors = { "flume_gateway_redis_errors_total", "counter", "Lookups Redis did not answer." },
  stale_answers = { "flume_gateway_stale_answers_total", "counter", "Requests answered from a stale cache entry while Redis was away or restoring." },
}

-- GET /metrics on the metrics listener: Prometheus text of what every worker counted.
function M.metrics()
  local by_name = {}
  for _, key in ipairs(metrics_dict and metrics_dict:get_keys(0) or {}) do
    local v = metrics_dict:get(key)
    local name, rest = key:match("^([%w_]+)\t?(.*)$")
    local base = name:gsub("_bucket$", ""):gsub("_sum$", ""):gsub("_count$", "")
    local h = HELP[base]
    if h then
      by_name[base] = by_name[base] or {}
      local labels = ""
      if base == "requests" then
        local db, tbl, status = rest:match("^([^\t]*)\t([^\t]*)\t(%d+)$")
        labels = string.format('{db="%s",table="%s",status="%s"}', db or "", tbl or "", status or "")
      elseif name:find("_bucket$") then
        labels = string.format('{le="%s"}', rest)
      end
      local suffix = name:match("_bucket$") and "_bucket" or name:match("_sum$") and "_sum" or name:match("_count$") and "_count" or ""
      table.insert(by_name[base], h[1] .. suffix .. labels .. " " .. string.format("%.10g", v))
    end
  end
  local out = {}
  for base, h in pairs(HELP) do
    table.insert(out, "# HELP " .. h[1] .. " " .. h[3])
    table.insert(out, "# TYPE " .. h[1] .. " " .. h[2])
    local lines = by_name[base] or {}
    if #lines == 0 and h[2] == "counter" and base ~= "requests" then lines = { h[1] .. " 0" } end
    table.sort(lines)
    for _, l in ipairs(lines) do table.insert(out, l) end
  end
  ngx.header["Content-Type"] = "text/plain; version=0.0.4"
  ngx.print(table.concat(out, "\n"), "\n")
end

function M.init_worker(c)
  conf = c
  if ngx.worker.id() == 0 and conf.cache_ttl + conf.stale_seconds > 0 then ngx.timer.at(0, subscribe) end
  ngx.timer.every(1, watch_master, ffi.C.getppid())
end

return M
