-- Metrics, in a shared dict all workers add to (flume_gateway_metrics), shown as Prometheus text
-- (exposition.lua) on the metrics listener. Tables are labelled only once their route is known (an
-- existing table), so senders cannot make up series: anything else counts as db="", table="".
local exposition = require "flume_gateway.exposition"

local M = {}
local dict = ngx.shared.flume_gateway_metrics
local LATENCY_BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }
M.BATCH_BUCKETS = { 1, 2, 5, 10, 20, 50, 100, 200 }

function M.count(key, by)
  if dict then dict:incr(key, by or 1, 0) end
end

function M.observe(name, buckets, v)
  for _, le in ipairs(buckets) do
    if v <= le then M.count(name .. "_bucket\t" .. le) end
  end
  M.count(name .. "_bucket\t+Inf")
  M.count(name .. "_sum", v)
  M.count(name .. "_count")
end

-- log_by_lua, every request to /ingest: its answer by table and status, and how long it took.
function M.log()
  local db = ngx.var.ingest_db
  if not db or db == "" then return end
  local t = ngx.ctx.metric_table or "\t"
  M.count("requests\t" .. t .. "\t" .. ngx.status)
  M.observe("request_duration_seconds", LATENCY_BUCKETS, tonumber(ngx.var.request_time) or 0)
  local up = tonumber(ngx.var.upstream_response_time)
  if up then M.observe("upstream_duration_seconds", LATENCY_BUCKETS, up) end
end

-- GET /metrics on the metrics listener; `now`: gauges read at this moment, by name.
function M.serve(now)
  local counted = {}
  for k, v in pairs(now or {}) do counted[k] = v end
  for _, key in ipairs(dict and dict:get_keys(0) or {}) do counted[key] = dict:get(key) end
  ngx.header["Content-Type"] = "text/plain; version=0.0.4"
  ngx.print(exposition.render(counted))
end

return M
