-- templates/gateway/lua/flume_gateway/route.lua reads the values src/agents/route-table.ts
-- writes: test/gateway/lua.test.ts generates flume_routes and route_values (real values) first.
local route = require "flume_gateway.route"
local values = require "route_values"

describe("read", function()
  it("sends a file table's events to its agent, with its transaction capacity and metrics port", function()
    assert.are.same({ kind = "agent", host = "127.0.0.1", port = 20123, cap = 4000, metrics_port = 20124 }, route.read(values.file))
  end)
  it("bounds a Kafka table's events by the producer's request size", function()
    local r = route.read(values.kafka)
    assert.are.equal(1000, r.cap)
    assert.are.equal(values.kafkaMaxEvent, r.max_event)
    assert.are.equal(20124, r.metrics_port)
  end)
  it("reads a route written before metrics ports were kept (no sink acknowledgement then)", function()
    assert.are.same({ kind = "agent", host = "127.0.0.1", port = 20123, cap = 4000 }, route.read("127.0.0.1:20123 tx=4000"))
    assert.are.same({ kind = "agent", host = "127.0.0.1", port = 20123, cap = 10, max_event = 99 }, route.read("127.0.0.1:20123 tx=10 max=99"))
  end)
  it("reads a route written before capacities were kept", function()
    assert.are.same({ kind = "agent", host = "127.0.0.1", port = 20123 }, route.read("127.0.0.1:20123"))
  end)
  it("sends another host's table through that host's gateway", function()
    assert.are.same({ kind = "via", host = "10.9.0.2", port = 8081 }, route.read(values.via))
  end)
  it("names every state a table can be in", function()
    assert.are.equal("paused", route.read(values.paused).kind)
    assert.are.equal("fenced", route.read(values.fenced).kind)
    assert.are.equal("node_down", route.read(values.nodeDown).kind)
    assert.are.equal("down", route.read("down").kind)
    assert.are.equal("none", route.read("none").kind)
  end)
  it("never sends events where an unreadable route points", function()
    for _, v in ipairs({ "", "127.0.0.1:20123 tx=", "127.0.0.1:20123 junk", "via host", "127.0.0.1:port tx=1" }) do
      assert.are.equal("unreadable", route.read(v).kind, v)
    end
  end)
end)
