-- A connection to the service's Redis from the pool: TLS, sign-in and database on first use.
-- Runs on OpenResty (resty.redis) and on Debian's nginx (lua-nginx-redis installs it as
-- nginx.redis; that library is 0.27: set_timeout only, no set_timeouts).
local ok_redis, redis = pcall(require, "resty.redis")
if not ok_redis then redis = require "nginx.redis" end
local conf = require "flume_gateway.settings"

local M = {}

-- -> a connection, or nil, err. Give it back with M.release (or close it after an error).
function M.connect()
  local red = redis:new()
  red:set_timeout(500)
  local ok, err = red:connect(conf.redis_host, conf.redis_port)
  if not ok then return nil, err end
  if red:get_reused_times() == 0 then
    -- rediss://: TLS, the certificate verified (lua_ssl_trusted_certificate) for the URL's host.
    if conf.redis_tls then
      -- In a pcall: some lua-resty-core versions assert (instead of answering nil, err) when the
      -- certificate fails verification within the first call. Either way: no Redis, no talk.
      local sock = rawget(red, "_sock")
      local called, session, err3 = pcall(sock.sslhandshake, sock, nil, conf.redis_server_name, true)
      if not called or not session then
        pcall(sock.close, sock)
        return nil, "TLS with Redis: " .. tostring(called and err3 or session)
      end
    end
    if conf.redis_password ~= "" then
      local ok2, err2
      -- A Redis ACL user (redis://user:password@...), or the default user.
      if conf.redis_username ~= "" then
        ok2, err2 = red:auth(conf.redis_username, conf.redis_password)
      else
        ok2, err2 = red:auth(conf.redis_password)
      end
      if not ok2 then
        red:close()
        return nil, err2
      end
    end
    if conf.redis_db ~= 0 then red:select(conf.redis_db) end
  end
  return red
end

function M.release(red)
  red:set_keepalive(60000, 100)
end

-- The caller's token, route, markers and its db's quota in one round trip (lookup_script.lua), or nil, err.
local LOOKUP = require "flume_gateway.lookup_script"
local LOOKUP_SHA -- set by SCRIPT LOAD on first use

function M.lookup(hash, db, tbl)
  local red, err = M.connect()
  if not red then return nil, err end
  local p = conf.prefix
  local k1, k2, k3, k4, k5 = p .. "token:" .. hash, p .. "route:" .. db .. ":" .. tbl, p .. "tables", p .. "epoch", p .. "quotas"
  local res
  if LOOKUP_SHA then
    res, err = red:evalsha(LOOKUP_SHA, 5, k1, k2, k3, k4, k5, db .. ":" .. tbl, ngx.time(), db)
  end
  if not res then
    if not LOOKUP_SHA or (err and err:find("NOSCRIPT", 1, true)) then
      LOOKUP_SHA = red:script("load", LOOKUP)
      res, err = red:eval(LOOKUP, 5, k1, k2, k3, k4, k5, db .. ":" .. tbl, ngx.time(), db)
    end
  end
  if not res then
    red:close()
    return nil, err
  end
  M.release(red)
  return res
end

return M
