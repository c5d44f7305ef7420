-- The body checks of templates/gateway/lua/flume_gateway/events.lua.
local cjson = require "cjson"
local events = require "flume_gateway.events"

local limits = function(extra)
  local l = { name = "shop.orders", user = "alice", max_events = 10 }
  for k, v in pairs(extra or {}) do l[k] = v end
  return l
end

describe("nested_empty_array", function()
  it("finds an empty array where an event or its headers belong", function()
    assert.is_true(events.nested_empty_array('[[]]'))
    assert.is_true(events.nested_empty_array('[{"headers":[ ],"body":"x"}]'))
  end)
  it("passes empty brackets inside strings, and a plain empty array", function()
    assert.is_false(events.nested_empty_array('[{"body":"[]"}]'))
    assert.is_false(events.nested_empty_array('[{"body":"a \\" [] b"}]'))
    assert.is_false(events.nested_empty_array('[]'))
  end)
end)

describe("prepare", function()
  it("adds the caller's name to every event and sends the events again", function()
    local n, body = events.prepare('[{"body":"a"},{"headers":{"h":"v"},"body":"b"}]', limits())
    assert.are.equal(2, n)
    local sent = cjson.decode(body)
    assert.are.equal("alice", sent[1].headers.username)
    assert.are.equal("alice", sent[2].headers.username)
    assert.are.equal("v", sent[2].headers.h)
  end)

  it("overrides a username the sender sets", function()
    local _, body = events.prepare('[{"headers":{"username":"mallory"},"body":"a"}]', limits())
    assert.are.equal("alice", cjson.decode(body)[1].headers.username)
  end)

  it("gives every event its ids: the request's, and the Idempotency-Key's (else the request's) with its place", function()
    local _, body = events.prepare('[{"body":"a"},{"body":"b"}]', limits({ request_id = "r-1", id_base = "k-9" }))
    local sent = cjson.decode(body)
    assert.are.same({ "r-1", "k-9:1" }, { sent[1].headers.requestId, sent[1].headers.eventId })
    assert.are.same({ "r-1", "k-9:2" }, { sent[2].headers.requestId, sent[2].headers.eventId })
    _, body = events.prepare('[{"body":"a"}]', limits({ request_id = "r-2" }))
    assert.are.equal("r-2:1", cjson.decode(body)[1].headers.eventId)
  end)

  it("refuses ids a sender sets itself", function()
    for _, h in ipairs({ "eventId", "requestId" }) do
      local n, err = events.prepare('[{"headers":{"' .. h .. '":"mine"},"body":"a"}]', limits({ request_id = "r" }))
      assert.is_nil(n)
      assert.are.equal("RESERVED_HEADER", err)
    end
  end)

  it("leaves an empty array as it came", function()
    assert.are.same({ 0, nil, 0 }, { events.prepare("[]", limits()) })
  end)

  local refused = {
    { "no body", nil, "BAD_EVENTS" },
    { "not JSON", "[{", "BAD_EVENTS" },
    { "an object", '{"body":"a"}', "BAD_EVENTS" },
    { "a number", '42', "BAD_EVENTS" },
    { "NaN", '[{"body":"a","n":NaN}]', "BAD_EVENTS" },
    { "hexadecimal", '[{"body":"a","n":0x10}]', "BAD_EVENTS" },
    { "an empty nested array", '[[]]', "BAD_EVENTS" },
    { "an event that is a string", '["a"]', "BAD_EVENTS" },
    { "an event that is an array", '[["a"]]', "BAD_EVENTS" },
    { "a body that is a number", '[{"body":1}]', "BAD_EVENTS" },
    { "headers that are an array", '[{"headers":["a"],"body":"a"}]', "BAD_EVENTS" },
    { "a header that is a number", '[{"headers":{"a":1},"body":"a"}]', "BAD_EVENTS" },
    { "an empty header name", '[{"headers":{"":"v"},"body":"a"}]', "BAD_EVENTS" },
    { "a header name with a newline", '[{"headers":{"a\\nb":"v"},"body":"a"}]', "BAD_EVENTS" },
    { "a header name of 257 characters", '[{"headers":{"' .. string.rep("h", 257) .. '":"v"},"body":"a"}]', "BAD_EVENTS" },
    { "a topic header", '[{"headers":{"topic":"other"},"body":"a"}]', "RESERVED_HEADER" },
    { "a key header", '[{"headers":{"key":"k"},"body":"a"}]', "RESERVED_HEADER" },
  }
  for _, case in ipairs(refused) do
    it("refuses " .. case[1] .. " with " .. case[3], function()
      local n, err, message = events.prepare(case[2], limits())
      assert.is_nil(n)
      assert.are.equal(case[3], err)
      assert.is_string(message)
    end)
  end

  it("says which event is wrong", function()
    local _, _, message = events.prepare('[{"body":"a"},{"body":2}]', limits())
    assert.are.equal("event 2: body must be a string", message)
  end)

  it("refuses more events than one transaction takes, naming the table", function()
    local n, err, message = events.prepare('[{},{},{}]', limits({ max_events = 2 }))
    assert.is_nil(n)
    assert.are.equal("TOO_MANY_EVENTS", err)
    assert.matches("at most 2 for shop.orders", message, 1, true)
  end)

  it("counts body and header bytes, with the caller's name, against the sink's largest event", function()
    -- body 4 + "h" "v" 2 + "username" "alice" 13 = 19 bytes
    local body = '[{"headers":{"h":"v"},"body":"abcd"}]'
    assert.are.equal(1, (events.prepare(body, limits({ max_event = 19 }))))
    local n, err, message = events.prepare(body, limits({ max_event = 18 }))
    assert.is_nil(n)
    assert.are.equal("EVENT_TOO_LARGE", err)
    assert.matches("event 1 is 19 bytes", message, 1, true)
  end)
end)
