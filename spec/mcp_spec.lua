-- moonbox.mcp: the MCP server over an in-memory transport (messages in, lines out), and
-- `moonbox mcp` fed through a pipe. Real clients from npm drive it in spec/mcp/mcp.test.mjs.
local moonbox = require "moonbox"
local json = require "moonbox.json"
local mcp = require "moonbox.mcp"
local tmpdir = require "spec.support.tmpdir"

local exe = os.getenv("MOONBOX_EXE") or "build/moonbox"

local write_file = tmpdir.write
local read_file = tmpdir.read

local function wait_until(pred, seconds)
  local deadline = moonbox.now() + (seconds or 15)
  while not pred() do
    if moonbox.now() > deadline then return false end
    moonbox.sleep(0.01)
  end
  return true
end

local function alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

-- A server on a workspace, with the lines it writes collected and decoded.
local function harness(opts)
  opts = opts or {}
  local root, rm = tmpdir.make()
  local srv
  local ws = assert(require("moonbox.workspace").open {
    root = root, sandbox = "local", preset = opts.preset or "permissive", ask_fallback = "deny",
    image_support = true, log = function() end,
    ask = function(op, target, reason) return srv:ask(op, target, reason) end,
  })
  local h = { root = root, out = {}, logs = {} }
  srv = mcp.server { capability = ws.capability, progress_interval = opts.progress_interval or 0.05,
    write = function(line)
      assert(not line:find("\n"), "a message spans lines")
      h.out[#h.out + 1] = assert(json.decode(line))
    end,
    log = function(line) h.logs[#h.logs + 1] = line end }
  h.srv = srv
  function h.send(msg) srv:handle(type(msg) == "string" and msg or json.encode(msg)) end
  function h.response(id, seconds)
    local found
    wait_until(function()
      for _, m in ipairs(h.out) do
        if m.id == id and m.method == nil then found = m end
      end
      return found ~= nil
    end, seconds)
    return found
  end
  function h.call(id, name, args, meta)
    h.send { jsonrpc = "2.0", id = id, method = "tools/call",
      params = { name = name, arguments = args or json.object(), _meta = meta } }
    return h.response(id)
  end
  function h.initialize(caps, version)
    h.send { jsonrpc = "2.0", id = 0, method = "initialize", params = { protocolVersion = version or "2025-11-25",
      capabilities = caps or json.object(), clientInfo = { name = "spec", version = "1" } } }
    h.send { jsonrpc = "2.0", method = "notifications/initialized" }
    return h.response(0)
  end
  function h.close()
    srv:shutdown()
    wait_until(function() return srv:running() == 0 end)
    ws.close()
    rm()
  end
  return h
end

describe("moonbox.mcp server", function()
  local h
  after_each(function()
    if h then h.close() end
    h = nil
  end)

  it("initializes, negotiating the protocol version", function()
    h = harness()
    local r = h.initialize()
    assert.equal("2025-11-25", r.result.protocolVersion)
    assert.equal("moonbox", r.result.serverInfo.name)
    assert.is_string(r.result.serverInfo.version)
    assert.is_table(r.result.capabilities.tools)
    for _, v in ipairs { "2025-06-18", "2025-03-26" } do
      h.send { jsonrpc = "2.0", id = v, method = "initialize", params = { protocolVersion = v, capabilities = {} } }
      assert.equal(v, h.response(v).result.protocolVersion)
    end
    h.send { jsonrpc = "2.0", id = "old", method = "initialize", params = { protocolVersion = "2020-01-01" } }
    assert.equal("2025-11-25", h.response("old").result.protocolVersion)
    h.send { jsonrpc = "2.0", id = 9, method = "ping" }
    local ping = h.response(9)
    assert.same({}, ping.result)
  end)

  it("lists the tools with schemas and annotations", function()
    h = harness()
    h.initialize()
    h.send { jsonrpc = "2.0", id = 1, method = "tools/list" }
    local tools = h.response(1).result.tools
    local by = {}
    for _, t in ipairs(tools) do by[t.name] = t end
    for _, n in ipairs { "ls", "read_file", "write_file", "edit_file", "glob", "grep", "execute" } do
      assert.is_table(by[n], n)
      assert.equal("object", by[n].inputSchema.type)
    end
    assert.is_true(by.read_file.annotations.readOnlyHint)
    assert.is_true(by.write_file.annotations.destructiveHint)
    assert.is_true(by.write_file.annotations.idempotentHint)
    assert.is_false(by.execute.annotations.readOnlyHint)
    assert.same({ "path" }, by.read_file.inputSchema.required)
    assert.is_table(by.execute.outputSchema)
    -- list_shells has no parameters: its properties encode as an object, not an array
    h.send(json.encode { jsonrpc = "2.0", id = 2, method = "tools/list" })
    local raw
    h.srv.write_line = function(line) raw = line end
    h.send { jsonrpc = "2.0", id = 3, method = "tools/list" }
    assert.matches('"name":"list_shells"', raw, 1, true)
    assert.matches('"properties":{}', raw, 1, true)
  end)

  it("calls tools: text, an error result, images, structured output", function()
    h = harness()
    h.initialize()
    write_file(h.root .. "/a.txt", "alpha\nbeta\n")
    local r = h.call(1, "read_file", { path = "/a.txt" })
    assert.is_false(r.result.isError)
    assert.matches("alpha", r.result.content[1].text, 1, true)
    r = h.call(2, "read_file", { path = "/missing.txt" })
    assert.is_true(r.result.isError)
    assert.matches("^Error:", r.result.content[1].text)
    r = h.call(3, "read_file", { bogus = 1 })
    assert.is_true(r.result.isError)
    write_file(h.root .. "/p.png", "\137PNG\r\n\26\n0000")
    r = h.call(4, "read_file", { path = "/p.png" })
    assert.equal("image", r.result.content[1].type)
    assert.equal("image/png", r.result.content[1].mimeType)
    assert.equal("\137PNG\r\n\26\n0000", require("moonbox.codec").base64_decode(r.result.content[1].data))
    r = h.call(5, "execute", { command = "echo out; exit 3" })
    assert.equal(3, r.result.structuredContent.exit_code)
    assert.matches("out", r.result.structuredContent.output, 1, true)
    assert.is_false(r.result.structuredContent.timed_out)
    r = h.call(7, "execute", { command = "printf 'a\\377b'" })
    assert.equal("a\u{FFFD}b", r.result.structuredContent.output)
    assert.equal("a\u{FFFD}b", r.result.content[1].text)
    assert.equal("ok \u{FFFD}\u{FFFD} \u{FFFD}x", mcp.utf8_clean("ok \xff\xfe \xc3x"))
    r = h.call(6, "write_file", { path = "/b.txt", content = "x\n" })
    assert.is_false(r.result.isError)
    assert.equal("x\n", read_file(h.root .. "/b.txt"))
  end)

  it("answers protocol errors and keeps serving", function()
    h = harness()
    h.initialize()
    local function last() return h.out[#h.out] end
    h.send "{not json"
    assert.equal(-32700, last().error.code)
    assert.equal(json.null, last().id)
    h.send "[1, 2]"
    assert.equal(-32600, last().error.code)
    h.send "42"
    assert.equal(-32600, last().error.code)
    h.send { jsonrpc = "1.0", id = 1, method = "ping" }
    assert.equal(-32600, last().error.code)
    assert.equal(1, last().id)
    h.send { jsonrpc = "2.0", id = 2, method = "resources/list" }
    assert.equal(-32601, last().error.code)
    h.send { jsonrpc = "2.0", id = 3, method = "tools/call", params = { arguments = {} } }
    assert.equal(-32602, last().error.code)
    h.send { jsonrpc = "2.0", id = 4, method = "tools/call", params = { name = "nope" } }
    assert.equal(-32602, last().error.code)
    assert.matches("Unknown tool 'nope'", last().error.message, 1, true)
    h.send { jsonrpc = "2.0", id = 5, method = "tools/call", params = { name = "ls", arguments = { 1, 2 } } }
    assert.equal(-32602, last().error.code)
    h.send { jsonrpc = "2.0", id = 6, method = "tools/list", params = "x" }
    assert.equal(-32602, last().error.code)
    h.send { jsonrpc = "2.0", id = { 1 }, method = "ping" }
    assert.equal(-32600, last().error.code)
    local n = #h.out
    h.send { jsonrpc = "2.0", method = "notifications/whatever" }
    assert.equal(n, #h.out)
    h.send { jsonrpc = "2.0", id = 7, method = "ping" }
    assert.same({}, h.response(7).result)
  end)

  it("runs calls concurrently, cancels one (killing its command) and reports progress", function()
    h = harness()
    h.initialize()
    h.send { jsonrpc = "2.0", id = "slow", method = "tools/call", params = { name = "execute",
      arguments = { command = "sleep 30 & echo $! > pid; wait" }, _meta = { progressToken = "tok" } } }
    assert.is_true(wait_until(function() return (read_file(h.root .. "/pid") or ""):match("%d+\n") ~= nil end))
    local pid = assert(tonumber(read_file(h.root .. "/pid")))
    write_file(h.root .. "/a.txt", "quick\n")
    local r = h.call(1, "read_file", { path = "/a.txt" }) -- answered while "slow" runs
    assert.matches("quick", r.result.content[1].text, 1, true)
    assert.equal(1, h.srv:running())
    assert.is_true(wait_until(function()
      local n = 0
      for _, m in ipairs(h.out) do
        if m.method == "notifications/progress" and m.params.progressToken == "tok" then n = n + 1 end
      end
      return n >= 2
    end))
    h.send { jsonrpc = "2.0", method = "notifications/cancelled", params = { requestId = "slow", reason = "test" } }
    assert.is_true(wait_until(function() return not alive(pid) end))
    assert.equal(0, h.srv:running())
    moonbox.sleep(0.1)
    for _, m in ipairs(h.out) do assert.is_false(m.id == "slow") end
  end)

  it("asks through elicitation when the client declares it", function()
    h = harness { preset = "default" }
    h.initialize { elicitation = json.object() }
    local answers = { "accept", "decline" }
    local n = 0
    local function answer_next()
      assert.is_true(wait_until(function()
        for _, m in ipairs(h.out) do
          if m.method == "elicitation/create" and not m.answered then return true end
        end
      end))
      for _, m in ipairs(h.out) do
        if m.method == "elicitation/create" and not m.answered then
          m.answered = true
          n = n + 1
          assert.matches("Allow write on '/w.txt'", m.params.message, 1, true)
          assert.equal("object", m.params.requestedSchema.type)
          h.send { jsonrpc = "2.0", id = m.id, result = { action = answers[n], content = json.object() } }
        end
      end
    end
    h.send { jsonrpc = "2.0", id = 1, method = "tools/call", params = { name = "write_file",
      arguments = { path = "/w.txt", content = "yes\n" } } }
    answer_next()
    assert.is_false(h.response(1).result.isError)
    assert.equal("yes\n", read_file(h.root .. "/w.txt"))
    h.send { jsonrpc = "2.0", id = 2, method = "tools/call", params = { name = "execute",
      arguments = { command = "touch t" } } }
    answers[2] = "decline"
    -- the question is about execute now
    assert.is_true(wait_until(function()
      for _, m in ipairs(h.out) do
        if m.method == "elicitation/create" and m.params.message:find("execute") then
          h.send { jsonrpc = "2.0", id = m.id, result = { action = "decline" } }
          return true
        end
      end
    end))
    local r = h.response(2)
    assert.is_true(r.result.isError)
    assert.matches("decline", r.result.content[1].text, 1, true)
    assert.is_nil(read_file(h.root .. "/t"))
  end)

  it("an elicitation answered 'always' covers the rest of that rule", function()
    h = harness { preset = "default" }
    h.initialize { elicitation = { form = json.object() } }
    local asked = 0
    local answering = moonbox.spawn(function()
      local seen = {}
      while true do
        for _, m in ipairs(h.out) do
          if m.method == "elicitation/create" and not seen[m.id] then
            seen[m.id] = true
            asked = asked + 1
            assert.equal("form", m.params.mode)
            h.send { jsonrpc = "2.0", id = m.id, result = { action = "accept", content = { always = true } } }
          end
        end
        moonbox.sleep(0.01)
      end
    end)
    for i = 1, 3 do
      local r = h.call(i, "write_file", { path = "/f" .. i .. ".txt", content = "x" })
      assert.is_false(r.result.isError, r.result.content[1].text)
    end
    answering:cancel()
    assert.equal(1, asked)
    assert.equal("x", read_file(h.root .. "/f3.txt"))
  end)

  it("refuses an ask without elicitation, naming the rule", function()
    h = harness { preset = "default" }
    h.initialize()
    local r = h.call(1, "write_file", { path = "/w.txt", content = "no" })
    assert.is_true(r.result.isError)
    assert.matches("the write default is ask", r.result.content[1].text, 1, true)
    assert.matches("elicitation", r.result.content[1].text, 1, true)
    assert.is_nil(read_file(h.root .. "/w.txt"))
  end)

  it("2025-03-26 clients get no outputSchema or structuredContent", function()
    h = harness()
    h.initialize(nil, "2025-03-26")
    h.send { jsonrpc = "2.0", id = 1, method = "tools/list" }
    for _, t in ipairs(h.response(1).result.tools) do assert.is_nil(t.outputSchema) end
    assert.is_nil(h.call(2, "execute", { command = "true" }).result.structuredContent)
  end)

  it("a client that stops reading gets its calls cancelled", function()
    h = harness()
    h.initialize()
    h.srv.write_line = function() error("Broken pipe", 0) end
    h.send { jsonrpc = "2.0", id = 1, method = "tools/call", params = { name = "execute",
      arguments = { command = "sleep 30 & echo $! > pid; wait" }, _meta = { progressToken = 7 } } }
    assert.is_true(wait_until(function() return (read_file(h.root .. "/pid") or ""):match("%d+\n") ~= nil end))
    local pid = assert(tonumber(read_file(h.root .. "/pid")))
    assert.is_true(wait_until(function() return not alive(pid) end))
    assert.equal(0, h.srv:running())
    assert.matches("cannot write to the client", h.logs[#h.logs], 1, true)
  end)

  it("serve() ends at end of input and kills running commands", function()
    h = harness()
    local lines = {
      json.encode { jsonrpc = "2.0", id = 0, method = "initialize", params = { protocolVersion = "2025-11-25" } },
      json.encode { jsonrpc = "2.0", id = 1, method = "tools/call", params = { name = "execute",
        arguments = { command = "sleep 30 & echo $! > pid; wait" } } },
    }
    local input = { read_line = function()
      if #lines > 0 then return table.remove(lines, 1) end
      wait_until(function() return (read_file(h.root .. "/pid") or ""):match("%d+\n") ~= nil end)
      return nil
    end }
    local t = moonbox.spawn(mcp.serve, { server = h.srv, input = input })
    t:join()
    local pid = assert(tonumber(read_file(h.root .. "/pid")))
    assert.is_true(wait_until(function() return not alive(pid) end))
    assert.equal(0, h.srv:running())
  end)
end)

describe("moonbox mcp (CLI)", function()
  it("serves newline-delimited JSON-RPC on stdio and logs to stderr only", function()
    local root, rm = tmpdir.make()
    write_file(root .. "/hello.txt", "hello\n")
    local input = os.tmpname()
    write_file(input, table.concat({
      json.encode { jsonrpc = "2.0", id = 1, method = "initialize", params = { protocolVersion = "2025-06-18",
        capabilities = json.object(), clientInfo = { name = "sh", version = "1" } } },
      json.encode { jsonrpc = "2.0", method = "notifications/initialized" },
      "this is not json",
      json.encode { jsonrpc = "2.0", id = 2, method = "tools/call", params = { name = "read_file",
        arguments = { path = "/hello.txt" } } },
    }, "\n") .. "\n")
    local errf = os.tmpname()
    local p = assert(io.popen(("%s mcp --root %s --sandbox local --preset readonly <%s 2>%s"):format(exe, root,
      input, errf)))
    local out = p:read("a")
    local ok = p:close()
    assert.is_true(ok)
    local msgs = {}
    for line in out:gmatch("[^\n]+") do msgs[#msgs + 1] = assert(json.decode(line)) end
    local ids = {}
    for _, m in ipairs(msgs) do ids[#ids + 1] = tostring(m.id) end
    assert.equal(3, #msgs, out)
    assert.equal("2025-06-18", msgs[1].result.protocolVersion)
    assert.equal(-32700, msgs[2].error.code)
    assert.matches("hello", msgs[3].result.content[1].text, 1, true)
    assert.matches("serving", read_file(errf), 1, true)
    os.remove(input)
    os.remove(errf)
    rm()
  end)

  it("rejects bad options", function()
    local p = assert(io.popen(exe .. " mcp --bogus </dev/null 2>&1; echo rc=$?"))
    local out = p:read("a")
    p:close()
    assert.matches("unknown option --bogus", out, 1, true)
    assert.matches("rc=2", out, 1, true)
    p = assert(io.popen(exe .. " mcp --preset nope --sandbox local </dev/null 2>&1; echo rc=$?"))
    out = p:read("a")
    p:close()
    assert.matches("unknown preset", out, 1, true)
    assert.matches("rc=1", out, 1, true)
  end)
end)
