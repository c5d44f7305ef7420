-- Group commit, per worker: requests for one agent that arrive within conf.batch_window seconds
-- of the first (the leader) join its batch, up to the table's transactionCapacity events. The
-- leader sends the batch (one Flume request: one channel transaction, one fsync) and every member
-- gets the batch's outcome: 200 only once the agent committed all of it, else the same failure.
-- A full batch leaves at once; a request that does not fit leads the next one.
-- A member that asked for the sink's acknowledgement (sink_ack.lua) is answered from the channel's
-- counts the leader reads once the batch committed; the others are answered at once.
local semaphore = require "ngx.semaphore"
local metrics = require "flume_gateway.metrics"
local reply = require "flume_gateway.reply"
local conf = require "flume_gateway.settings"
local sink_ack = require "flume_gateway.sink_ack"
local trace = require "flume_gateway.trace"

local M = {}

local filling = {} -- "host:port" -> the batch still taking requests
-- A member waits at most this long: the proxy's own deadlines (connect, send, read) and the window.
local MEMBER_WAIT = 45

local function send_batch(b)
  local ok, res = pcall(ngx.location.capture, "/_flume_batch", {
    method = ngx.HTTP_POST,
    body = "[" .. table.concat(b.parts, ",") .. "]",
    ctx = { agent_host = b.host, agent_port = b.port },
    vars = { flume_intake_key = b.key or "" },
  })
  if not ok then
    ngx.log(ngx.ERR, "group commit: ", res)
    return 500
  end
  return res.status
end

-- Sends the batch; with a member that waits for the sink, reads the channel's counts once it
-- committed (nil: they cannot be read).
local function commit(b)
  b.status = send_batch(b)
  b.committed_ms = trace.now_ms()
  if b.status == 200 and b.wants_sink and b.metrics_port then b.counts = sink_ack.counts_after_commit(b.metrics_port) end
end

local function answer(b, n, ack)
  if b.status ~= 200 then return reply.agent_failure(b.status) end
  if ack then return sink_ack.answer(ack, b.metrics_port, b.counts, n, b.committed_ms) end
  trace.committed(b.metrics_port, n, b.committed_ms, "channel")
  return reply.accepted(n)
end

-- r: the table's route (host, port, cap: its transactionCapacity, metrics_port); events_json: the
-- request's events (a JSON array, already checked), n of them; ack: the sender's wish to hear from
-- the sink (sink_ack.wanted), or nil. Answers the request.
function M.join(r, events_json, n, ack)
  local key = r.host .. ":" .. r.port
  local part = events_json:sub(2, -2) -- the events without the array's brackets
  local b = filling[key]
  if b and b.count + n <= r.cap then
    b.parts[#b.parts + 1] = part
    b.count = b.count + n
    b.members = b.members + 1
    if ack then b.wants_sink = true end
    if b.count == r.cap then
      filling[key] = nil
      b.full:post(1)
    end
    if not b.done:wait(MEMBER_WAIT) then return reply.agent_failure(504) end
  else
    b = { host = r.host, port = r.port, key = r.key, metrics_port = r.metrics_port, wants_sink = ack ~= nil, parts = { part }, count = n, members = 0, full = semaphore.new(), done = semaphore.new() }
    filling[key] = b
    b.full:wait(conf.batch_window)
    if filling[key] == b then filling[key] = nil end
    commit(b)
    metrics.observe("batch_requests", metrics.BATCH_BUCKETS, b.members + 1)
    if b.members > 0 then b.done:post(b.members) end
  end
  return answer(b, n, ack)
end

-- A request that waits for the sink and cannot share a batch (it fills one, or batches are off):
-- sent alone, the same way.
function M.alone(r, events_json, n, ack)
  local b = { host = r.host, port = r.port, key = r.key, parts = { events_json:sub(2, -2) }, metrics_port = r.metrics_port, wants_sink = true }
  commit(b)
  return answer(b, n, ack)
end

return M
