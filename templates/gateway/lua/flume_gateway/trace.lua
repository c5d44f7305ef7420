-- A trace of each request the table's agent committed, for GET /v1/api/:db/:table/trace/:id
-- (src/traces/trace-store.ts reads what this writes; keys in src/redis/keys.ts):
--   <p>traces:<db>:<table>:<minute>   HASH request id -> "t0,t1,events,ack,start,need,seen,t2":
--                                       when the gateway had it, when the agent's 200 came (ms),
--                                       its events, what it was answered on, the channel's mark
--                                       (sink_ack.lua: its JVM's start, the takes that cover it, the
--                                       takes seen as it was read; empty if unknown) and, for a
--                                       sender that waited for the sink, when it saw them taken
--   <p>trace-takes:<db>:<table>       ZSET "<ms>:<start>:<takes>" by ms: the channel's take count
--                                       as sampled, from which the API tells by when a request was
--                                       taken
-- Both live conf.trace_seconds (GATEWAY_TRACE_SECONDS; the minute's hash a minute more). Each
-- worker traces at most conf.trace_per_worker requests a second (its share of
-- GATEWAY_TRACE_PER_SECOND), which bounds Redis's memory; past it a request goes untraced
-- (counted: flume_gateway_traces_dropped_total). Requests only queue a note (no I/O on their
-- path); each worker writes its notes every FLUSH_SECONDS in one pipeline, reading each agent's
-- counts once for all of them (read after their commits: a mark that covers them), and samples an
-- agent's takes until they pass its last mark (at most FOLLOW_SECONDS after its last request).
local conf = require "flume_gateway.settings"
local redis_conn = require "flume_gateway.redis_conn"
local sink_ack = require "flume_gateway.sink_ack"
local metrics = require "flume_gateway.metrics"
local reply = require "flume_gateway.reply"

local M = {}
local FLUSH_SECONDS = 0.2
local FOLLOW_SECONDS = 60

local queue = {}
-- metrics port -> { db, tbl, need, start, last_note }: agents whose takes are still followed
local followed = {}
-- This second's count of traced requests (the budget).
local budget_second, budget_used = 0, 0

local function now_ms()
  ngx.update_time()
  return math.floor(ngx.now() * 1000)
end
M.now_ms = now_ms

-- A request to /ingest/<db>/<table> whose n events the agent at metrics port `port` (nil: a
-- route without one) committed, its 200 in hand at committed_ms. ack: "sink" or "channel"; mark
-- and taken_ms: what a sink-acknowledged request learned itself (else nil).
function M.committed(port, n, committed_ms, ack, mark, taken_ms)
  if (conf.trace_seconds or 0) <= 0 then return end
  local db, tbl = ngx.var.ingest_db, ngx.var.ingest_table
  if not db or not tbl then return end
  local second = math.floor(committed_ms / 1000)
  if second ~= budget_second then budget_second, budget_used = second, 0 end
  if budget_used >= conf.trace_per_worker then
    metrics.count("traces_dropped")
    return
  end
  budget_used = budget_used + 1
  queue[#queue + 1] = {
    rid = reply.request_id(),
    db = db, tbl = tbl, port = port, n = n, ack = ack,
    t0 = math.floor(ngx.req.start_time() * 1000), t1 = committed_ms,
    start = mark and mark.start, need = mark and mark.need, seen = mark and mark.seen, t2 = taken_ms,
  }
end

-- The stored value (the API parses it: src/traces/trace-store.ts).
local function value(n)
  local function f(x) return x and string.format("%d", x) or "" end
  return table.concat({ f(n.t0), f(n.t1), f(n.n), n.ack, f(n.start), f(n.need), f(n.seen), f(n.t2) }, ",")
end

function M.flush_now()
  local notes = queue
  queue = {}
  local ports = {}
  for _, n in ipairs(notes) do
    if n.port then ports[n.port] = { db = n.db, tbl = n.tbl } end
  end
  for port, f in pairs(followed) do
    if not ports[port] then ports[port] = { db = f.db, tbl = f.tbl } end
  end
  local red, err = redis_conn.connect()
  if not red then
    if #notes > 0 then
      ngx.log(ngx.WARN, "traces not written: ", err)
      metrics.count("traces_dropped", #notes)
    end
    return
  end
  local at = now_ms()
  local keep_ms = conf.trace_seconds * 1000
  red:init_pipeline()
  for port, t in pairs(ports) do
    -- Shared with this worker's requests that wait for the sink: one read serves both.
    local c = sink_ack.counts_since(port, at / 1000)
    local read_ms = now_ms()
    if c then
      local key = conf.prefix .. "trace-takes:" .. t.db .. ":" .. t.tbl
      red:zadd(key, read_ms, read_ms .. ":" .. string.format("%d", c.start) .. ":" .. string.format("%d", c.take))
      red:zremrangebyscore(key, 0, read_ms - keep_ms)
      red:pexpire(key, keep_ms)
      t.counts = c
    end
  end
  local buckets = {}
  for _, n in ipairs(notes) do
    local c = n.port and ports[n.port].counts
    if not n.need and c then
      local mark = sink_ack.mark(c)
      n.start, n.need, n.seen = mark.start, mark.need, mark.seen
    end
    if n.need and not n.t2 then
      local f = followed[n.port] or { db = n.db, tbl = n.tbl }
      if f.start ~= n.start or (f.need or 0) < n.need then f.start, f.need = n.start, n.need end
      f.last_note = at
      followed[n.port] = f
    end
    local key = conf.prefix .. "traces:" .. n.db .. ":" .. n.tbl .. ":" .. math.floor(n.t0 / 60000)
    red:hset(key, n.rid, value(n))
    buckets[key] = true
  end
  for key in pairs(buckets) do red:expire(key, conf.trace_seconds + 60) end
  -- Followed agents whose takes passed their last mark (or that went quiet long ago) are let go.
  for port, f in pairs(followed) do
    local c = ports[port] and ports[port].counts
    if (c and sink_ack.taken({ start = f.start, need = f.need, seen = 0 }, c)) or at - f.last_note > FOLLOW_SECONDS * 1000 then
      followed[port] = nil
    end
  end
  local _, perr = red:commit_pipeline()
  if perr then
    red:close()
    ngx.log(ngx.ERR, "writing traces: ", perr)
    metrics.count("traces_dropped", #notes)
    return
  end
  redis_conn.release(red)
end

local flushing = false

local function flush(premature)
  if premature or flushing or (#queue == 0 and next(followed) == nil) then return end
  flushing = true
  local ok, err = pcall(M.flush_now)
  flushing = false
  if not ok then ngx.log(ngx.ERR, "writing traces: ", err) end
end

function M.start()
  if (conf.trace_seconds or 0) > 0 then ngx.timer.every(FLUSH_SECONDS, flush) end
end

return M
