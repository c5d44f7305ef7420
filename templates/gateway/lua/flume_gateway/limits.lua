-- The gateway's own limits, counted across workers in the shared dicts, per second.
local cache = require "flume_gateway.cache"
local conf = require "flume_gateway.settings"

local M = {}

-- Unknown tokens per client address and second: past conf.bad_token_limit only tokens the
-- gateway holds as valid get through until the next second.
local function address_key(ip) return "a:" .. ip .. ":" .. ngx.time() end

function M.address_blocked(ip)
  local n = cache.bad:get(address_key(ip))
  return n and n >= conf.bad_token_limit
end

function M.count_unknown(ip)
  cache.bad:incr(address_key(ip), 1, 0, 2)
end

-- Per token, per second: more than conf.rate_limit requests answer 429. Every request with a
-- token counts, also those that arrive before the gateway knows the token (a new token's first
-- burst); only a token found valid is judged by it.
function M.over_rate(hash)
  if conf.rate_limit <= 0 then return false end
  local n = cache.dict:incr("l:" .. hash .. ":" .. ngx.time(), 1, 0, 2)
  return n ~= nil and n > conf.rate_limit
end

return M
