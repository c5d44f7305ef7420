-- One cache entry's text: "<generation>|<fresh until>|<value>". Pure: no ngx.
-- A fresh entry answers without Redis; one past its freshness, or from an older generation (the
-- invalidation subscription broke, so messages may have been missed), must be looked up again.
local M = {}

function M.encode(generation, fresh_until, value)
  return generation .. "|" .. fresh_until .. "|" .. value
end

-- -> value, fresh; nil when the text is no entry.
function M.decode(text, generation, now)
  if not text then return nil end
  local gen, fresh_until, value = text:match("^(%d+)|([^|]+)|(.*)$")
  if not gen then return nil end
  return value, tonumber(gen) == generation and (tonumber(fresh_until) or 0) > now
end

return M
