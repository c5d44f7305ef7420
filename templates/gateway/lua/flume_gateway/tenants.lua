-- Sharing the host between dbs (their senders are the tenants): each db's quota, the fair share
-- while the gateway is saturated, and each db's usage. Counts live in the shared dict
-- flume_gateway_tenants, so every worker sees every other's:
--   e:<db>:<second>, b:<db>:<second>   events and body bytes admitted in that second
--   E:<db>:<day>, B:<db>:<day>         events and body bytes admitted that UTC day
--   f:<worker>, f:<worker>:<db>        requests in flight per worker (a worker that dies and is
--                                      started again clears its own: nothing leaks)
--   s:<slot>:<db>, n:<slot>            the dbs sending in that tenth of a second, and how many
-- Usage goes to Redis every second, per worker, in one pipeline: <p>usage:<minute> HASH
-- "<db>\t<e|b|quota|share>" -> count (src/tenants/usage.ts reads it); the accepted events and bytes
-- go to the metrics each second too.
local conf = require "flume_gateway.settings"
local redis_conn = require "flume_gateway.redis_conn"
local window = require "flume_gateway.quota_window"
local metrics = require "flume_gateway.metrics"
local math_floor, math_max = math.floor, math.max

local M = {}
local dict = ngx.shared.flume_gateway_tenants
M.parse = window.parse

-- Counting ---------------------------------------------------------------------------------------

local function counted(kind, db, period, n, ttl)
  return dict:incr(kind .. ":" .. db .. ":" .. period, n, 0, ttl) or 0
end

local function undo(taken)
  for _, t in ipairs(taken) do dict:incr(t[1], -t[2], 0) end
end

-- The quota's checks in turn; each counts first and takes back what does not fit, so workers
-- racing each other can only refuse too early, never admit too much.
-- -> nil (admitted, counted) | error name, message, retry_after, policy header, ratelimit header.
function M.admit(db, q, n, bytes)
  if not q then return nil end
  ngx.update_time()
  local now = ngx.now()
  local sec = math_floor(now)
  local frac = now - sec
  local taken = {}
  local function per_second(kind, limit, amount, what, unit)
    if not limit or amount == 0 then return nil end
    local key = kind .. ":" .. db .. ":" .. sec
    local cur = counted(kind, db, sec, amount, 3)
    local prev = dict:get(kind .. ":" .. db .. ":" .. (sec - 1)) or 0
    if window.estimate(prev, cur, frac) <= limit then
      taken[#taken + 1] = { key, amount }
      return nil
    end
    dict:incr(key, -amount, 0)
    undo(taken)
    local wait = window.wait_for(prev, cur - amount, frac, amount, limit)
    local policy, left = window.headers(what, limit, 1, wait, unit)
    return "QUOTA_EXCEEDED", db .. " is over its quota of " .. limit .. " " .. what .. " a second at this gateway; retry in " .. wait .. " s", wait, policy, left
  end
  local function per_day(kind, limit, amount, what, unit)
    if not limit or amount == 0 then return nil end
    local day = math_floor(now / 86400)
    local key = kind .. ":" .. db .. ":" .. day
    local total = counted(kind, db, day, amount, 86400 + 3600)
    if total <= limit then
      taken[#taken + 1] = { key, amount }
      return nil
    end
    dict:incr(key, -amount, 0)
    undo(taken)
    local wait = window.until_tomorrow(now)
    local policy, left = window.headers(what .. "-per-day", limit, 86400, wait, unit)
    return "QUOTA_EXCEEDED", db .. " has used its quota of " .. limit .. " " .. what .. " for the day (UTC) at this gateway", wait, policy, left
  end
  local err, message, wait, policy, left = per_second("e", q.eps, n, "events")
  if err then return err, message, wait, policy, left end
  err, message, wait, policy, left = per_second("b", q.bps, bytes, "bytes", "content-bytes")
  if err then return err, message, wait, policy, left end
  err, message, wait, policy, left = per_day("E", q.epd, n, "events")
  if err then return err, message, wait, policy, left end
  err, message, wait, policy, left = per_day("B", q.bpd, bytes, "bytes", "content-bytes")
  if err then return err, message, wait, policy, left end
  return nil
end

-- A request that can never fit its db's quota, whatever the wait: -> error name, message | nil.
function M.never_fits(db, q, n, bytes)
  if not q then return nil end
  if (q.eps and n > q.eps) or (q.epd and n > q.epd) then
    local limit = q.eps and n > q.eps and q.eps .. " events a second" or q.epd .. " events a day"
    return "TOO_MANY_EVENTS", n .. " events in one request can never fit " .. db .. "'s quota of " .. limit .. ": send smaller batches"
  end
  if (q.bps and bytes > q.bps) or (q.bpd and bytes > q.bpd) then
    local limit = q.bps and bytes > q.bps and q.bps .. " bytes a second" or q.bpd .. " bytes a day"
    return "BODY_TOO_LARGE", "a body of " .. bytes .. " bytes can never fit " .. db .. "'s quota of " .. limit .. ": send smaller requests"
  end
end

-- The fair share ---------------------------------------------------------------------------------

local wid -- this worker's id, as a string (set at start)

function M.in_flight_total()
  local total = 0
  for w = 0, conf.workers - 1 do total = total + (dict:get("f:" .. w) or 0) end
  return total
end

local function in_flight_of(db)
  local total = 0
  for w = 0, conf.workers - 1 do total = total + (dict:get("f:" .. w .. ":" .. db) or 0) end
  return total
end

-- The dbs that sent in this tenth of a second or the last: the ones sharing the host now. Each
-- worker marks a db once a slot (it remembers which it marked), and the count is read only when
-- the gateway is at its mark.
local SLOT = 0.1
local marked = {} -- db -> the last slot this worker marked it sending in
local function sending(db, slot)
  if marked[db] == slot then return end
  marked[db] = slot
  if dict:add("s:" .. slot .. ":" .. db, true, 1) then dict:incr("n:" .. slot, 1, 0, 1) end
end
local function dbs_sending(slot)
  return math_max(dict:get("n:" .. slot) or 1, dict:get("n:" .. (slot - 1)) or 0)
end

-- A request of `db` about to go to an agent: counted in flight (until M.leave, from the log
-- phase). While conf.fair_share_in_flight requests or more are in flight and two dbs or more send,
-- a db at its share of them (the mark / the dbs sending) waits for one of its own to finish, up to
-- conf.fair_share_wait seconds, then is refused: -> nil | error name, message, retry_after,
-- policy header, ratelimit header. A db below its share always goes on at once, and one at it
-- goes on while the gateway is below the mark (what others leave unused is not wasted). A waiter
-- costs no CPU (a semaphore: woken when a request of its worker leaves, else every RECHECK) and
-- holds no place in flight.
local semaphore = require "ngx.semaphore"
-- This worker's waiters: posted once for each request that leaves while some wait (they look
-- again; a place freed by another worker is seen at the next look, every RECHECK at most).
local freed = semaphore.new()
local waiting = 0
local RECHECK = 0.05

-- `n` events and `bytes` of body: what the log phase counts for the db once it is answered.
function M.enter(db, n, bytes)
  local limit = conf.fair_share_in_flight
  local began = ngx.now()
  while true do
    local slot = math_floor(ngx.now() / SLOT)
    sending(db, slot)
    local active, share = 1, limit
    local go = limit <= 0 or M.in_flight_total() < limit
    if not go then
      active = dbs_sending(slot)
      share = window.share(limit, active)
      go = active < 2 or in_flight_of(db) < share
    end
    if go then
      dict:incr("f:" .. wid, 1, 0)
      dict:incr("f:" .. wid .. ":" .. db, 1, 0)
      -- In an nginx variable, not ngx.ctx: an agent's failure ends in a named location (an
      -- internal redirect, which clears ngx.ctx), and the log phase there must still let it go.
      ngx.var.flume_tenant = db .. "\t" .. n .. "\t" .. bytes
      return nil
    end
    local waited = ngx.now() - began
    if waited >= conf.fair_share_wait then
      local policy, left = window.headers("fair-share", share, 1, 1, "concurrent-requests")
      return "OVER_FAIR_SHARE", "the gateway is saturated (" .. limit .. " requests in flight or more) and " .. db .. " had its share in flight (" .. share .. " of " .. limit .. ", shared by " .. active .. " dbs sending) for " .. math_floor(waited * 1000) .. " ms; retry in 1 s", 1, policy, left
    end
    waiting = waiting + 1
    freed:wait(math.min(RECHECK, conf.fair_share_wait - waited + 0.001))
    waiting = waiting - 1
    ngx.update_time()
  end
