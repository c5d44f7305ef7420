-- The gateway's counters as Prometheus text. Pure: no ngx.
-- Keys as counted (metrics.lua): "<name>" or "<name>\t<labels...>": requests\t<db>\t<table>\t<status>,
-- schema_invalid\t<db>\t<table>\t<policy>, db_events\t<db>, db_bytes\t<db>, db_refused\t<db>\t<reason>,
-- <histogram>_bucket\t<le>, <histogram>_sum, <histogram>_count.
local M = {}

M.HELP = {
  requests = { "flume_gateway_requests_total", "counter", "Ingest requests answered, by table and HTTP status (db and table empty: not an existing table)." },
  request_duration_seconds = { "flume_gateway_request_duration_seconds", "histogram", "Ingest request time, as nginx measures it." },
  upstream_duration_seconds = { "flume_gateway_upstream_duration_seconds", "histogram", "Time the agent took to answer a proxied request." },
  batch_requests = { "flume_gateway_batch_requests", "histogram", "Requests per group-committed batch sent to an agent." },
  redis_errors = { "flume_gateway_redis_errors_total", "counter", "Lookups Redis did not answer." },
  stale_answers = { "flume_gateway_stale_answers_total", "counter", "Requests answered from a stale cache entry while Redis was away or restoring." },
  schema_invalid = { "flume_gateway_schema_invalid_events_total", "counter", "Events that did not meet their table's schema, by table and the policy applied (reject, flag, quarantine)." },
  db_events = { "flume_gateway_db_events_total", "counter", "Events accepted (200 or 202), by db: the db's use of this gateway." },
  db_bytes = { "flume_gateway_db_bytes_total", "counter", "Request body bytes accepted (200 or 202), by db." },
  db_refused = { "flume_gateway_db_refused_total", "counter", "Requests refused for the db's sake, by db and reason: quota (over its quota), share (over its fair share while the gateway was saturated)." },
  in_flight = { "flume_gateway_in_flight_requests", "gauge", "Ingest requests in flight now, every worker's (the fair share's measure of saturation)." },
  traces_dropped = { "flume_gateway_traces_dropped_total", "counter", "Committed requests not traced: over GATEWAY_TRACE_PER_SECOND, or Redis did not take the traces." },
}

-- counted: key -> value. Returns the text (every family with HELP and TYPE, sorted lines).
function M.render(counted)
  local by_name = {}
  for key, v in pairs(counted) do
    local name, rest = key:match("^([%w_]+)\t?(.*)$")
    local base = name and name:gsub("_bucket$", ""):gsub("_sum$", ""):gsub("_count$", "")
    local h = base and M.HELP[base]
    if h then
      by_name[base] = by_name[base] or {}
      local labels = ""
      if base == "requests" then
        local db, tbl, status = rest:match("^([^\t]*)\t([^\t]*)\t(%d+)$")
        labels = string.format('{db="%s",table="%s",status="%s"}', db or "", tbl or "", status or "")
      elseif base == "db_events" or base == "db_bytes" then
        labels = string.format('{db="%s"}', rest:match("^([^\t]*)") or "")
      elseif base == "db_refused" then
        local db, reason = rest:match("^([^\t]*)\t(%a+)$")
        labels = string.format('{db="%s",reason="%s"}', db or "", reason or "")
      elseif base == "schema_invalid" then
        local db, tbl, policy = rest:match("^([^\t]*)\t([^\t]*)\t(%a+)$")
        labels = string.format('{db="%s",table="%s",policy="%s"}', db or "", tbl or "", policy or "")
      elseif name:find("_bucket$") then
        labels = string.format('{le="%s"}', rest)
      end
      local suffix = name:match("_bucket$") and "_bucket" or name:match("_sum$") and "_sum" or name:match("_count$") and "_count" or ""
      table.insert(by_name[base], h[1] .. suffix .. labels .. " " .. string.format("%.10g", v))
    end
  end
  local families = {}
  for base in pairs(M.HELP) do families[#families + 1] = base end
  table.sort(families)
  local out = {}
  for _, base in ipairs(families) do
    local h = M.HELP[base]
    table.insert(out, "# HELP " .. h[1] .. " " .. h[3])
    table.insert(out, "# TYPE " .. h[1] .. " " .. h[2])
    local lines = by_name[base] or {}
    if #lines == 0 and h[2] == "counter" and base ~= "requests" then lines = { h[1] .. " 0" } end
    table.sort(lines)
    for _, l in ipairs(lines) do table.insert(out, l) end
  end
  return table.concat(out, "\n") .. "\n"
end

return M
