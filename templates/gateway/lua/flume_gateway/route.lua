-- A table's route, as Redis (or the cache) holds it, read into what the gateway does with it.
-- Pure: no ngx. The value's format is generated from src/agents/route-table.ts (flume_routes).
local ROUTE = require "flume_routes"

local M = {}

-- route: the value, or "none" (no such table) / "down" (a table without a running agent).
-- Returns { kind = "none"|"paused"|"down"|"fenced"|"node_down"|"via"|"agent"|"unreadable", ... }:
-- via: host, port (another host's gateway); agent: host, port, cap (events per transaction,
-- nil when the route names none), max_event (bytes, nil: no bound), key (the agent's intake
-- key, nil: none), metrics_port (where the
-- channel's counts are read; nil in a route written before it was added), ack ("sink" when the
-- table answers its senders on the sink unless they say otherwise, else nil), schema (the table's
-- event contract as JSON text, nil: none).
function M.read(route)
  if route == "none" then return { kind = "none" } end
  -- The table's event contract, where it has one, follows the route's line (schema.lua reads it).
  local cut = route:find(ROUTE.schemaAfter, 1, true)
  local contract
  if cut then route, contract = route:sub(1, cut - 1), route:sub(cut + 1) end
  if route == ROUTE.paused then return { kind = "paused" } end
  if route == "down" then return { kind = "down" } end
  if route == ROUTE.fenced then return { kind = "fenced" } end
  if route == ROUTE.nodeDown then return { kind = "node_down" } end
  local via_host, via_port = route:match(ROUTE.via)
  if via_host then return { kind = "via", host = via_host, port = tonumber(via_port) } end
  local host, port, rest = route:match(ROUTE.address)
  local cap = rest and rest:match(ROUTE.capacity)
  if not host or (rest ~= "" and not cap) then return { kind = "unreadable" } end
  return {
    kind = "agent",
    host = host,
    port = tonumber(port),
    cap = tonumber(cap),
    -- The largest event the table's sink can ever deliver (the Kafka producer's request size).
    max_event = rest and tonumber(rest:match(ROUTE.maxEvent)),
    metrics_port = rest and tonumber(rest:match(ROUTE.metricsPort)),
    -- The key the agent's source asks for (X-Flume-Intake-Key; nil in a route written before it).
    key = rest and rest:match(ROUTE.intakeKey),
    -- Senders that do not say are answered once the sink has their events (the table's spec).
    ack = rest and (rest .. " "):find(ROUTE.ackSink, 1, true) and "sink" or nil,
    -- The event contract's JSON text (nil: none).
    schema = contract,
  }
end

return M
