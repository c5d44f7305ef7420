-- A table's event contract, templates/gateway/lua/flume_gateway/schema.lua, and how
-- events.lua applies its policies.
local cjson = require "cjson"
local schema = require "flume_gateway.schema"
local events = require "flume_gateway.events"

local ORDER = cjson.encode({
  policy = "reject",
  body = {
    type = "object",
    required = { "id", "amount" },
    additionalProperties = false,
    properties = {
      id = { type = "integer", minimum = 1 },
      amount = { type = "number", exclusiveMinimum = 0 },
      currency = { enum = { "EUR", "USD" } },
      note = { type = { "string", "null" }, maxLength = 3 },
      items = { type = "array", maxItems = 2, items = { type = "object", required = { "sku" }, properties = { sku = { type = "string", minLength = 2 } } } },
    },
  },
  headers = { type = "object", properties = { source = { const = "pos" } } },
})

local function verdict(text, ev)
  local c = assert(schema.contract(text))
  return schema.check_event(c, ev)
end

describe("schema.check_event", function()
  it("passes an event that meets the contract", function()
    assert.is_nil(verdict(ORDER, { body = '{"id":7,"amount":2.5,"currency":"EUR","note":null,"items":[{"sku":"ab"}]}', headers = { source = "pos" } }))
    assert.is_nil(verdict(ORDER, { body = '{"id":7,"amount":1}' }))
  end)

  it("names the field path and the problem of each way to fail", function()
    local cases = {
      { '{"amount":1}', "body.id", "is required" },
      { '{"id":"7","amount":1}', "body.id", 'expected integer, got string' },
      { '{"id":7.5,"amount":1}', "body.id", "expected integer, got number 7.5" },
      { '{"id":0,"amount":1}', "body.id", "must be at least 1, got 0" },
      { '{"id":1,"amount":0}', "body.amount", "must be above 0, got 0" },
      { '{"id":1,"amount":1,"currency":"GBP"}', "body.currency", '"GBP" is not one of ["EUR","USD"]' },
      { '{"id":1,"amount":1,"note":"long"}', "body.note", "must be at most 3 characters, got 4" },
      { '{"id":1,"amount":1,"items":[{"sku":"ab"},{"sku":"c"}]}', "body.items[1].sku", "must be at least 2 characters, got 1" },
      { '{"id":1,"amount":1,"items":[{},{},{}]}', "body.items", "must have at most 2 items, got 3" },
      { '{"id":1,"amount":1,"extra":true}', "body.extra", "is not allowed (additionalProperties is false)" },
      { '{"id":1,"amount":1,"a b":1}', 'body["a b"]', "is not allowed (additionalProperties is false)" },
      { '[1,2]', "body", "expected object, got array" },
      { 'not json', "body", "is not JSON" },
    }
    for _, c in ipairs(cases) do
      local at, problem = verdict(ORDER, { body = c[1] })
      assert.are.equal(c[2], at, c[1])
      assert.are.equal(c[3], problem, c[1])
    end
    local at, problem = verdict(ORDER, { body = '{"id":1,"amount":1}', headers = { source = "web" } })
    assert.are.equal("headers.source", at)
    assert.are.equal('must be "pos", got "web"', problem)
  end)

  it("counts a string's length in characters, not bytes", function()
    assert.is_nil(verdict(ORDER, { body = '{"id":1,"amount":1,"note":"äöü"}' }))
  end)

  it("takes an empty JSON array or object for either (cjson cannot tell them apart)", function()
    local c = assert(schema.contract(cjson.encode({ body = { type = "object", properties = { tags = { type = "array" } } } })))
    assert.is_nil(schema.check_event(c, { body = '{"tags":[]}' }))
    assert.is_nil(schema.check_event(c, { body = '{}' }))
  end)

  it("does not compile what the API would never have written", function()
    local deep = { type = "object" }
    local at = deep
    for _ = 1, 40 do
      at.properties = { x = { type = "object" } }
      at = at.properties.x
    end
    local c, err = schema.contract(cjson.encode({ body = deep }))
    assert.is_nil(c)
    assert.matches("deeper than", err)
    assert.is_nil((schema.contract('{"body":{"properties":{"x":7}}}')))
    assert.is_nil((schema.contract('{"policy":"shrug","body":{}}')))
    assert.is_nil((schema.contract('not json')))
  end)

  it("compiles a contract once per text", function()
    assert.are.equal(schema.contract(ORDER), schema.contract(ORDER))
  end)
end)

describe("events.prepare with a contract", function()
  local function limits(policy)
    local def = cjson.decode(ORDER)
    def.policy = policy
    return { name = "shop.orders", user = "alice", max_events = 10, contract = assert(schema.contract(cjson.encode(def))) }
  end
  local body = cjson.encode({
    { body = '{"id":1,"amount":1}' },
    { body = '{"id":"x","amount":1}' },
    { body = '{"id":2,"amount":1}', headers = { source = "pos" } },
    { body = '{"id":3}' },
  })

  it("reject: refuses the request, listing each event off the contract with its place and path", function()
    local n, err, message, details = events.prepare(body, limits("reject"))
    assert.is_nil(n)
    assert.are.equal("SCHEMA_MISMATCH", err)
    assert.matches("2 of 4 events", message, 1, true)
    assert.are.equal(2, details.count)
    assert.are.same({ event = 2, path = "body.id", problem = "expected integer, got string" }, details.invalid[1])
    assert.are.same({ event = 4, path = "body.amount", problem = "is required" }, details.invalid[2])
  end)

  it("flag: accepts every event, marking those off the contract with schemaDrift", function()
    local n, sent, off = events.prepare(body, limits("flag"))
    assert.are.equal(4, n)
    assert.are.equal(2, off)
    local out = cjson.decode(sent)
    assert.is_nil(out[1].headers.schemaDrift)
    assert.are.equal("body.id: expected integer, got string", out[2].headers.schemaDrift)
    assert.are.equal("body.amount: is required", out[4].headers.schemaDrift)
    assert.is_nil(out[2].headers.quarantine)
  end)

  it("quarantine: accepts every event, marking those off the contract for the sink to keep aside", function()
    local n, sent, off = events.prepare(body, limits("quarantine"))
    assert.are.equal(4, n)
    assert.are.equal(2, off)
    assert.are.equal("body.amount: is required", cjson.decode(sent)[4].headers.quarantine)
  end)

  it("never lets a sender set the marks itself", function()
    for _, h in ipairs({ "schemaDrift", "quarantine" }) do
      local n, err = events.prepare(cjson.encode({ { headers = { [h] = "x" }, body = '{"id":1,"amount":1}' } }), limits("flag"))
      assert.is_nil(n)
      assert.are.equal("RESERVED_HEADER", err)
    end
  end)

  it("checks the headers as the sender sent them (the gateway's own come after)", function()
    local def = { body = { type = "object" }, headers = { type = "object", additionalProperties = false, properties = { source = { type = "string" } } } }
    local l = { name = "shop.orders", user = "alice", max_events = 10, request_id = "r", contract = assert(schema.contract(cjson.encode(def))) }
    local n = events.prepare(cjson.encode({ { headers = { source = "pos" }, body = "{}" } }), l)
    assert.are.equal(1, n)
  end)
end)