end

-- The request is over (log phase), or refused after M.enter: no longer in flight. -> its db, events
-- and bytes (nil: it was not in flight).
function M.leave()
  local held = ngx.var.flume_tenant
  if not held or held == "" then return nil end
  ngx.var.flume_tenant = ""
  local db, n, bytes = held:match("^([^\t]+)\t(%d+)\t(%d+)$")
  if not db then return nil end
  dict:incr("f:" .. wid, -1, 0)
  dict:incr("f:" .. wid .. ":" .. db, -1, 0)
  if waiting > 0 then freed:post(1) end
  return db, tonumber(n), tonumber(bytes)
end

-- Usage --------------------------------------------------------------------------------------------

local usage = {} -- "<db>\t<kind>" -> count since the last flush (this worker's)
local accepted = {} -- the same for the metrics dict, apart (Redis may be away; the dict never is)
local METRIC = { e = "db_events", b = "db_bytes" }

function M.used(db, kind, n)
  local k = db .. "\t" .. kind
  usage[k] = (usage[k] or 0) + n
  if METRIC[kind] then accepted[k] = (accepted[k] or 0) + n end
end

local FLUSH_SECONDS = 1
local KEEP_SECONDS = 3900 -- a minute's counts outlive the hour the API shows by a few minutes

local function flush(premature)
  -- Each db's accepted events and bytes into the metrics, a second's worth in one add each.
  for k, n in pairs(accepted) do
    local db, kind = k:match("^(.-)\t(%a)$")
    metrics.count(METRIC[kind] .. "\t" .. db, n)
  end
  accepted = {}
  local pending = usage
  if next(pending) == nil then return end
  usage = {}
  local red = redis_conn.connect()
  if not red then
    if not premature then usage = pending end -- kept for the next flush (Redis is away)
    return
  end
  local key = conf.prefix .. "usage:" .. math_floor(ngx.now() / 60)
  red:init_pipeline()
  for field, n in pairs(pending) do red:hincrby(key, field, n) end
  red:expire(key, KEEP_SECONDS)
  local _, err = red:commit_pipeline()
  if err then red:close() else redis_conn.release(red) end
end

function M.start()
  wid = tostring(ngx.worker.id() or 0)
  -- A worker started again in the place of one that died clears what that one left in flight.
  for _, key in ipairs(dict:get_keys(0)) do
    if key == "f:" .. wid or key:sub(1, #wid + 3) == "f:" .. wid .. ":" then dict:delete(key) end
  end
  ngx.timer.every(FLUSH_SECONDS, flush)
end

return M
