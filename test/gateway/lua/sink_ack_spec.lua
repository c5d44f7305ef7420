-- templates/gateway/lua/flume_gateway/sink_ack.lua: what a sender's Prefer asks, what an agent's
-- metrics say, and when the sink has taken a request's events.
local cjson = require "cjson"
local sink_ack = require "flume_gateway.sink_ack"

local function metrics(ch)
  return cjson.encode({
    ["SOURCE.r1"] = { EventAcceptedCount = "9" },
    ["CHANNEL.c1"] = ch,
    ["SINK.k1"] = { EventDrainSuccessCount = "3" },
  })
end
local function counts(start, backlog, put, take)
  return { start = start, backlog = backlog, put = put, take = take }
end

describe("parse_prefer", function()
  it("reads ack=sink and a wait, in any case, quoted or not, among other preferences", function()
    assert.are.same({ ack = "sink", wait = 5 }, sink_ack.parse_prefer("ACK=Sink, wait=5"))
    assert.are.same({ ack = "sink" }, sink_ack.parse_prefer('respond-async, ack="sink"; x=1'))
    assert.are.same({ ack = "sink", wait = 3 }, sink_ack.parse_prefer({ "return=minimal", "ack=sink", "wait=3" }))
    assert.are.same({ ack = "channel" }, sink_ack.parse_prefer("ack=channel"))
  end)
  it("ignores what it does not know, and keeps a wait within 1..MAX_WAIT", function()
    assert.are.same({}, sink_ack.parse_prefer(nil))
    assert.are.same({}, sink_ack.parse_prefer("ack=disk, wait=soon, handling=lenient"))
    assert.are.same({ wait = sink_ack.MAX_WAIT }, sink_ack.parse_prefer("wait=99999"))
    assert.are.same({ wait = 1 }, sink_ack.parse_prefer("wait=0"))
  end)
  it("takes the first of a preference given twice (RFC 7240)", function()
    assert.are.same({ ack = "sink", wait = 2 }, sink_ack.parse_prefer("ack=sink, wait=2, ack=channel, wait=9"))
  end)
end)

describe("parse_counts", function()
  it("reads the channel's start, backlog, puts and takes", function()
    local c = sink_ack.parse_counts(metrics({ StartTime = "1700000000000", StartBacklog = "4", EventPutSuccessCount = "10", EventTakeSuccessCount = "7", ChannelSize = "7" }))
    assert.are.same(counts(1700000000000, 4, 10, 7), c)
  end)
  it("gives nothing for an agent without the launcher's backlog, or a body that is not Flume's", function()
    assert.is_nil(sink_ack.parse_counts(metrics({ StartTime = "1", EventPutSuccessCount = "1", EventTakeSuccessCount = "1" })))
    assert.is_nil(sink_ack.parse_counts("<html>no</html>"))
    assert.is_nil(sink_ack.parse_counts(nil))
    assert.is_nil(sink_ack.parse_counts('{"CHANNEL.c1":"x"}'))
  end)
end)

describe("taken", function()
  it("waits for takes to pass what was replayed and put up to the request", function()
    local mark = sink_ack.mark(counts(1, 5, 20, 3))
    assert.is_false(sink_ack.taken(mark, counts(1, 5, 30, 24)))
    assert.is_true(sink_ack.taken(mark, counts(1, 5, 30, 25)))
  end)
  it("after a restart, waits for what was left: the new JVM's takes count from 0", function()
    local mark = sink_ack.mark(counts(1, 0, 100, 40))
    assert.is_false(sink_ack.taken(mark, counts(1, 0, 120, 70))) -- 70 of 100 taken in the old JVM
    -- The new JVM replayed the 50 the old one had left (30 of them the request's and before).
    assert.is_false(sink_ack.taken(mark, counts(2, 50, 0, 29)))
    assert.is_true(sink_ack.taken(mark, counts(2, 50, 5, 30)))
  end)
  it("counts every restart it sees, and never answers early for one it missed", function()
    local mark = sink_ack.mark(counts(1, 0, 100, 90))
    -- Unseen: the old JVM took 5 more before it died. The new one's 10 takes cover the 10 left.
    assert.is_true(sink_ack.taken(mark, counts(2, 5, 0, 10)))
    mark = sink_ack.mark(counts(1, 0, 100, 90))
    assert.is_false(sink_ack.taken(mark, counts(2, 5, 0, 4)))
    assert.is_false(sink_ack.taken(mark, counts(3, 6, 0, 5))) -- 4 of 10 taken by JVM 2: 6 left
    assert.is_true(sink_ack.taken(mark, counts(3, 6, 0, 6)))
  end)
end)
