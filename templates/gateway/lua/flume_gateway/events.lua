-- The body a sender posts, checked and rewritten before any agent sees it. Pure: no ngx.
-- prepare(body, limits) -> count, body to send (nil: send as it came), events off the table's
-- contract | nil, error name, message, details.
local cjson = require "cjson.safe"
local schema = require "flume_gateway.schema"
-- NaN, Infinity and hexadecimal numbers are not JSON: refused when read (they could not be
-- written back for the agent either).
cjson.decode_invalid_numbers(false)

local M = {}

-- Headers that would steer a sink (Flume's Kafka sink reads "topic" and "key"; a table's
-- token must not reach another topic or choose partitions), and those the gateway sets on every
-- event: "eventId" (<the request's Idempotency-Key, else its id>:<the event's place, from 1>) and
-- "requestId" (the request's id, as X-Request-Id answers it). "username" is set here, always.
-- "schemaDrift" and "quarantine" are the gateway's marks of an event that does not meet its
-- table's contract (policy flag; policy quarantine, which the Kafka sink keeps aside).
M.RESERVED_HEADERS = { topic = true, key = true, eventId = true, requestId = true, schemaDrift = true, quarantine = true }

-- The most events a SCHEMA_MISMATCH answer lists (each with its place and field path).
M.MAX_LISTED = 100
-- The header each drift policy marks an event with (reject marks none: the request is refused).
local DRIFT_HEADER = { flag = "schemaDrift", quarantine = "quarantine" }

local SHAPE = "send a JSON array of {\"headers\":{...},\"body\":\"...\"}"

-- cjson reads [] and {} alike (an empty table): an empty array inside the top-level array,
-- where an event or its headers object belongs, would pass for an empty object. Looked for in
-- the text, outside strings; the scan runs only when "[" and "]" meet with only spaces between.
function M.nested_empty_array(body)
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

-- One event's headers: an object of strings with sane names, none that steers the sink or that
-- the gateway sets; the caller's name and the event's ids added. Returns the headers, or nil,
-- error name, message.
local function checked_headers(ev, i, limits)
  local headers = ev.headers
  if headers == nil then
    headers = {}
    ev.headers = headers
  elseif type(headers) ~= "table" or headers[1] ~= nil then
    return nil, "BAD_EVENTS", "event " .. i .. ": headers must be an object of strings"
  end
  for k, v in pairs(headers) do
    if type(k) ~= "string" or type(v) ~= "string" then
      return nil, "BAD_EVENTS", "event " .. i .. ": header " .. tostring(k) .. " must be a string"
    end
    if k == "" or #k > 256 or k:find("%c") then
      return nil, "BAD_EVENTS", "event " .. i .. ": a header name must be 1-256 characters without control characters"
    end
    if M.RESERVED_HEADERS[k] then
      return nil, "RESERVED_HEADER", "event " .. i .. ": header " .. k .. " is the gateway's or steers the sink, and may not be sent"
    end
  end
  headers.username = limits.user
  if limits.request_id then
    headers.requestId = limits.request_id
    headers.eventId = (limits.id_base or limits.request_id) .. ":" .. i
  end
  return headers
end

-- Bytes an event takes in the sink: its body and every header's name and value.
function M.size(ev)
  local size = #(ev.body or "")
  for k, v in pairs(ev.headers or {}) do size = size + #k + #v end
  return size
end

-- limits: name ("db.table", for messages), user (the token's), max_events (one transaction's),
-- max_event (the largest event the sink can deliver; nil: no bound), request_id (the request's
-- id), id_base (what event ids start with: the sender's Idempotency-Key, else request_id) and
-- contract (the table's compiled event contract, schema.lua; nil: none).
-- Returns count, body to send, events that did not meet the contract (flagged or marked for the
-- quarantine) | nil, error name, message, details.
function M.prepare(body, limits)
  local events = body and cjson.decode(body)
  if type(events) ~= "table" or (body:match("^%s*{")) or M.nested_empty_array(body) then
    return nil, "BAD_EVENTS", SHAPE
  end
  -- One request is one channel transaction: more events than the table's transactionCapacity
  -- (or GATEWAY_MAX_EVENTS) would be refused by Flume after it read them all into its heap.
  if #events > limits.max_events then
    return nil, "TOO_MANY_EVENTS", #events .. " events in one request; at most " .. limits.max_events .. " for " .. limits.name .. ": send smaller batches"
  end
  if #events == 0 then return 0, nil, 0 end
  local contract = limits.contract
  local mark = contract and DRIFT_HEADER[contract.policy]
  local invalid, listed = 0, {}
  for i, ev in ipairs(events) do
    if type(ev) ~= "table" or ev[1] ~= nil then
      return nil, "BAD_EVENTS", "event " .. i .. " must be an object"
    end
    -- Flume would refuse it: refused here, so one sender's bad event never fails a group commit.
    if ev.body ~= nil and type(ev.body) ~= "string" then
      return nil, "BAD_EVENTS", "event " .. i .. ": body must be a string"
    end
    -- The contract sees the headers as the sender sent them, before the gateway adds its own.
    local at, problem
    if contract and (ev.headers == nil or type(ev.headers) == "table") then
      at, problem = schema.check_event(contract, ev)
    end
    local headers, err, message = checked_headers(ev, i, limits)
    if not headers then return nil, err, message end
    if at then
      invalid = invalid + 1
      if #listed < M.MAX_LISTED then listed[#listed + 1] = { event = i, path = at, problem = problem } end
      if mark then headers[mark] = at .. ": " .. problem end
    end
    if limits.max_event then
      local size = M.size(ev)
      if size > limits.max_event then
        return nil, "EVENT_TOO_LARGE", "event " .. i .. " is " .. size .. " bytes (body and headers); " .. limits.name .. "'s sink can never deliver more than " .. limits.max_event .. ": nothing was accepted"
      end
    end
  end
  if invalid > 0 and not mark then
    local first = listed[1]
    return nil, "SCHEMA_MISMATCH",
      invalid .. " of " .. #events .. " events do not meet " .. limits.name .. "'s schema (event " .. first.event .. ": " .. first.path .. " " .. first.problem .. "): nothing was accepted",
      { invalid = listed, count = invalid }
  end
  return #events, cjson.encode(events), invalid
end

return M
