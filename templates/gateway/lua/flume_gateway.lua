-- flume-service ingestion gateway: token check, table -> agent port, body rewrite. nginx.conf
-- calls the phases below; each concern lives in flume_gateway/ (one file each):
--   settings       what nginx.conf passes at start          token        the caller's token (pure)
--   redis_conn     pooled Redis connection and the lookup   route        a table's route (pure)
--   lookup_script  the one-round-trip Redis script           events       the body's checks (pure)
--   cache(_entry)  tokens and routes the workers hold        limits       per-token/address limits
--   resolve        cache, else Redis, else a stale entry     group_commit one transaction for many
--   reply          error answers from the catalogue          hop          to another host's gateway
--   metrics        counting (exposition: Prometheus text)    background   invalidations, master watch
--   sink_ack       "Prefer: ack=sink": answered once the sink has the events
--   trace          what GET .../trace/<request id> tells: when accepted, committed, taken
--   schema         a table's event contract, compiled once per worker, checked per event
--   tenants        each db's quota, the fair share while saturated, each db's usage
--
-- Redis schema (src/redis/keys.ts): <p>token:<hash> HASH user scope exp graceUntil lastUsed, where
-- hash = hex(HMAC-SHA1(token hash key, hex(SHA-1(token)))) (src/tokens/token-service.ts);
-- <p>route:<db>:<table> the route value (flume_routes, generated from src/agents/route-table.ts);
-- <p>tables SET "<db>:<table>"; <p>epoch STRING (present once the service has filled Redis from
-- disk; absent right after Redis lost its data); <p>invalidate PUBSUB.
local conf = require "flume_gateway.settings"
local token = require "flume_gateway.token"
local route_of = require "flume_gateway.route"
local events = require "flume_gateway.events"
local cache = require "flume_gateway.cache"
local limits = require "flume_gateway.limits"
local resolve = require "flume_gateway.resolve"
local reply = require "flume_gateway.reply"
local group_commit = require "flume_gateway.group_commit"
local hop = require "flume_gateway.hop"
local metrics = require "flume_gateway.metrics"
local background = require "flume_gateway.background"
local redis_conn = require "flume_gateway.redis_conn"
local sink_ack = require "flume_gateway.sink_ack"
local trace = require "flume_gateway.trace"
local schema = require "flume_gateway.schema"
local tenants = require "flume_gateway.tenants"

local M = {}
local fail = reply.error

local HEX20 = string.rep("%02x", 20)
local function to_hex(s) -- a SHA-1 digest's 20 bytes, in one call
  return string.format(HEX20, s:byte(1, 20))
end

-- Each token's hash, kept per worker so a sender's every request does not hash its token twice
-- again: at most HASHES_KEPT (8,192) tokens of at most 512 bytes, all forgotten at once when full (a
-- flood of made-up tokens costs the hashing it always did, and memory stays bounded, ~5 MB a
-- worker at worst). The hash names a token; whether
-- it is still good is the cache's and Redis's business, as before.
local HASHES_KEPT = 8192
local hashes, hashes_n = {}, 0
local function token_hash(tok_text)
  local hash = hashes[tok_text]
  if hash then return hash end
  hash = to_hex(ngx.hmac_sha1(conf.token_hash_key, to_hex(ngx.sha1_bin(tok_text))))
  if #tok_text > 512 then return hash end
  if hashes_n >= HASHES_KEPT then hashes, hashes_n = {}, 0 end
  hashes[tok_text], hashes_n = hash, hashes_n + 1
  return hash
end

