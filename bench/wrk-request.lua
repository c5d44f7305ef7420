-- wrk's request for bench/datapath.ts: a POST of BENCH_BODY (Flume's JSON events), or a GET
-- when BENCH_BODY is empty, with BENCH_AUTH, when set, as its Authorization header, and
-- BENCH_INTAKE_KEY, when set, as X-Flume-Intake-Key. Read from the
-- environment: the script is fixed, nothing is written into it. done() prints one JSON line.
local body = os.getenv("BENCH_BODY") or ""
if body ~= "" then
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
-- Straight to the agent: its intake key, as the gateway sends it.
local key = os.getenv("BENCH_INTAKE_KEY")
if key and key ~= "" then wrk.headers["X-Flume-Intake-Key"] = key end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"durationUs":%d,"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50Us":%d,"p99Us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
