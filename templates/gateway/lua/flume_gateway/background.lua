-- What each worker does besides answering: the invalidation subscription and the master watch.
local ffi = require "ffi"
local cache = require "flume_gateway.cache"
local redis_conn = require "flume_gateway.redis_conn"
local conf = require "flume_gateway.settings"

local M = {}

-- Invalidation: one worker subscribes to <p>invalidate and drops the named cache entries.
-- If the subscription breaks, a message may have been missed: the generation moves on, so every
-- entry cached so far is looked up again before it is trusted (cache_entry.lua).
local function subscribe(premature)
  if premature then return end
  local red = redis_conn.connect()
  local channel = conf.prefix .. "invalidate"
  if red and red:subscribe(channel) then
    red:set_timeout(5000)
    while not ngx.worker.exiting() do
      local msg, err = red:read_reply()
      if msg and msg[1] == "message" then
        local kind, rest = msg[3]:match("^(%a+):(.+)$")
        cache.invalidate(kind, rest)
      elseif err and err ~= "timeout" then
        break
      end
    end
    red:close()
  end
  cache.next_generation()
  if not ngx.worker.exiting() then ngx.timer.at(1, subscribe) end
end

-- A worker whose master died (kill -9, the OOM killer) would hold the port forever with the
-- config of that moment, and no new master could bind it: every second each worker compares its
-- parent with the master it started under, and once they differ it quits gracefully (SIGQUIT to
-- itself: it stops listening, finishes its requests and exits).
pcall(ffi.cdef, "int getppid(void); int kill(int pid, int sig);")
local SIGQUIT = 3

local function watch_master(premature, master)
  if premature then return end
  if ffi.C.getppid() ~= master then
    ngx.log(ngx.WARN, "the gateway's master (pid ", master, ") is gone: this worker stops")
    ffi.C.kill(ngx.worker.pid(), SIGQUIT)
  end
end

function M.start()
  if ngx.worker.id() == 0 and conf.cache_ttl + conf.stale_seconds > 0 then ngx.timer.at(0, subscribe) end
  ngx.timer.every(1, watch_master, ffi.C.getppid())
end

return M