-- The caller: its token record, or the answer that ends the request.
local function caller(db, tbl)
  local tok_text = token.bearer(ngx.var.http_authorization)
  if not tok_text then
    return fail("TOKEN_MISSING", "send Authorization: Bearer <ingestion token>")
  end
  if not token.valid_table(db, tbl) then
    return fail("TABLE_NOT_FOUND", "no such table")
  end
  local hash = token_hash(tok_text)
  local ip = ngx.var.remote_addr
  local known = cache.knows_token(hash)
  if not known and limits.address_blocked(ip) then
    return fail("RATE_LIMITED", "more than " .. conf.bad_token_limit .. " requests per second with unknown tokens from this address; retry")
  end
  local over = limits.over_rate(hash)
  local too_fast = "more than " .. conf.rate_limit .. " requests per second with this token; retry"
  if known and over then return fail("RATE_LIMITED", too_fast) end
  -- (The fourth: the db's quota; when Redis failed, why.)
  local tok, route, filled, quota = resolve(hash, db, tbl)
  if not tok then
    ngx.log(ngx.ERR, "redis: ", quota)
    metrics.count("redis_errors")
    return fail("REDIS_UNAVAILABLE", "the gateway cannot reach Redis; retry")
  end
  if tok == "" then
    limits.count_unknown(ip)
    if not filled then
      return fail("REDIS_RESTORING", "the service is restoring its data after a Redis restart; retry")
    end
    return fail("TOKEN_INVALID", "invalid or revoked token")
  end
  if over then return fail("RATE_LIMITED", too_fast) end
  local user, scope, exp, grace = token.parse(tok)
  if token.expired(exp, grace, ngx.time()) then
    return fail("TOKEN_EXPIRED", "the token has expired")
  end
  if not token.in_scope(scope, db, tbl) then
    return fail("TOKEN_SCOPE", "this token may not send to " .. db .. "." .. tbl)
  end
  return user, route, filled, quota
end

-- A request refused for its db's sake (quota, fair share): counted, with the RateLimit headers.
local function refuse(db, why, err, message, retry_after, policy, left)
  tenants.used(db, why, 1)
  metrics.count("db_refused\t" .. db .. "\t" .. why)
  ngx.header["RateLimit-Policy"] = policy
  ngx.header["RateLimit"] = left
  return fail(err, message, retry_after)
end

-- access_by_lua of /ingest/<db>/<table>: answers, hops, or leaves the request for the balancer.
function M.access(db, tbl)
  if ngx.req.get_method() ~= "POST" then
    ngx.req.discard_body()
    ngx.header["Allow"] = "POST"
    return fail("METHOD_NOT_ALLOWED", "use POST")
  end
  local user, value, filled, quota = caller(db, tbl)
  if not user then return end -- answered (ngx.exit ends the phase; this only guards)
  local name = db .. "." .. tbl
  local r = route_of.read(value)
  if r.kind == "none" then
    if not filled then
      return fail("REDIS_RESTORING", "the service is restoring its data after a Redis restart; retry")
    end
    return fail("TABLE_NOT_FOUND", "no agent for " .. name)
  end
  ngx.ctx.metric_table = db .. "\t" .. tbl
  if r.kind == "paused" then
    return fail("AGENT_PAUSED", "intake for " .. name .. " is paused by an operator; retry later")
  elseif r.kind == "down" then
    return fail("AGENT_DOWN", "the agent for " .. name .. " is not running")
  elseif r.kind == "fenced" then
    return fail("NODE_FENCED", "this host lost touch with the cluster and stopped intake for " .. name .. "; retry, or send through another host")
  elseif r.kind == "node_down" then
    return fail("NODE_DOWN", "the host that runs " .. name .. " is not alive; retry later")
  elseif r.kind == "via" then
    if hop.so_far() >= hop.MAX_HOPS then
      return fail("AGENT_DOWN", "this host does not run " .. name .. " (the request was forwarded " .. hop.MAX_HOPS .. " times already); retry")
    end
    return hop.go(r.host, r.port, db, tbl)
  elseif r.kind ~= "agent" then
    return fail("AGENT_DOWN", "the route of " .. name .. " is unreadable")
  end

  -- The caller's name reaches the agent as an event header.
  ngx.req.read_body()
  local max_events = math.min(r.cap or conf.max_events, conf.max_events)
  local key = reply.idempotency_key()
  if key == false then
    return fail("INVALID_REQUEST", "Idempotency-Key must be 1-200 characters of letters, digits and ._:+/=- (a UUID is a good one)")
  end
  local rid = reply.request_id()
  local contract
  if r.schema then
    local bad
    contract, bad = schema.contract(r.schema)
    if not contract then return fail("INTERNAL", "the gateway cannot read " .. name .. "'s schema: " .. bad) end
  end
  -- Prepared: n events, the body to send, how many did not meet the contract (flagged or marked);
  -- else the error's name, message and details.
  local n, body_or_err, off_contract, details = events.prepare(ngx.req.get_body_data(), {
    name = name, user = user, max_events = max_events, max_event = r.max_event, request_id = rid, id_base = key or rid, contract = contract,
  })
  if not n then
    if details then metrics.count("schema_invalid\t" .. ngx.ctx.metric_table .. "\treject", details.count) end
    return fail(body_or_err, off_contract, nil, details)
  end
  if off_contract > 0 then metrics.count("schema_invalid\t" .. ngx.ctx.metric_table .. "\t" .. contract.policy, off_contract) end
  -- The db's share of the host: its quota, and its fair share while the gateway is saturated.
  if n > 0 then
    local q = tenants.parse(quota)
    local bytes = #(ngx.req.get_body_data() or "")
    local never, why = tenants.never_fits(db, q, n, bytes)
    if never then return fail(never, why) end
    local err, msg, wait, policy, left = tenants.enter(db, n, bytes)
    if err then return refuse(db, "share", err, msg, wait, policy, left) end
    err, msg, wait, policy, left = tenants.admit(db, q, n, bytes)
    if err then
      tenants.leave()
      return refuse(db, "quota", err, msg, wait, policy, left)
    end
  end
  -- (A route written before metrics ports were has none: such a sender gets 202.)
  local ack = sink_ack.wanted(r.ack)
  if ack and n == 0 then return reply.accepted(0, "sink") end
  if n > 0 then
    if conf.batch_window > 0 and r.cap and n < r.cap then
      return group_commit.join(r, body_or_err, n, ack)
    end
    if ack then return group_commit.alone(r, body_or_err, n, ack) end
    ngx.req.set_body_data(body_or_err)
  end
  ngx.ctx.events = n
  ngx.ctx.metrics_port = r.metrics_port
  ngx.ctx.agent_host = r.host
  ngx.ctx.agent_port = r.port
  if r.key then ngx.var.flume_intake_key = r.key end
end

-- balancer_by_lua of the flume_agent upstream: the table's agent on this host.
function M.balance()
  local balancer = require "ngx.balancer"
  local ok, err = balancer.set_current_peer(ngx.ctx.agent_host, ngx.ctx.agent_port)
  if not ok then ngx.log(ngx.ERR, "set_current_peer: ", err) end
  balancer.set_more_tries(0)
end

M.balance_hop = hop.balance

-- Flume's 200 has no body: the sender gets {"code":0,...,"events":N,"committed":"channel"} instead.
function M.header_filter()
  if ngx.status == 200 and ngx.ctx.events then
    ngx.ctx.accepted = true
    ngx.header["Content-Length"] = nil
    ngx.header["Content-Type"] = "application/json"
    ngx.header["X-Request-Id"] = reply.request_id()
  end
end

function M.body_filter()
  if not ngx.ctx.accepted then return end
  if ngx.arg[2] then
    if ngx.ctx.events > 0 then trace.committed(ngx.ctx.metrics_port, ngx.ctx.events, trace.now_ms(), "channel") end
    ngx.arg[1] = reply.accepted_body(ngx.ctx.events)
  else
    ngx.arg[1] = nil
  end
end

M.agent_failure = reply.agent_failure

-- GET /readyz for load balancers: 200 while this gateway reaches Redis (so it can check tokens
-- and find routes), else 503 REDIS_UNAVAILABLE with Retry-After. /healthz (nginx.conf) only says
-- it is up.
function M.ready()
  local red, err = redis_conn.connect()
  local pong = red and red:ping()
  if not pong or pong == ngx.null then
    if red then red:close() end
    return fail("REDIS_UNAVAILABLE", "the gateway cannot reach Redis: " .. tostring(err or "no answer to PING"))
  end
  redis_conn.release(red)
  ngx.status = 200
  ngx.header["Content-Type"] = "application/json"
  ngx.say('{"code":0,"message":"ready"}')
  return ngx.exit(ngx.HTTP_OK)
end

-- log_by_lua of every request: out of flight; an accepted request's events and bytes counted
-- for its db; with the metrics listener, counted by table and status.
function M.log()
  local db, n, bytes = tenants.leave()
  if db then
    local status = ngx.status
    if status == 200 or status == 202 then
      tenants.used(db, "e", n)
      tenants.used(db, "b", bytes)
    end
  end
  if conf.metrics then metrics.log() end
end
-- GET /metrics on the metrics listener: the counters, and the requests in flight now.
function M.metrics()
  metrics.serve({ in_flight = tenants.in_flight_total() })
end

function M.init_worker(c)
  conf.fill(c)
  background.start()
  trace.start()
  tenants.start()
end

return M
