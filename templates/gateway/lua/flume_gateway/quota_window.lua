-- The arithmetic of a db's quota and fair share (tenants.lua counts; this decides). Pure: no ngx.
local math_floor, math_ceil, math_max = math.floor, math.ceil, math.max

local M = {}

-- "eps=5000 bps=1048576 epd=1000000" -> { eps = 5000, bps = 1048576, epd = 1000000 }; "" or junk -> nil.
function M.parse(value)
  if not value or value == "" then return nil end
  local q, any = {}, false
  for k, v in value:gmatch("(%a+)=(%d+)") do
    if k == "eps" or k == "bps" or k == "epd" or k == "bpd" then
      q[k] = tonumber(v)
      any = true
    end
  end
  return any and q or nil
end

-- A sliding second: what the last second and this one admitted, the last weighted by how much of
-- it still falls within one second of now (frac: how far into this second now is).
function M.estimate(prev, cur, frac)
  return prev * (1 - frac) + cur
end

-- Seconds until `n` more fit under `limit` if nothing else is admitted meanwhile (the window
-- slides past the last second, then past this one); at least 1, as Retry-After counts.
function M.wait_for(prev, cur, frac, n, limit)
  local room = limit - n
  local t
  if cur <= room and prev > 0 then
    t = (1 - frac) - (room - cur) / prev
  elseif cur <= room then
    t = 0
  else
    t = (1 - frac) + 1 - room / cur
  end
  return math_max(1, math_ceil(t - 1e-9))
end

-- Seconds until the next UTC day.
function M.until_tomorrow(now)
  return math_max(1, math_ceil(86400 - now % 86400))
end

-- The share of in-flight requests each of `active` dbs has while `limit` are in flight.
function M.share(limit, active)
  return math_max(1, math_floor(limit / math_max(1, active)))
end

-- RFC-draft RateLimit-Policy / RateLimit (draft-ietf-httpapi-ratelimit-headers): the policy that
-- refused, its quota and window, and what remains (0) with the seconds until it resets.
function M.headers(name, quota, window, reset, unit)
  local policy = string.format('"%s";q=%d;w=%d', name, quota, window)
  if unit then policy = policy .. ';qu="' .. unit .. '"' end
  return policy, string.format('"%s";r=0;t=%d', name, reset)
end

return M
