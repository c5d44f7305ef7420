-- A table's event contract (its spec's `schema`, src/resources/event-schema.ts, which checked it
-- before it was stored), compiled once per worker into checks. Pure: no ngx.
--   contract(text) -> { policy, body = check|nil, headers = check|nil } | nil, error   (cached)
--   check_event(c, ev) -> nil (meets it) | field path, problem
-- A check(value, path) answers nil or the first field path that fails and why; paths read
-- body.user.id, body.items[0] (0-based, as in JavaScript and jq), headers.source.
local cjson = require "cjson.safe"

local M = {}

-- cjson reads [] and {} alike (an empty table): an empty one is taken for either.
local function kind(v)
  local t = type(v)
  if t == "table" then
    if next(v) == nil then return "empty" end
    return v[1] ~= nil and "array" or "object"
  end
  if v == cjson.null then return "null" end
  return t -- string, number, boolean
end

local function is_integer(v)
  return v == v and v ~= math.huge and v ~= -math.huge and math.floor(v) == v
end

-- Code points, as JSON Schema counts a string's length (the bytes that do not continue one).
local function length(s)
  local _, n = s:gsub("[^\128-\191]", "")
  return n
end

local function shown(v)
  local text = cjson.encode(v) or tostring(v)
  if #text > 40 then text = text:sub(1, 37) .. "..." end
  return text
end

local function child(path, key)
  if key:find("^[%a_][%w_]*$") then return path .. "." .. key end
  return path .. "[" .. cjson.encode(key) .. "]"
end

local compile

local function type_check(node)
  local types = type(node.type) == "table" and node.type or { node.type }
  local set = {}
  for _, t in ipairs(types) do set[t] = true end
  local want = table.concat(types, " or ")
  return function(v, path)
    local k = kind(v)
    if set[k] then return end
    if k == "number" and set.integer and is_integer(v) then return end
    if k == "empty" and (set.object or set.array) then return end
    if k == "empty" then k = "empty object" end
    return path, "expected " .. want .. ", got " .. (k == "number" and "number " .. shown(v) or k)
  end
end

local function value_checks(node, add)
  if node.enum ~= nil then
    local allowed = node.enum
    add(function(v, path)
      for _, a in ipairs(allowed) do
        if v == a then return end
      end
      return path, shown(v) .. " is not one of " .. shown(allowed)
    end)
  end
  if node.const ~= nil then
    local c = node.const
    add(function(v, path)
      if v ~= c then return path, "must be " .. shown(c) .. ", got " .. shown(v) end
    end)
  end
  local bounds = {
    { "minimum", function(v, b) return v >= b end, "at least" },
    { "maximum", function(v, b) return v <= b end, "at most" },
    { "exclusiveMinimum", function(v, b) return v > b end, "above" },
    { "exclusiveMaximum", function(v, b) return v < b end, "below" },
  }
  for _, bound in ipairs(bounds) do
    local b = node[bound[1]]
    if b ~= nil then
      local ok, words = bound[2], bound[3]
      add(function(v, path)
        if type(v) == "number" and not ok(v, b) then return path, "must be " .. words .. " " .. shown(b) .. ", got " .. shown(v) end
      end)
    end
  end
  if node.minLength or node.maxLength then
    local lo, hi = node.minLength, node.maxLength
    add(function(v, path)
      if type(v) ~= "string" then return end
      local n = length(v)
      if lo and n < lo then return path, "must be at least " .. lo .. " characters, got " .. n end
      if hi and n > hi then return path, "must be at most " .. hi .. " characters, got " .. n end
    end)
  end
end

local function array_checks(node, add, depth)
  local items = node.items and compile(node.items, depth + 1)
  local lo, hi = node.minItems, node.maxItems
  if not (items or lo or hi) then return end
  add(function(v, path)
    local k = kind(v)
    if k ~= "array" and k ~= "empty" then return end
    local n = #v
    if lo and n < lo then return path, "must have at least " .. lo .. " items, got " .. n end
    if hi and n > hi then return path, "must have at most " .. hi .. " items, got " .. n end
    if items then
      for i = 1, n do
        local p, problem = items(v[i], path .. "[" .. (i - 1) .. "]")
        if p then return p, problem end
      end
    end
  end)
