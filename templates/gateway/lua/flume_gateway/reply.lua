-- What a sender gets back: errors in the catalogue's shape, and the accepted answer.
local cjson = require "cjson.safe"
-- The error catalogue, generated from src/errors.ts into var/gateway/lua/ at set-up.
local ERRORS = require "flume_errors"
local cache = require "flume_gateway.cache"
local redis_conn = require "flume_gateway.redis_conn"
local conf = require "flume_gateway.settings"

local M = {}

-- The request's id, as the API's: the sender's X-Request-Id when it is 1-128 characters of
-- letters, digits and ._:@/+=-, else nginx's own ($request_id). Echoed and in error bodies.
-- Kept in ngx.ctx: read again after a subrequest, nginx's $request_id would be another.
function M.request_id()
  local ctx = ngx.ctx
  if ctx.request_id then return ctx.request_id end
  local given = ngx.var.http_x_request_id
  local id = (given and #given <= 128 and given:find("^[%w%._:@/%+=%-]+$")) and given or ngx.var.request_id
  ctx.request_id = id
  return id
end

-- The sender's Idempotency-Key, which the ids of its request's events start with: nil when it
-- sent none, false when it is not 1-200 characters of letters, digits and ._:+/=- (as the API's).
function M.idempotency_key()
  local k = ngx.var.http_idempotency_key
  if not k then return nil end
  if #k > 200 or not k:find("^[%w%._:%+/=%-]+$") then return false end
  return k
end

-- An error answer: its status, code and Retry-After come from the catalogue generated from
-- src/errors.ts (var/gateway/lua/flume_errors.lua), never from here.
-- `retry_after`, when given, says better than the catalogue when to come back; `details`, when
-- given, is the answer's details object.
function M.error(err, message, retry_after, details)
  local e = ERRORS[err] or ERRORS.INTERNAL
  local rid = M.request_id()
  ngx.status = e.status
  ngx.header["Content-Type"] = "application/json"
  ngx.header["X-Request-Id"] = rid
  retry_after = retry_after or e.retry_after
  if retry_after then ngx.header["Retry-After"] = tostring(retry_after) end
  ngx.say(cjson.encode({ code = e.code, error = err, message = message, details = details, requestId = rid }))
  return ngx.exit(ngx.HTTP_OK)
end

-- What a sender gets once its n events are committed: to the agent's channel (the default), or
-- taken by the table's sink (it asked "Prefer: ack=sink", sink_ack.lua).
function M.accepted_body(n, committed)
  return '{"code":0,"message":"accepted","events":' .. n .. ',"committed":"' .. (committed or "channel") .. '","requestId":' .. cjson.encode(M.request_id()) .. '}\n'
end

function M.accepted(n, committed)
  ngx.status = 200
  ngx.header["Content-Type"] = "application/json"
  ngx.header["X-Request-Id"] = M.request_id()
  ngx.print(M.accepted_body(n, committed))
  return ngx.exit(ngx.HTTP_OK)
end

-- A sender that asked for the sink's acknowledgement and cannot have it (in time): its events are
-- committed to the channel, and will reach the sink, but no more is claimed.
function M.committed_to_channel(n, why)
  ngx.status = 202
  ngx.header["Content-Type"] = "application/json"
  ngx.header["X-Request-Id"] = M.request_id()
  ngx.print(cjson.encode({
    code = 0,
    message = "accepted: committed to the channel; " .. why .. " (they are delivered once it does)",
    events = n,
    committed = "channel",
    requestId = M.request_id(),
  }) .. "\n")
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
local function channel_retry_after(db, tbl)
  if not db or not tbl or db == "" or tbl == "" then return nil end
  local key = "h:" .. db .. ":" .. tbl
  local v = cache.dict:get(key)
  if v == nil then
    v = 0
    local red = redis_conn.connect()
    if red then
      local res, err = red:hget(conf.prefix .. "retry-after", db .. ":" .. tbl)
      if err then red:close() else redis_conn.release(red) end
      v = tonumber(res) or 0
    end
    cache.dict:set(key, v, 1)
  end
  if v > 0 then return math.floor(v) end
  return nil
end

function M.agent_failure(status)
  local f = AGENT_FAILURES[status] or AGENT_FAILURES[500]
  if status == 503 then
    return M.error(f[1], f[2], channel_retry_after(ngx.var.ingest_db, ngx.var.ingest_table))
  end
  return M.error(f[1], f[2])
end

return M
