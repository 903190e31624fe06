-- `moonbox agent`: the command line against the loopback fake LLM, in a temporary workspace.
local fake_llm = require "spec.support.fake_llm"

local exe = os.getenv("MOONBOX_EXE") or "build/moonbox"

local files = require "spec.support.tmpdir"
local function tmpdir() return (files.make()) end
local read_file = files.read

-- runs the CLI with stdin from /dev/null; returns stdout, stderr, exit status
local function run(args, env)
  local errf = os.tmpname()
  local cmd = string.format("%s %s agent %s </dev/null 2>%s; echo \"rc=$?\"", env or "", exe, args, errf)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  local stderr = read_file(errf)
  os.remove(errf)
  local body, rc = out:match("^(.-)rc=(%d+)\n$")
  return body, stderr, tonumber(rc)
end

describe("moonbox agent (CLI)", function()
  local srv, root
  setup(function() srv = fake_llm.start() end)
  teardown(function() srv:close() end)
  before_each(function()
    srv:reset()
    root = tmpdir()
  end)
  after_each(function() os.execute("rm -rf " .. root) end)

  local function model() return "openai-compatible:fake@" .. srv.url .. "/v1" end

  it("streams text, shows tool calls and prints usage", function()
    local f = assert(io.open(root .. "/hello.txt", "w"))
    f:write("hi there\n")
    f:close()
    srv:script {
      { text = "Let me look.", tool_calls = { { name = "read_file", arguments = { path = "/hello.txt" } } },
        usage = { input = 5, output = 3 } },
      { tool_calls = { { name = "write_file", arguments = { path = "/out.txt", content = "done\n" } } } },
      { text = "The file says hi.", usage = { input = 7, output = 4 } },
    }
    local out, err, rc = run(string.format("--model '%s' --root %s --sandbox local --preset permissive "
      .. "'read hello.txt'", model(), root))
    assert.equal(0, rc, err)
    assert.matches("Let me look.", out, 1, true)
    assert.matches("The file says hi.", out, 1, true)
    assert.matches("→ read_file", err, 1, true)
    assert.matches("✓", err, 1, true)
    assert.matches("usage: 3 turns, 3 requests, 12 input tokens, 7 output tokens", err, 1, true)
    assert.equal("done\n", read_file(root .. "/out.txt"))
  end)

  it("denies an 'ask' permission when stdin is not a terminal", function()
    srv:script {
      { tool_calls = { { name = "write_file", arguments = { path = "/new.txt", content = "x" } } } },
      { text = "ok" },
    }
    local _, err, rc = run(string.format("--model '%s' --root %s --sandbox local 'write it'", model(), root))
    assert.equal(0, rc, err)
    assert.matches("needs approval and stdin is not a terminal: denied", err, 1, true)
    assert.matches("✗", err, 1, true)
    assert.is_nil(read_file(root .. "/new.txt"))
  end)

  it("says exactly what to set without a model or key", function()
    local _, err, rc = run("'hello'", "env -u OPENAI_API_KEY -u ANTHROPIC_API_KEY -u MOONBOX_MODEL")
    assert.equal(1, rc)
    assert.matches("OPENAI_API_KEY", err, 1, true)
    assert.matches("ANTHROPIC_API_KEY", err, 1, true)
    assert.matches("openai-compatible:", err, 1, true)
    _, err, rc = run("--model openai:gpt-4.1 hello", "env -u OPENAI_API_KEY")
    assert.equal(1, rc)
    assert.matches("set OPENAI_API_KEY", err, 1, true)
  end)

  it("reports usage errors with status 2", function()
    local _, err, rc = run("--bogus x")
    assert.equal(2, rc)
    assert.matches("unknown option --bogus", err, 1, true)
    _, err, rc = run("--model")
    assert.equal(2, rc)
    assert.matches("needs a value", err, 1, true)
    _, _, rc = run("")
    assert.equal(2, rc)
    _, err, rc = run(string.format("--model '%s' --root %s --preset nope x", model(), root))
    assert.equal(1, rc)
    assert.matches("unknown preset 'nope'", err, 1, true)
  end)

  it("stops at --max-turns with status 3", function()
    srv:auto { turns = 50, tool = "ls", arguments = { path = "/" } }
    local _, err, rc = run(string.format("--model '%s' --root %s --sandbox none --max-turns 2 loop",
      model(), root))
    assert.equal(3, rc, err)
    assert.matches("stopped at --max-turns", err, 1, true)
  end)

  it("fails with the API's message", function()
    srv:script { { status = 400, error = "model not found" } }
    local _, err, rc = run(string.format("--model '%s' --root %s --sandbox none x", model(), root))
    assert.equal(1, rc)
    assert.matches("model not found", err, 1, true)
  end)
end)
