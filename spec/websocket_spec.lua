-- moonbox.websocket against a loopback echo server (spec/support/ws_echo.mjs, a fake).
local moonbox = require "moonbox"
local ws = require "moonbox.websocket"

describe("moonbox.websocket", function()
  local proc, base
  setup(function()
    proc = assert(io.popen("exec node spec/support/ws_echo.mjs --parent $PPID", "r"))
    local port = tonumber((proc:read("l") or ""):match("^PORT (%d+)"))
    assert(port, "ws_echo did not start")
    base = "ws://127.0.0.1:" .. port
  end)
  teardown(function()
    require("moonbox.http").request { url = base:gsub("^ws", "http") .. "/_shutdown" }
    proc:close()
  end)

  it("upgrades, negotiates a subprotocol and echoes text and binary", function()
    local c = assert(ws.connect { url = base .. "/echo", protocols = { "v4.channel.k8s.io", "other" } })
    assert.equal("v4.channel.k8s.io", c.protocol)
    assert.is_true(c:send("hello", "text"))
    assert.same({ "hello", "text" }, { c:receive(2) })
    local bytes = "\0\1\2\255" .. string.rep("x", 70000)
    assert.is_true(c:send(bytes))
    local d, kind = c:receive(2)
    assert.equal("binary", kind)
    assert.equal(bytes, d)
    c:close()
    assert.has_error(function() c:send("x") end, "attempt to use a closed websocket connection")
  end)

  it("sends the given headers", function()
    local c = assert(ws.connect { url = base .. "/hello", headers = { Authorization = "Bearer t0k" } })
    assert.equal("hello Bearer t0k", (c:receive(2)))
    c:close()
  end)

  it("joins fragments, answers pings and reads large messages", function()
    local c = assert(ws.connect { url = base .. "/script" })
    c:send("frag", "text")
    assert.same({ "one-two-three", "text" }, { c:receive(2) })
    c:send("ping", "text")
    assert.equal("pinged", (c:receive(2)))
    c:send("pongs", "text")
    assert.equal("1", (c:receive(2)))
    c:send("big", "text")
    assert.equal(200 * 1024, #(c:receive(2)))
    c:close()
  end)

  it("reports the server's close code and reason", function()
    local c = assert(ws.connect { url = base .. "/script" })
    c:send("close", "text")
    local d, msg, code = c:receive(2)
    assert.is_nil(d)
    assert.equal("CLOSED", code)
    assert.matches("4000: bye", msg, 1, true)
    local _, _, code2 = c:send("x")
    assert.equal("CLOSED", code2)
    c:close()
  end)

  it("reports a dropped connection and a timeout", function()
    local c = assert(ws.connect { url = base .. "/script" })
    local d, msg, code = c:receive(0.1)
    assert.is_nil(d)
    assert.equal("TIMEOUT", code)
    assert.truthy(msg)
    c:send("drop", "text")
    local _
    d, _, code = c:receive(2)
    assert.is_nil(d)
    assert.equal("CLOSED", code)
    c:close()
  end)

  it("fails clearly when the server does not upgrade or is not there", function()
    local c, msg, code = ws.connect { url = base .. "/deny" }
    assert.is_nil(c)
    assert.equal("PROTOCOL", code)
    assert.matches("403", msg, 1, true)
    assert.matches("forbidden", msg, 1, true)
    c, msg, code = ws.connect { url = "ws://127.0.0.1:9/" }
    assert.is_nil(c)
    assert.equal("UNAVAILABLE", code)
    assert.truthy(msg)
  end)

  it("serves many connections from tasks at once", function()
    local tasks = {}
    for i = 1, 20 do
      tasks[i] = moonbox.spawn(function()
        local c = assert(ws.connect { url = base .. "/echo" })
        c:send("n" .. i, "text")
        local d = c:receive(5)
        c:close()
        return d
      end)
    end
    for i = 1, 20 do assert.equal("n" .. i, tasks[i]:join()) end
  end)

  it("raises on misuse", function()
    assert.has_error(function() ws.connect() end)
    assert.has_error(function() ws.connect {} end)
    assert.has_error(function() ws.connect { url = "ftp://x/" } end)
    assert.has_error(function() ws.connect { url = base .. "/echo", headers = { X = "a\r\nb" } } end)
    assert.has_error(function() ws.connect { url = base .. "/echo", protocols = { "a,b" } } end)
    local c = assert(ws.connect { url = base .. "/echo" })
    assert.has_error(function() c:send("x", "bogus") end)
    c:close()
  end)
end)
