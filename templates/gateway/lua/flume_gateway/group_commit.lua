-- Group commit, per worker: requests for one agent that arrive within conf.batch_window seconds
-- of the first (the leader) join its batch, up to the table's transactionCapacity events. The
-- leader sends the batch (one Flume request: one channel transaction, one fsync) and every member
-- gets the batch's outcome: 200 only once the agent committed all of it, else the same failure.
-- A full batch leaves at once; a request that does not fit leads the next one.
local semaphore = require "ngx.semaphore"
local metrics = require "flume_gateway.metrics"
local reply = require "flume_gateway.reply"
local conf = require "flume_gateway.settings"

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

-- events_json: the request's events (a JSON array, already checked), n of them; cap: the table's
-- transactionCapacity. Answers the request.
return function(host, port, events_json, n, cap)
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
    if not b.done:wait(MEMBER_WAIT) then return reply.agent_failure(504) end
  else
    b = { host = host, port = port, parts = { part }, count = n, members = 0, full = semaphore.new(), done = semaphore.new() }
    filling[key] = b
    b.full:wait(conf.batch_window)
    if filling[key] == b then filling[key] = nil end
    b.status = send_batch(b)
    metrics.observe("batch_requests", metrics.BATCH_BUCKETS, b.members + 1)
    if b.members > 0 then b.done:post(b.members) end
  end
  if b.status == 200 then return reply.accepted(n) end
  return reply.agent_failure(b.status)
end
