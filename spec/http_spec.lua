-- moonbox.http: requests on the host loop, against the loopback fake in spec/support.
local moonbox = require "moonbox"
local http = require "moonbox.http"
local fake_llm = require "spec.support.fake_llm"

describe("moonbox.http", function()
  local srv, sock
  setup(function()
    sock = os.tmpname()
    os.remove(sock)
    srv = fake_llm.start { unix = sock }
  end)
  teardown(function()
    srv:close()
    os.remove(sock)
  end)
  before_each(function() srv:reset() end)

  it("posts a body and returns status, lower-cased headers and body", function()
    local r = assert(http.request { url = srv.url .. "/_script", body = '[{"text":"hi"}]',
      headers = { ["Content-Type"] = "application/json", ["X-Test"] = "1" } })
    assert.equal(200, r.status)
    assert.equal('{"queued":1}', r.body)
    assert.equal("application/json", r.headers["content-type"])
    assert.equal("12", r.headers["content-length"])
    local reqs = srv:requests()
    assert.same({}, reqs)
    r = assert(http.request { url = srv.url .. "/v1/chat/completions", body = '{"model":"m"}',
      headers = { "X-Line-Style: yes" } })
    assert.equal(200, r.status)
    reqs = srv:requests()
    assert.equal("yes", reqs[1].headers["x-line-style"])
    assert.equal("m", reqs[1].body.model)
  end)

  it("returns HTTP error statuses as results", function()
    srv:script { { status = 429, headers = { ["retry-after"] = "2" }, error = "slow down" } }
    local r = assert(http.request { url = srv.url .. "/v1/messages", body = "{}" })
    assert.equal(429, r.status)
    assert.equal("2", r.headers["retry-after"])
    assert.matches("slow down", r.body, 1, true)
    r = assert(http.request { url = srv.url .. "/nope" })
    assert.equal(404, r.status)
  end)

  it("fails with UNAVAILABLE when nothing listens", function()
    local r, msg, code = http.request { url = "http://127.0.0.1:9/" }
    assert.is_nil(r)
    assert.equal("UNAVAILABLE", code)
    assert.matches("127.0.0.1", msg, 1, true)
  end)

  it("fails with TIMEOUT and keeps serving", function()
    srv:script { { text = "late", delay_ms = 1500 } }
    local t0 = moonbox.now()
    local r, msg, code = http.request { url = srv.url .. "/v1/chat/completions", body = "{}", timeout = 0.2 }
    assert.is_nil(r)
    assert.equal("TIMEOUT", code)
    assert.truthy(msg)
    assert.is_true(moonbox.now() - t0 < 1.2)
  end)

  it("streams a body through on_chunk and parses SSE", function()
    srv:script { { text = "hello world", stream = true, usage = { input = 3, output = 2 } } }
    local events, statuses = {}, {}
    local parse = http.sse(function(ev) events[#events + 1] = ev end)
    local r = assert(http.request { url = srv.url .. "/v1/messages", body = '{"stream":true}',
      on_chunk = function(data, status)
        statuses[status] = true
        return parse(data)
      end })
    assert.equal(200, r.status)
    assert.equal("", r.body)
    assert.is_true(statuses[200])
    assert.equal("message_start", events[1].event)
    assert.equal("message_stop", events[#events].event)
    local text = {}
    for _, ev in ipairs(events) do
      if ev.event == "content_block_delta" then
        text[#text + 1] = require("cjson").decode(ev.data).delta.text
      end
    end
    assert.equal("hello world", table.concat(text))
  end)

  it("stops a transfer when on_chunk returns false", function()
    srv:script { { text = "a long answer that streams", stream = true } }
    local n = 0
    local r, _, code = http.request { url = srv.url .. "/v1/chat/completions", body = '{"stream":true}',
      on_chunk = function() n = n + 1; return false end }
    assert.is_nil(r)
    assert.equal("CANCELLED", code)
    assert.equal(1, n)
  end)

  it("propagates an error raised by on_chunk", function()
    srv:script { { text = "x", stream = true } }
    assert.has_error(function()
      http.request { url = srv.url .. "/v1/chat/completions", body = "{}",
        on_chunk = function() error("chunk boom") end }
    end)
  end)

  it("reports a stream cut in the middle", function()
    srv:script { { text = "abcdefghijkl", stream = true, cut = true } }
    local got = {}
    local r, _, code = http.request { url = srv.url .. "/v1/chat/completions", body = "{}",
      on_chunk = function(d) got[#got + 1] = d end }
    assert.is_nil(r)
    assert.equal("UNAVAILABLE", code)
    assert.is_true(#got >= 1)
  end)

  it("caps a whole body with max_body", function()
    srv:script { { text = string.rep("x", 5000) } }
    local r, msg, code = http.request { url = srv.url .. "/v1/chat/completions", body = "{}", max_body = 1000 }
    assert.is_nil(r)
    assert.equal("TOO_LARGE", code)
    assert.matches("max_body", msg, 1, true)
  end)

  it("talks over a unix socket", function()
    local r = assert(http.request { url = "http://localhost/_requests", unix_socket = sock })
    assert.equal(200, r.status)
    assert.equal("[]", r.body)
  end)

  it("raises on misuse", function()
    assert.has_error(function() http.request() end)
    assert.has_error(function() http.request {} end, "bad argument #1 to 'request' (url is required)")
    assert.has_error(function() http.request { url = srv.url, bogus = 1 } end)
    assert.has_error(function() http.request { url = srv.url, timeout = "x" } end)
    assert.has_error(function() http.request { url = srv.url, headers = { ["X"] = "a\r\nEvil: 1" } } end)
    assert.has_error(function() http.request { url = srv.url, method = "GET /x" } end)
    assert.has_error(function() http.request { url = srv.url, on_chunk = 1 } end)
  end)

  it("refuses non-HTTP protocols", function()
    local r, _, code = http.request { url = "file:///etc/passwd" }
    assert.is_nil(r)
    assert.equal("INVALID", code)
  end)

  it("runs 500 requests concurrently from tasks", function()
    srv:auto { turns = 0, text = "ok" }
    local tasks = {}
    for i = 1, 500 do
      tasks[i] = moonbox.spawn(function()
        local r = assert(http.request { url = srv.url .. "/v1/chat/completions", body = '{"model":"m"}' })
        return r.status
      end)
    end
    local ok = 0
    for i = 1, 500 do
      if tasks[i]:join() == 200 then ok = ok + 1 end
    end
    assert.equal(500, ok)
  end)

  it("overlaps requests: two slow ones take the time of one", function()
    -- 1 s each: serial takes 2 s, so 1.5 s tells them apart with room for a busy machine
    srv:script { { text = "a", delay_ms = 1000 }, { text = "b", delay_ms = 1000 } }
    local t0 = moonbox.now()
    local a = moonbox.spawn(function() return http.request { url = srv.url .. "/v1/messages", body = "{}" }.status end)
    local b = moonbox.spawn(function() return http.request { url = srv.url .. "/v1/messages", body = "{}" }.status end)
    assert.equal(200, a:join())
    assert.equal(200, b:join())
    assert.is_true(moonbox.now() - t0 < 1.5)
  end)

  it("cancels a task waiting on a request", function()
    srv:script { { text = "never", delay_ms = 3000 } }
    local t = moonbox.spawn(function() return http.request { url = srv.url .. "/v1/messages", body = "{}" } end)
    moonbox.sleep(0.1)
    assert.is_true(t:cancel())
    assert.equal("cancelled", t:status())
    srv:reset()
    local r = assert(http.request { url = srv.url .. "/_requests" })
    assert.equal(200, r.status)
  end)
end)

describe("moonbox.http.sse", function()
  local function run(chunks)
    local evs = {}
    local feed = http.sse(function(ev) evs[#evs + 1] = ev end)
    for _, c in ipairs(chunks) do feed(c) end
    return evs
  end

  it("parses events split anywhere, with CRLF, comments and multi-line data", function()
    local evs = run { ": comment\r\nevent: a\r", "\ndata: one\r\ndata:two\r\n", "id: 7\r\nretry: 1500\r\n\r\n",
      "data: {\"x\"", ":1}\n\n" }
    assert.equal(2, #evs)
    assert.same({ event = "a", data = "one\ntwo", id = "7", retry = 1500 }, evs[1])
    assert.same({ event = "message", data = '{"x":1}' }, evs[2])
  end)

  it("ignores events without data and keeps an unfinished one", function()
    local evs = {}
    local feed = http.sse(function(ev) evs[#evs + 1] = ev end)
    feed("event: ping\n\n")
    feed("data: partial")
    assert.equal(0, #evs)
    feed("\n\n")
    assert.equal(1, #evs)
    assert.equal("partial", evs[1].data)
  end)

  it("returns false when the handler stops", function()
    local feed = http.sse(function() return false end)
    assert.is_false(feed("data: x\n\n"))
    assert.is_true(http.sse(function() end)("data: y\n\n"))
  end)
end)
