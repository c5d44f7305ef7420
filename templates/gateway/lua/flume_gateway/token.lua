-- A caller's token, as far as it can be judged without Redis. Pure: no ngx.
local M = {}

-- The token from an Authorization header ("Bearer <token>"), or nil.
function M.bearer(authorization)
  return (authorization or ""):match("^[Bb]earer%s+(%S+)%s*$")
end

-- A database or table name the API could have created (src/resources: lower case, digits, _).
function M.valid_table(db, tbl)
  return db:match("^[a-z0-9][a-z0-9_]*$") ~= nil and tbl:match("^[a-z0-9][a-z0-9_]*$") ~= nil and #db <= 48 and #tbl <= 48
end

-- The cached record "user\tscope\texp\tgraceUntil" -> user, scope, exp, grace (numbers, 0: none).
function M.parse(record)
  local user, scope, exp, grace = record:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$")
  return user, scope, tonumber(exp) or 0, tonumber(grace) or 0
end

-- Past its expiry, or past the grace a rotation left it.
function M.expired(exp, grace, now)
  return (exp > 0 and now >= exp) or (grace > 0 and now >= grace)
end

-- A scope is "*" or words, each a database ("db") or one table ("db.table").
function M.in_scope(scope, db, tbl)
  if scope == "*" then return true end
  for s in (scope or ""):gmatch("%S+") do
    if s == db or s == db .. "." .. tbl then return true end
  end
  return false
end

return M
