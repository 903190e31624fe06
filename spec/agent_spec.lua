-- moonbox.agent: the loop against the loopback fake LLM (spec/support/fake_llm.mjs), with real
-- toolsets over a state backend and a local sandbox in a temporary workspace.
local moonbox = require "moonbox"
local json = require "moonbox.json"
local fake_llm = require "spec.support.fake_llm"

local files = require "spec.support.tmpdir"
local function tmpdir() return (files.make()) end
local read_file = files.read

describe("moonbox.agent", function()
  local srv
  setup(function() srv = fake_llm.start() end)
  teardown(function() srv:close() end)
  before_each(function() srv:reset() end)

  local function new_agent(opts)
    opts.model = opts.model or ("openai-compatible:fake@" .. srv.url .. "/v1")
    opts.provider = opts.provider or { retry_base = 0.01 }
    return assert(moonbox.agent(opts))
  end

  for _, kind in ipairs { "openai", "anthropic" } do
    it("reads, writes and edits until the model answers (" .. kind .. ")", function()
      local b = moonbox.state_backend { files = { ["/notes.md"] = "hello\n" } }
      local tools = moonbox.console_toolset { backend = b, include_execute = false }
      srv:script {
        { text = "Reading and writing.", tool_calls = {
          { name = "read_file", arguments = { path = "/notes.md" } },
          { name = "write_file", arguments = { path = "/todo.txt", content = "one\ntwo\n" } } } },
        { tool_calls = { { name = "edit_file", arguments = { path = "/notes.md", old_string = "hello",
          new_string = "hello world" } } } },
        { text = "All done." },
      }
      local events = {}
      local model = kind == "anthropic" and "anthropic:fake" or nil
      local agent = new_agent { model = model, provider = kind == "anthropic" and
        { base_url = srv.url .. "/v1", api_key = "k", retry_base = 0.01 } or nil,
        toolset = tools, on_event = function(ev) events[#events + 1] = ev end }
      local result = assert(agent:run("Update the notes"))
      assert.equal("All done.", result.output)
      assert.equal(3, result.turns)
      assert.equal("done", result.stopped)
      assert.equal(3, result.usage.requests)
      assert.equal("hello world\n", b:read_bytes("/notes.md"))
      assert.equal("one\ntwo\n", b:read_bytes("/todo.txt"))
      -- the conversation: user, assistant(2 calls), 2 tool results, assistant, tool, assistant
      local roles = {}
      for _, m in ipairs(result.messages) do roles[#roles + 1] = m.role end
      assert.same({ "user", "assistant", "tool", "tool", "assistant", "tool", "assistant" }, roles)
      assert.matches("hello", result.messages[3].content, 1, true)
      -- the model saw the tool results on its next request
      local reqs = srv:requests()
      assert.equal(3, #reqs)
      local last = json.encode(reqs[3].body.messages)
      assert.matches("Wrote 2 lines", last, 1, true)
      assert.matches("Edited /notes.md", last, 1, true)
      -- events: turns, streamed text, tool start/end pairs, done
      local kinds = {}
      for _, ev in ipairs(events) do kinds[ev.type] = (kinds[ev.type] or 0) + 1 end
      assert.equal(3, kinds.turn)
      assert.equal(3, kinds.tool_start)
      assert.equal(3, kinds.tool_end)
      assert.equal(1, kinds.done)
      assert.is_true((kinds.text or 0) >= 2)
    end)
  end

  it("turns malformed model output into error results the model can correct", function()
    local b = moonbox.state_backend { files = { ["/a.txt"] = "x\n" } }
    local tools = moonbox.console_toolset { backend = b, include_execute = false }
    srv:script {
      { tool_calls = {
        { name = "read_file", arguments = '{"path": "/a.txt"' },          -- invalid JSON
        { name = "launch_missiles", arguments = {} },                    -- unknown tool
        { name = "read_file", arguments = {} },                          -- missing argument
        { name = "read_file", arguments = { path = "/a.txt", bogus = 1 } } } },
      { text = "recovered" },
    }
    local ends = {}
    local agent = new_agent { toolset = tools, on_event = function(ev)
      if ev.type == "tool_end" then ends[#ends + 1] = ev end
    end }
    local result = assert(agent:run("go"))
    assert.equal("recovered", result.output)
    local r = {}
    for i = 3, 6 do r[#r + 1] = result.messages[i] end
    assert.matches("^Error: the arguments of read_file are not a JSON object", r[1].content)
    assert.matches("^Error: unknown tool 'launch_missiles'", r[2].content)
    assert.matches("read_file", r[2].content, 1, true)
    assert.matches("^Error:.*path", r[3].content)
    assert.matches("^Error:.*bogus", r[4].content)
    for _, m in ipairs(r) do assert.is_true(m.is_error) end
    assert.equal(4, #ends)
  end)

  it("stops at max_turns", function()
    local b = moonbox.state_backend { files = { ["/a"] = "1\n" } }
    srv:auto { turns = 100, tool = "read_file", arguments = { path = "/a" } }
    local agent = new_agent { toolset = moonbox.console_toolset { backend = b }, max_turns = 3 }
    local result = assert(agent:run("loop forever"))
    assert.equal("max_turns", result.stopped)
    assert.equal(3, result.turns)
  end)

  it("puts each call through the capability's permission gate", function()
    local perms = require "moonbox.permissions"
    local b = moonbox.state_backend { files = { ["/.env"] = "SECRET=1\n", ["/ok.txt"] = "fine\n" } }
    local cap = moonbox.console_capability { backend = b, permissions = perms.presets.DEFAULT,
      include_execute = false }
    srv:script {
      { tool_calls = { { name = "read_file", arguments = { path = "/.env" } },
        { name = "read_file", arguments = { path = "/ok.txt" } } } },
      { text = "ok" },
    }
    local result = assert(new_agent { capability = cap }:run("read"))
    assert.matches("^Error: Permission denied for read on '/.env'", result.messages[3].content)
    assert.matches("fine", result.messages[4].content, 1, true)
  end)

  it("returns the API failure after retries", function()
    srv:script { { status = 500 }, { status = 500 } }
    local agent = new_agent { toolset = moonbox.console_toolset { backend = moonbox.state_backend {} },
      provider = { retry_base = 0.01, max_retries = 1 } }
    local result, msg, code = agent:run("x")
    assert.is_nil(result)
    assert.equal("SERVER", code)
    assert.truthy(msg)
  end)

  it("runs commands in a sandbox and reaches the expected files", function()
    local root = tmpdir()
    local sb = moonbox.local_sandbox { root = root }
    local tools = moonbox.console_toolset { backend = sb }
    srv:script {
      { tool_calls = { { name = "execute", arguments = { command = "printf 'int x;\\n' > a.c && echo built" } } } },
      { tool_calls = { { name = "edit_file",
        arguments = { path = "/a.c", old_string = "int x;", new_string = "int y;" } } } },
      { text = "done" },
    }
    local result = assert(new_agent { toolset = tools }:run("make a.c"))
    assert.equal("done", result.output)
    assert.matches("built", result.messages[3].content, 1, true)
    assert.equal("int y;\n", read_file(root .. "/a.c"))
    sb:stop()
    os.execute("rm -rf " .. root)
  end)

  it("cancels the running commands when its task is cancelled", function()
    local root = tmpdir()
    local sb = moonbox.local_sandbox { root = root }
    local tools = moonbox.console_toolset { backend = sb }
    srv:script { { tool_calls = { { name = "execute",
      arguments = { command = "sleep 30 & echo $! > pid; wait", timeout = 60 } } } } }
    local agent = new_agent { toolset = tools }
    local t = moonbox.spawn(function() return agent:run("sleep") end)
    -- whatever happens below, leave no task behind
    local guard <close> = setmetatable({}, { __close = function()
      if t:status() ~= "done" and t:status() ~= "failed" then t:cancel() end
      sb:stop()
      os.execute("rm -rf " .. root)
    end })
    local _ = guard
    local pid
    local deadline = moonbox.now() + 20
    repeat
      pid = tonumber(read_file(root .. "/pid") or "")
      if not pid then moonbox.sleep(0.02) end
    until pid or moonbox.now() > deadline
    assert.truthy(pid, "the command did not start")
    assert.is_true(t:cancel())
    deadline = moonbox.now() + 5
    while os.execute("kill -0 " .. pid .. " 2>/dev/null") == true and moonbox.now() < deadline do
      moonbox.sleep(0.05)
    end
    assert.is_false(os.execute("kill -0 " .. pid .. " 2>/dev/null") == true)
  end)

  it("raises on misuse", function()
    assert.has_error(function() moonbox.agent() end)
    assert.has_error(function() moonbox.agent { model = "openai:x" } end)
    assert.has_error(function() moonbox.agent { toolset = {}, model = 1 } end)
    assert.has_error(function() moonbox.agent { toolset = {}, model = "openai:x", bogus = 1 } end)
    local a, _, code = moonbox.agent { toolset = {}, model = "nope:x" }
    assert.is_nil(a)
    assert.equal("INVALID", code)
  end)
end)
