-- Many hosts: the table runs on another host. Its gateway takes the request (it checks the
-- token again and commits into its own loopback agent); its answer, streamed back, is this
-- answer. X-Flume-Hop counts the gateways a request went through: one more is allowed while a
-- table moves (this host still routes to the old one, which already routes to the new one),
-- never a third, so two gateways that each route to the other cannot pass a request around.
local M = {}
M.MAX_HOPS = 2

function M.so_far()
  local h = ngx.var.http_x_flume_hop
  if not h then return 0 end
  return tonumber(h) or M.MAX_HOPS
end

function M.go(host, port, db, tbl)
  return ngx.exec("/_flume_hop", { h = host, p = port, db = db, tbl = tbl, n = M.so_far() + 1 })
end

-- balancer_by_lua of the flume_hop upstream: the host the request goes to.
function M.balance()
  local balancer = require "ngx.balancer"
  local ok, err = balancer.set_current_peer(ngx.var.hop_host, tonumber(ngx.var.hop_port))
  if not ok then ngx.log(ngx.ERR, "set_current_peer (hop): ", err) end
  balancer.set_more_tries(0)
end

return M
