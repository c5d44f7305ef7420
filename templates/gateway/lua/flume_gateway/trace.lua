-- A trace of every request the table's agent committed, for GET /v1/api/:db/:table/trace/:id
-- (src/traces/trace-store.ts reads what this writes; keys in src/redis/keys.ts):
--   <p>trace:<request id>              JSON {db, table, events, ack, acceptedAt, committedAt,
--                                        start, need, seen, takenAt}: when the gateway had the
--                                        request, when the agent's 200 came, the channel's mark
--                                        (sink_ack.lua: its JVM's start, the takes that cover the
--                                        events, the takes seen as it was read), and,
--                                        for a sender that waited for the sink, when it saw them taken
--   <p>trace-takes:<db>:<table>        ZSET of samples "<ms>:<start>:<takes>" scored by ms: when the
--                                        channel had taken how much, from which the API tells by
--                                        when any traced request was taken
-- Both live TRACE_SECONDS. Requests only queue a note (no I/O on their path); each worker writes
-- its notes every FLUSH_SECONDS in one pipeline, reading each agent's counts once for all of
-- them (read after their commits: a mark that covers them), and samples an agent's takes until
-- they pass its last mark (at most FOLLOW_SECONDS after its last request).
local cjson = require "cjson.safe"
local conf = require "flume_gateway.settings"
local redis_conn = require "flume_gateway.redis_conn"
local sink_ack = require "flume_gateway.sink_ack"
local metrics = require "flume_gateway.metrics"

local M = {}
M.TRACE_SECONDS = 3600
local FLUSH_SECONDS = 0.2
local FOLLOW_SECONDS = 60
-- Notes kept at most between flushes, per worker: past it a request goes untraced (counted).
local MAX_QUEUED = 20000

local queue = {}
-- metrics port -> { db, tbl, need, start, last_note }: agents whose takes are still followed
local followed = {}

local function now_ms()
  ngx.update_time()
  return math.floor(ngx.now() * 1000)
end

-- A request to /ingest/<db>/<table> whose n events the agent at metrics port `port` (nil: a
-- route without one) committed, its 200 in hand at committed_ms. ack: "sink" or "channel"; mark
-- and taken_ms: what a sink-acknowledged request learned itself (else nil).
function M.committed(port, n, committed_ms, ack, mark, taken_ms)
  local db, tbl = ngx.var.ingest_db, ngx.var.ingest_table
  if not db or not tbl then return end
  if #queue >= MAX_QUEUED then
    metrics.count("traces_dropped")
    return
  end
  queue[#queue + 1] = {
    rid = require("flume_gateway.reply").request_id(),
    db = db, tbl = tbl, port = port, n = n, ack = ack,
    t0 = math.floor(ngx.req.start_time() * 1000), t1 = committed_ms,
    start = mark and mark.start, need = mark and mark.need, seen = mark and mark.seen, t2 = taken_ms,
  }
end

M.now_ms = now_ms

local function takes_key(db, tbl)
  return conf.prefix .. "trace-takes:" .. db .. ":" .. tbl
end

local flushing = false

local function flush(premature)
  if premature or flushing or (#queue == 0 and next(followed) == nil) then return end
  flushing = true
  local ok, err = pcall(M.flush_now)
  flushing = false
  if not ok then ngx.log(ngx.ERR, "writing traces: ", err) end
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
  local red = redis_conn.connect()
  if not red then
    metrics.count("traces_dropped", #notes)
    return
  end
  local at = now_ms()
  red:init_pipeline()
  local ttl_ms = M.TRACE_SECONDS * 1000
  for port, t in pairs(ports) do
    local c = sink_ack.read_counts(port)
    local read_ms = now_ms()
    if c then
      local key = takes_key(t.db, t.tbl)
      red:zadd(key, read_ms, read_ms .. ":" .. c.start .. ":" .. c.take)
      red:zremrangebyscore(key, 0, read_ms - ttl_ms)
      red:pexpire(key, ttl_ms)
      t.counts = c
    end
  end
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
    local record = cjson.encode({
      db = n.db, table = n.tbl, events = n.n, ack = n.ack,
      acceptedAt = n.t0, committedAt = n.t1, start = n.start, need = n.need, seen = n.seen, takenAt = n.t2,
    })
    red:set(conf.prefix .. "trace:" .. n.rid, record, "EX", M.TRACE_SECONDS)
  end
  -- Followed agents whose takes passed their last mark (or that went quiet long ago) are let go.
  for port, f in pairs(followed) do
    local c = ports[port] and ports[port].counts
    if (c and sink_ack.taken({ start = f.start, need = f.need, seen = 0 }, c)) or at - f.last_note > FOLLOW_SECONDS * 1000 then
      followed[port] = nil
    end
  end
  local _, err = red:commit_pipeline()
  if err then
    red:close()
    ngx.log(ngx.ERR, "writing traces: ", err)
    metrics.count("traces_dropped", #notes)
    return
  end
  redis_conn.release(red)
end

function M.start()
  ngx.timer.every(FLUSH_SECONDS, flush)
end

return M
