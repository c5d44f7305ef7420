-- Sink acknowledgement: a sender that asks "Prefer: ack=sink" (RFC 7240; "wait=N" bounds the
-- wait in seconds) is answered 200 only once the table's sink has committed its events; past the
-- wait, 202 says they are committed to the channel only.
--
-- How it is known: Flume's file channel is first in, first out; it counts a put before the
-- committed events join its queue and a take when the sink's transaction commits (the Kafka sink
-- commits once the broker acknowledged the batch). A JVM counts both from 0, and what its channel
-- replayed at start (StartBacklog, flume/launcher/flumeservice/StartBacklog.java) comes out first.
-- So the events ahead of and including a request's are at most StartBacklog + the put count read
-- once its transaction committed: when the take count reaches that, the sink has them all. A JVM
-- that starts again replays what was not taken, in order: what was left is then at most that
-- figure less the takes last seen, and the new JVM's takes must reach it. Every doubt counts the
-- long way: a mistake can only be a late answer, never a 200 too soon.
--
-- Pure, apart from M.counts and M.wait (a cosocket to the agent's metrics port, ngx.sleep).
local cjson = require "cjson.safe"

local M = {}

-- The longest a sender may ask to wait, and what it gets when it names no wait: well within the
-- proxy's and a hop's 30 s read timeouts (nginx.conf).
M.MAX_WAIT = 25
M.DEFAULT_WAIT = 10

-- prefer: the Prefer header's value(s) (a string, or a table when sent more than once).
-- Returns { ack = "sink"|"channel"|nil, wait = seconds|nil }: preferences are comma-separated,
-- names case-insensitive, values optionally quoted; parameters after ";" and unknown
-- preferences are ignored, as RFC 7240 asks. A wait is clamped to 1..MAX_WAIT.
function M.parse_prefer(prefer)
  local out = {}
  if prefer == nil then return out end
  local values = type(prefer) == "table" and prefer or { prefer }
  for _, value in ipairs(values) do
    for item in tostring(value):gmatch("[^,]+") do
      local pref = item:match("^[^;]*")
      local name, v = pref:match("^%s*([%w%-_]+)%s*=%s*\"?([^\"%s]*)\"?%s*$")
      if not name then name = pref:match("^%s*([%w%-_]+)%s*$") end
      name = name and name:lower()
      if name == "ack" and v then
        v = v:lower()
        if v == "sink" or v == "channel" then out.ack = out.ack or v end
      elseif name == "wait" and v and v:match("^%d+$") then
        out.wait = out.wait or math.max(1, math.min(M.MAX_WAIT, tonumber(v)))
      end
    end
  end
  return out
end

-- body: the agent's GET /metrics (JSON). Returns { start = ms, backlog = n, put = n, take = n }
-- of its channel, or nil when the body is not Flume's metrics or lacks the backlog (an agent
-- started without the launcher's jar: its sink's acknowledgement cannot be told).
function M.parse_counts(body)
  local all = body and cjson.decode(body)
  local ch = type(all) == "table" and all["CHANNEL.c1"]
  if type(ch) ~= "table" then return nil end
  local c = {
    start = tonumber(ch.StartTime),
    backlog = tonumber(ch.StartBacklog),
    put = tonumber(ch.EventPutSuccessCount),
    take = tonumber(ch.EventTakeSuccessCount),
  }
  if not (c.start and c.backlog and c.put and c.take) then return nil end
  return c
end

-- Where a request stands, from the counts `c` read once the agent answered it 200. Should the
-- JVM have started again in between, its backlog holds the request: the same figure covers it.
function M.mark(c)
  return { start = c.start, need = c.backlog + c.put, seen = c.take }
end

-- Whether the sink has taken everything up to the mark, given counts `c` read now; updates the
-- mark when the agent's JVM changed (see the top of this file).
function M.taken(mark, c)
  if c.start ~= mark.start then
    mark.need = math.max(0, mark.need - mark.seen)
    mark.start = c.start
    mark.seen = 0
  end
  if c.take > mark.seen then mark.seen = c.take end
  return c.take >= mark.need
