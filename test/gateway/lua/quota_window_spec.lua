-- The arithmetic of templates/gateway/lua/flume_gateway/quota_window.lua: a db's quota as the
-- gateway reads it, the sliding second, when a refused request fits again, shares, headers.
local window = require "flume_gateway.quota_window"

describe("parse", function()
  it("reads what src/resources/quota.ts writes, and nothing else", function()
    assert.are.same({ eps = 5000, bpd = 1000000 }, window.parse("eps=5000 bpd=1000000"))
    assert.are.same({ eps = 1, bps = 2, epd = 3, bpd = 4 }, window.parse("eps=1 bps=2 epd=3 bpd=4"))
    assert.is_nil(window.parse(""))
    assert.is_nil(window.parse(nil))
    assert.is_nil(window.parse("rate=5"))
  end)
end)

describe("the sliding second", function()
  it("weighs the last second by what of it is still within a second", function()
    assert.are.equal(100, window.estimate(100, 0, 0))
    assert.are.equal(75, window.estimate(100, 25, 0.5))
    assert.are.equal(25, window.estimate(100, 25, 1))
  end)

  it("says when a request fits again: within this second while the last slides out", function()
    -- limit 100, 10 more, 50 this second: the last second's 100 must fall to 40, 0.6 of it
    -- gone; 0.2 is gone already: 0.4 s more -> 1 (Retry-After counts whole seconds).
    assert.are.equal(1, window.wait_for(100, 50, 0.2, 10, 100))
    -- The last second's 400 must fall to 40: 0.9 of it gone; 0.05 is: 0.85 s -> 1.
    assert.are.equal(1, window.wait_for(400, 50, 0.05, 10, 100))
  end)

  it("says when a request fits again: the next second, once this one slides out far enough", function()
    -- This second holds 100 already (limit 100): it must fall to 90 in the next, 0.1 into it:
    -- 0.5 s to the end of this one + 0.1 -> 0.6 -> 1 s.
    assert.are.equal(1, window.wait_for(0, 100, 0.5, 10, 100))
    -- 0.9 into the next: 0.5 + 0.9 -> 2 s.
    assert.are.equal(2, window.wait_for(0, 1000, 0.5, 10, 100))
    -- No room at all but the whole window: 2 s less how far into this second.
    assert.are.equal(2, window.wait_for(0, 100, 0.2, 100, 100))
  end)

  it("never says less than 1 s", function()
    assert.are.equal(1, window.wait_for(0, 0, 0.99, 1, 100))
  end)
end)

describe("until_tomorrow", function()
  it("counts the seconds to 00:00 UTC", function()
    assert.are.equal(86400, window.until_tomorrow(86400 * 20000))
    assert.are.equal(1, window.until_tomorrow(86400 * 20000 - 0.5))
    assert.are.equal(3600, window.until_tomorrow(86400 * 20000 + 82800))
  end)
end)

describe("share", function()
  it("divides the mark between the dbs sending, one at least", function()
    assert.are.equal(64, window.share(128, 2))
    assert.are.equal(42, window.share(128, 3))
    assert.are.equal(1, window.share(2, 5))
    assert.are.equal(128, window.share(128, 0))
  end)
end)

describe("headers", function()
  it("writes RateLimit-Policy and RateLimit as structured fields", function()
    local policy, left = window.headers("bytes", 1048576, 1, 2, "content-bytes")
    assert.are.equal('"bytes";q=1048576;w=1;qu="content-bytes"', policy)
    assert.are.equal('"bytes";r=0;t=2', left)
  end)
end)
