-- The gateway's settings, one table every module reads: filled once per worker by
-- flume_gateway.init_worker from what nginx.conf passes (rendered by src/gateway/render.ts).
-- Fields: redis_host redis_port redis_username redis_password redis_tls redis_server_name redis_db
-- prefix cache_ttl stale_seconds rate_limit bad_token_limit max_events batch_window token_hash_key
-- trace_seconds (0: no traces) trace_per_worker.
local M = {}

function M.fill(c)
  for k, v in pairs(c) do M[k] = v end
end

return M