end

-- The agent's channel counts, read over a cosocket (HTTP/1.0, one exchange); nil when it does
-- not answer within 500 ms (a JVM that restarts, a port nobody holds) or not as Flume's metrics.
function M.read_counts(port)
  local sock = ngx.socket.tcp()
  sock:settimeout(500)
  local ok = sock:connect("127.0.0.1", port)
  if not ok then return nil end
  local sent = sock:send("GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
  local answer = sent and sock:receive("*a")
  sock:close()
  if not answer or answer:match("^HTTP/1%.%d (%d+)") ~= "200" then return nil end
  return M.parse_counts(answer:match("\r\n\r\n(.*)$"))
end

-- Per worker, the latest counts of each agent and when their read began: requests that wait on
-- one agent share its reads (a read begun after a moment tells of the channel after it).
local latest = {}
local reading = {}

local function now()
  ngx.update_time()
  return ngx.now()
end

-- Counts read no earlier than `since` (seconds): another request's (or the trace writer's) if it
-- began reading since then, else a read of our own.
local function counts_since(port, since)
  for _ = 1, 50 do
    local l = latest[port]
    if l and l.at >= since then return l.c end
    if not reading[port] then break end
    ngx.sleep(0.002)
  end
  reading[port] = true
  local at = now()
  local ok, c = pcall(M.read_counts, port)
  reading[port] = nil
  if not ok then
    ngx.log(ngx.ERR, "reading the channel counts of 127.0.0.1:", port, ": ", c)
    return nil
  end
  if c then latest[port] = { at = at, c = c } end
  return c
end

-- The counts once a request's transaction committed (its 200 is in hand).
function M.counts_after_commit(port)
  return counts_since(port, now())
end

M.counts_since = counts_since

-- The sender's wish: { wait = seconds } when it asks for the sink's acknowledgement ("Prefer:
-- ack=sink"), or says nothing on a table whose default is the sink (`default` "sink"); else nil
-- ("Prefer: ack=channel" opts out of a table's default).
function M.wanted(default)
  -- Most requests carry no Prefer: one header lookup; all of them only when there is one.
  local p = M.parse_prefer(ngx.var.http_prefer and ngx.req.get_headers()["prefer"])
  local ack = p.ack or default
  if ack ~= "sink" then return nil end
  return { wait = p.wait or M.DEFAULT_WAIT }
end

-- Answers a request whose n events the agent committed, given the counts read just after (from
-- the agent's metrics port): 200 once the sink has taken them, else 202 when the wait (from the
-- request's arrival) ran out or the counts cannot be read.
function M.answer(ack, port, counts, n, committed_ms)
  local reply = require "flume_gateway.reply"
  local trace = require "flume_gateway.trace"
  if not counts then
    trace.committed(port, n, committed_ms, "sink")
    return reply.committed_to_channel(n, "the agent's channel counts cannot be read, so the sink's progress is unknown")
  end
  local mark = M.mark(counts)
  local traced = { start = mark.start, need = mark.need, seen = mark.seen }
  local deadline = ngx.req.start_time() + ack.wait
  local pause = 0.005
  while true do
    local since = now()
    if M.taken(mark, counts) then
      trace.committed(port, n, committed_ms, "sink", traced, trace.now_ms())
      ngx.header["Preference-Applied"] = "ack=sink"
      return reply.accepted(n, "sink")
    end
    if since >= deadline then
      trace.committed(port, n, committed_ms, "sink", traced)
      return reply.committed_to_channel(n, "the sink had not taken them within " .. ack.wait .. " s")
    end
    ngx.sleep(math.min(pause, deadline - since))
    pause = math.min(0.05, pause * 1.5)
    counts = counts_since(port, since) or counts
  end
end

return M
