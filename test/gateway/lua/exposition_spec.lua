-- templates/gateway/lua/flume_gateway/exposition.lua: the counters as Prometheus text.
local exposition = require "flume_gateway.exposition"

local function lines(text)
  local out = {}
  for l in text:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

local function has(text, line)
  for _, l in ipairs(lines(text)) do if l == line then return true end end
  return false
end

describe("render", function()
  it("names every family with HELP and TYPE, counters at 0 before anything happened", function()
    local text = exposition.render({})
    for _, h in pairs(exposition.HELP) do
      assert.is_true(has(text, "# TYPE " .. h[1] .. " " .. h[2]), h[1])
    end
    assert.is_true(has(text, "flume_gateway_redis_errors_total 0"))
  end)
  it("labels requests by table and status, histograms by bucket", function()
    local text = exposition.render({
      ["requests\tshop\torders\t200"] = 3,
      ["requests\t\t\t404"] = 1,
      ["request_duration_seconds_bucket\t0.005"] = 2,
      ["request_duration_seconds_bucket\t+Inf"] = 4,
      ["request_duration_seconds_sum"] = 0.25,
      ["request_duration_seconds_count"] = 4,
    })
    assert.is_true(has(text, 'flume_gateway_requests_total{db="shop",table="orders",status="200"} 3'))
    assert.is_true(has(text, 'flume_gateway_requests_total{db="",table="",status="404"} 1'))
    assert.is_true(has(text, 'flume_gateway_request_duration_seconds_bucket{le="0.005"} 2'))
    assert.is_true(has(text, 'flume_gateway_request_duration_seconds_bucket{le="+Inf"} 4'))
    assert.is_true(has(text, "flume_gateway_request_duration_seconds_sum 0.25"))
    assert.is_true(has(text, "flume_gateway_request_duration_seconds_count 4"))
  end)
  it("shows nothing it has no help for", function()
    local text = exposition.render({ ["made_up\tx"] = 1, ["\tjunk"] = 2 })
    assert.is_nil(text:find("made_up", 1, true))
  end)
end)