end

local function object_checks(node, add, depth)
  local required = node.required
  local props, known = {}, {}
  for name, sub in pairs(node.properties or {}) do
    props[#props + 1] = { name = name, check = compile(sub, depth + 1) }
    known[name] = true
  end
  -- The same event always fails at the same path: properties in name order.
  table.sort(props, function(a, b) return a.name < b.name end)
  local closed = node.additionalProperties == false
  if not (required or #props > 0 or closed) then return end
  add(function(v, path)
    local k = kind(v)
    if k ~= "object" and k ~= "empty" then return end
    for _, name in ipairs(required or {}) do
      if v[name] == nil then return child(path, name), "is required" end
    end
    for _, p in ipairs(props) do
      local value = v[p.name]
      if value ~= nil then
        local at, problem = p.check(value, child(path, p.name))
        if at then return at, problem end
      end
    end
    if closed then
      local extra
      for name in pairs(v) do
        if not known[name] and (extra == nil or tostring(name) < extra) then extra = tostring(name) end
      end
      if extra then return child(path, extra), "is not allowed (additionalProperties is false)" end
    end
  end)
end

-- The API lets no contract nest deeper than 10 (src/resources/event-schema.ts); a route in Redis
-- that does is not the API's, and is not compiled.
local MAX_DEPTH = 32

-- One schema node -> check(value, path). Raises an error for what is not a schema.
compile = function(node, depth)
  depth = depth or 1
  if type(node) ~= "table" then error("a schema must be an object", 0) end
  if depth > MAX_DEPTH then error("nested deeper than " .. MAX_DEPTH, 0) end
  for _, k in ipairs({ "enum", "required", "properties" }) do
    if node[k] ~= nil and type(node[k]) ~= "table" then error(k .. " must be an array or object", 0) end
  end
  for _, k in ipairs({ "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems" }) do
    if node[k] ~= nil and type(node[k]) ~= "number" then error(k .. " must be a number", 0) end
  end
  if node.type ~= nil and type(node.type) ~= "string" and type(node.type) ~= "table" then error("type must be a name or a list", 0) end
  local checks = {}
  local function add(f) checks[#checks + 1] = f end
  if node.type ~= nil then add(type_check(node)) end
  value_checks(node, add)
  array_checks(node, add, depth)
  object_checks(node, add, depth)
  local n = #checks
  return function(v, path)
    for i = 1, n do
      local at, problem = checks[i](v, path)
      if at then return at, problem end
    end
  end
end

-- Compiled contracts by their text, per worker; a handful of tables change them, rarely.
local compiled, held = {}, 0
local MAX_HELD = 256

function M.contract(text)
  local c = compiled[text]
  if c then return c end
  local def = cjson.decode(text)
  if type(def) ~= "table" then return nil, "the route's schema is not JSON" end
  local ok, body, headers = pcall(function()
    return def.body ~= nil and compile(def.body) or nil, def.headers ~= nil and compile(def.headers) or nil
  end)
  if not ok then return nil, body end
  local policy = def.policy or "reject"
  if policy ~= "reject" and policy ~= "flag" and policy ~= "quarantine" then return nil, "unknown policy" end
  c = { policy = policy, body = body, headers = headers }
  if held >= MAX_HELD then compiled, held = {}, 0 end
  compiled[text] = c
  held = held + 1
  return c
end

-- An event (headers as the sender sent them, body a string or nil) against a contract.
function M.check_event(c, ev)
  if c.headers then
    local at, problem = c.headers(ev.headers or {}, "headers")
    if at then return at, problem end
  end
  if c.body then
    local text = ev.body or ""
    local value = cjson.decode(text) -- JSON's null is cjson.null: nil only when it is not JSON
    if value == nil then return "body", "is not JSON" end
    return c.body(value, "body")
  end
end

M.compile = compile
return M
