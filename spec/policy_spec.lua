-- moonbox.policy: tenant policy scripts (issue 4 item 6) and the example tenants.
local moonbox = require "moonbox"
local tmpdir = require "spec.support.tmpdir"

-- Loads run under a far deadline unless a case names its own: the default is 50 ms of wall time,
-- and a busy 2-core CI machine (ASan, coverage) can keep this thread off the CPU that long, so a
-- trivial chunk failed with TIMEOUT. The cases about deadlines set theirs.
local function far_deadline(opts)
  local o = { timeout = 3 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return o
end
local policy = setmetatable({
  load_string = function(source, opts) return moonbox.policy.load_string(source, far_deadline(opts)) end,
  load = function(path, opts) return moonbox.policy.load(path, far_deadline(opts)) end,
}, { __index = moonbox.policy })
local TENANTS = moonbox.paths.presets .. "/tenants/"

local function failed(code, pattern, p, msg, got)
  assert.is_nil(p)
  assert.are.equal(code, got, msg)
  if pattern then assert.matches(pattern, msg) end
  return msg
end

-- A policy with a decide function around `body` (a Lua expression or statements).
local function with_decide(body, opts)
  return assert(policy.load_string(
    "return { ruleset = 'DEFAULT', decide = function(req) " .. body .. " end }", opts))
end

describe("moonbox.policy", function()
  describe("the example tenants", function()
    it("loads the read-only reviewer", function()
      local p = assert(policy.load(TENANTS .. "reviewer.lua"))
      assert.are.equal("reviewer", p.name)
      assert.are.same({ "ls", "read_file", "glob", "grep" }, p.tools)
      assert.are.same({ execute_timeout = 1, max_output = 20000, network = false, pids = 1 }, p.limits)
      assert.is_false(p:has_decide())
      for _, op in ipairs({ "write", "edit", "execute" }) do
        assert.are.equal("deny", (p:check(op, "/src/main.c")))
      end
      assert.are.equal("allow", (p:check("read", "/src/main.c")))
      assert.are.equal("allow", (p:check("grep", "/src/main.c")))
      assert.are.same({ "deny", "Protect sensitive files" }, { p:check("read", "/app/.env") })
      assert.are.same({ "deny", "Reviewers do not read private notes" }, { p:check("read", "/docs/private/plan.md") })
      assert.are.equal("deny", (p:check("grep", "/docs/private/plan.md")))
      local _, msg, code = p:decide{ operation = "read", target = "/a" }
      assert.are.equal("INVALID", code)
      assert.matches("no decide", msg)
      p:close()
    end)

    it("loads the sandboxed coder and runs its decide under the caps", function()
      local p = assert(policy.load(TENANTS .. "coder.lua"))
      assert.are.equal("coder", p.name)
      assert.are.same({ execute_timeout = 120, max_output = 100000, memory = "1G", pids = 256, network = false },
        p.limits)
      assert.are.same({ ["/memories/"] = { backend = "state" } }, p.routes)
      assert.is_true(p:has_decide())
      assert.are.equal("allow", (p:check("write", "/src/main.c")))
      assert.are.equal("allow", (p:check("execute", "make test")))
      assert.are.same({ "deny", "curl needs the network, and this sandbox has none" },
        { p:check("execute", "make && curl -s https://example.com") })
      assert.are.same({ "deny", "the git directory belongs to the host" }, { p:check("edit", "/.git/config") })
      -- the ruleset still speaks where decide has no opinion
      assert.are.same({ "deny", "Protect sensitive files" }, { p:check("read", "/.env") })
      assert.are.equal("deny", (p:check("execute", "rm -rf /")))
      assert.are.same({ "deny", "wget needs the network, and this sandbox has none" },
        { p:decide{ operation = "execute", target = "wget x" } })
      assert.is_nil((p:decide{ operation = "read", target = "/a" }))
      p:close()
      p:close()
    end)
  end)

  describe("what a policy returns", function()
    it("accepts a preset name as the ruleset", function()
      local p = assert(policy.load_string("return { ruleset = 'READONLY' }"))
      assert.are.equal("deny", (p:check("write", "/a")))
      assert.are.same({}, p.limits)
      assert.is_nil(p.tools)
    end)

    it("sees the presets, read-only", function()
      local p = assert(policy.load_string([[
        assert(presets.DEFAULT.read.rules[1].pattern == "**/.env")
        assert(presets.SECRETS_PATTERNS[1] == "**/.env")
        assert(presets.create_ruleset == nil)
        return { ruleset = presets.STRICT }]]))
      assert.are.equal("ask", (p:check("read", "/a")))
    end)

    it("fails the load when it writes to a preset", function()
      failed("INVALID", "read%-only", policy.load_string([[
        presets.DEFAULT.read.default = "deny"
        return { ruleset = presets.DEFAULT }]]))
      failed("INVALID", "read%-only", policy.load_string([[
        table.insert(presets.READONLY.write.rules, { pattern = "**", action = "allow" })
        return { ruleset = "READONLY" }]]))
      -- and the next policy still sees the original
      local p = assert(policy.load_string("return { ruleset = 'DEFAULT' }"))
      assert.are.equal("allow", (p:check("read", "/a")))
    end)

    it("normalizes tools given as a map and routes without a trailing slash", function()
      local p = assert(policy.load_string([[return { ruleset = "DEFAULT",
        tools = { grep = true, ls = true, execute = false },
        routes = { ["/mem"] = { backend = "state", files = { ["/a"] = "x" } } } }]]))
      assert.are.same({ "grep", "ls" }, p.tools)
      assert.are.same({ ["/mem/"] = { backend = "state", files = { ["/a"] = "x" } } }, p.routes)
    end)

    it("collects what the policy printed", function()
      local p = with_decide("print('checking', req.target) return 'allow'")
      p:decide{ operation = "read", target = "/a" }
      assert.are.same({ "checking\t/a" }, p:log())
    end)

    for _, case in ipairs({
      { "return nil", "must return a table" },
      { "return 'DEFAULT'", "must return a table" },
      { "return {}", "must set ruleset" },
      { "return { ruleset = 'NOPE' }", "no preset 'NOPE'" },
      { "return { ruleset = { read = { default = 'maybe' } } }", "invalid action 'maybe'" },
      { "return { ruleset = { delete = {} } }", "unknown operation 'delete'" },
      { "return { ruleset = 'DEFAULT', extra = 1 }", "unknown field 'extra'" },
      { "return { ruleset = 'DEFAULT', limits = { cpu = 1 } }", "limits.cpu is not a known limit" },
      { "return { ruleset = 'DEFAULT', limits = { memory = 'lots' } }", "limits.memory must be" },
      { "return { ruleset = 'DEFAULT', limits = { network = 'no' } }", "limits.network must be a boolean" },
      { "return { ruleset = 'DEFAULT', limits = { pids = -1 } }", "limits.pids must be" },
      { "return { ruleset = 'DEFAULT', tools = { 'ls', 'ls' } }", "lists 'ls' twice" },
      { "return { ruleset = 'DEFAULT', tools = { 'rm -rf' } }", "not a tool name" },
      { "return { ruleset = 'DEFAULT', routes = { ['/a/../b/'] = { backend = 'state' } } }", "not a route prefix" },
      { "return { ruleset = 'DEFAULT', routes = { ['/'] = { backend = 'state' } } }", "not a route prefix" },
      { "return { ruleset = 'DEFAULT', routes = { ['/m/'] = 'state' } }", "must be a table with a backend" },
      { "return { ruleset = 'DEFAULT', tools = { x = print } }", "is a function" },
      { "local t = {} t.t = t return { ruleset = 'DEFAULT', routes = t }", "nests deeper" },
    }) do
      it("refuses garbage: " .. case[1], function()
        failed("INVALID", case[2], policy.load_string(case[1], { name = "tenant.lua" }))
      end)
    end
  end)

  describe("attacks on load", function()
    local cases = {
      { "an endless loop", "while true do end", "TIMEOUT" },
      { "an endless loop under pcall", "while true do pcall(function() while true do end end) end", "TIMEOUT" },
      { "unbounded allocation", "local t = {} while true do t[#t + 1] = ('x'):rep(64) .. #t end", "ENOMEM" },
      { "a huge string.rep", "return ('x'):rep(1e9)", "ENOMEM" },
      { "a catastrophic pattern", "return ('a'):rep(1e5):find('.-.-.-.-b')", "TIMEOUT" },
      { "a forbidden global (os)", "os.execute('touch /tmp/pwned') return {}", "INVALID", "'os' is not available" },
      { "a forbidden global (io)", "io.open('/etc/passwd') return {}", "INVALID", "'io' is not available" },
      { "load", "return load('return 1')()", "INVALID", "'load' is not available" },
      { "require", "return require('os')", "INVALID", "'require' is not available" },
      { "debug", "return debug.getregistry()", "INVALID", "'debug' is not available" },
      { "setmetatable", "setmetatable(presets, nil) return {}", "INVALID", "'setmetatable' is not available" },
      { "rawset", "rawset(presets, 'DEFAULT', {}) return {}", "INVALID", "'rawset' is not available" },
      { "collectgarbage", "collectgarbage('stop') return {}", "INVALID", "'collectgarbage' is not available" },
      { "string.dump", "return string.dump(print)", "INVALID" },
      { "an error", "error('the policy is broken')", "INVALID", "the policy is broken" },
      { "a syntax error", "return {", "INVALID", "tenant.lua:1:" },
    }
    for _, c in ipairs(cases) do
      it("contains " .. c[1], function()
        -- A far deadline for the memory cases so the cap, not the clock, stops them (ASan is slow).
        local opts = { name = "tenant.lua", timeout = c[3] == "TIMEOUT" and 0.05 or 3 }
        failed(c[3], c[4], policy.load_string(c[2], opts))
      end)
    end

    it("refuses a bytecode file", function()
      local dir, remove = tmpdir.make()
      local file = dir .. "/bad.lua"
      local f = assert(io.open(file, "wb"))
      f:write(string.dump(function() return { ruleset = "PERMISSIVE" } end))
      f:close()
      failed("INVALID", "bytecode", policy.load(file))
      remove()
    end)

    it("reports a missing file", function()
      failed("ENOENT", "cannot open", policy.load("/nonexistent/tenant.lua"))
    end)

    it("honours the timeout and memory options", function()
      local t0 = moonbox.monotonic()
      failed("TIMEOUT", "deadline of 200 ms", policy.load_string("while true do end", { timeout = 0.2 }))
      assert.is_true(moonbox.monotonic() - t0 >= 0.19)
      failed("ENOMEM", "256 KiB", policy.load_string("return ('x'):rep(300000)", { memory = 256 * 1024, timeout = 3 }))
    end)

    it("keeps the host running after many failed loads", function()
      for _ = 1, 10 do
        assert.is_nil(policy.load_string("local t = {} while true do t[#t + 1] = {} end", { timeout = 3 }))
        assert.is_nil(policy.load_string("return os"))
      end
      collectgarbage()
      assert.is_truthy(policy.load_string("return { ruleset = 'DEFAULT' }"))
    end)
  end)

  describe("decide narrows, never widens", function()
    it("keeps the ruleset's deny when decide allows", function()
      local p = with_decide("return 'allow', 'decide says yes'")
      assert.same({ "deny", "Protect sensitive files" }, { p:check("read", "/app/.env") })
      assert.equal("allow", (p:check("read", "/app/main.c")))
      p:close()
    end)

    it("turns an allow into ask or deny", function()
      local p = with_decide("if req.target:find('^/tmp/') then return 'ask', 'scratch space' end "
        .. "if req.target:find('^/vendor/') then return 'deny', 'vendored code' end")
      assert.same({ "ask", "scratch space" }, { p:check("read", "/tmp/x") })
      assert.same({ "deny", "vendored code" }, { p:check("read", "/vendor/lib.c") })
      assert.equal("allow", (p:check("read", "/src/a.c")))
      p:close()
    end)
  end)

  describe("gate", function()
    local p, inner, g
    before_each(function()
      p = assert(policy.load_string([[
        local function decide(req)
          if req.target:match("^/%.git/") or req.target:match("^/%.git$") then
            return "deny", "git belongs to the host"
          end
          if req.target:match("^/tmp/") then return "ask", "scratch space" end
          if req.operation == "execute" and req.target:find("curl") then return "deny", "no network" end
        end
        return { ruleset = "PERMISSIVE", decide = decide }]]))
      inner = moonbox.state_backend{ files = { ["/.git/HEAD"] = "ref: main\n", ["/src/a.c"] = "main\n",
                                               ["/tmp/t"] = "main\n" } }
      g = p:gate(inner)
    end)
    after_each(function() p:close() end)

    it("refuses what decide denies before the backend is called", function()
      failed("DENIED", "git belongs to the host", g:write("/.git/HEAD", "pwned"))
      assert.equal("ref: main\n", inner:read_bytes("/.git/HEAD"))
      failed("DENIED", "Permission denied for read on '/.git/HEAD': git belongs to the host", g:read("/.git/HEAD"))
      failed("DENIED", nil, g:read_bytes("/.git/HEAD"))
      failed("DENIED", nil, g:edit("/.git/HEAD", "main", "evil"))
      assert.same({ path = "/src/b.c" }, g:write("/src/b.c", "x\n"))
      assert.equal("main\n", g:read_bytes("/src/a.c"))
      assert.is_true(g:exists("/.git/HEAD"))
    end)

    it("hides denied entries from ls, glob and grep", function()
      assert.same({ "/src/a.c", "/tmp/t" }, (function()
        local out = {}
        for i, m in ipairs(g:grep("main")) do out[i] = m.path end
        return out
      end)())
      for _, e in ipairs(g:glob("**")) do assert.is_nil(e.path:match("^/%.git")) end
      for _, e in ipairs(g:ls("/")) do assert.are_not.equal("/.git", e.path) end
      assert.equal(3, #inner:glob("**"))
    end)

    it("sends an ask to the callback, else follows the fallback", function()
      failed("DENIED", "approval required", g:read("/tmp/t"))
      failed("ASK", "Permission required for read on '/tmp/t': scratch space",
        p:gate(inner, { ask_fallback = "error" }):read("/tmp/t"))
      local asked
      local yes = p:gate(inner, { ask = function(op, target, reason)
        asked = { op, target, reason }
        return true
      end })
      assert.equal("main\n", yes:read_bytes("/tmp/t"))
      assert.same({ "read", "/tmp/t", "scratch space" }, asked)
    end)

    it("gates a sandbox's commands and forwards everything else", function()
      local fake = moonbox.state_backend{}
      local sb = setmetatable({ id = "sb-1" }, { __index = function(_, k)
        if k == "execute" then return function(_, cmd) return { output = "ran " .. cmd, exit_code = 0 } end end
        if k == "stop" then return function() return true end end
        local v = fake[k]
        if type(v) == "function" then return function(_, ...) return v(fake, ...) end end
        return v
      end })
      local gs = p:gate(sb)
      assert.equal("ran make", gs:execute("make").output)
      failed("DENIED", "no network", gs:execute("curl -s x"))
      assert.equal("sb-1", gs.id)
      assert.is_true(gs:stop())
    end)

    it("is the backend itself for a policy without decide", function()
      local plain = assert(policy.load_string("return { ruleset = 'DEFAULT' }"))
      assert.equal(inner, plain:gate(inner))
    end)
  end)

  describe("in a workspace (moonbox agent / mcp --policy)", function()
    it("mounts the policy's routes and applies its decide under the guard", function()
      local dir, remove = tmpdir.make()
      local ws = assert(require("moonbox.workspace").open{ root = dir, policy = TENANTS .. "coder.lua",
                                                           sandbox = "none" })
      assert.equal("coder", ws.policy.name)
      local b = ws.backend
      assert.same({ path = "/memories/plan.md" }, b:write("/memories/plan.md", "step 1\n"))
      assert.is_nil(io.open(dir .. "/memories/plan.md")) -- in the state route, not on disk
      failed("DENIED", "the git directory belongs to the host", b:write("/.git/config", "x"))
      failed("DENIED", "Protect sensitive files", b:read("/.env"))
      assert(b:write("/src/main.c", "int main;\n"))
      local names = {}
      for _, e in ipairs(b:ls("/")) do names[#names + 1] = e.name end
      assert.same({ "memories", "src" }, names)
      ws:close()
      remove()
    end)
  end)

  describe("routes", function()
    it("mounts the coder's state route over a default", function()
      local p = assert(policy.load(TENANTS .. "coder.lua"))
      local default = moonbox.state_backend{}
      local b = assert(p:composite(default))
      assert.same({ path = "/memories/plan.md" }, b:write("/memories/plan.md", "step 1\n"))
      assert.is_false(default:exists("/memories/plan.md"))
      assert.same({ "memories" }, (function()
        local n = {}
        for i, e in ipairs(b:ls("/")) do n[i] = e.name end
        return n
      end)())
      p:close()
    end)

    it("seeds a state route with the files the policy gives", function()
      local p = assert(policy.load_string([[return { ruleset = "DEFAULT",
        routes = { ["/kb/"] = { backend = "state", files = { ["/faq.md"] = "Q?\n" } } } }]]))
      assert.equal("Q?\n", assert(p:composite(moonbox.state_backend{})):read_bytes("/kb/faq.md"))
    end)

    it("refuses a backend the host does not offer, and uses the host's maker when it does", function()
      local p = assert(policy.load_string([[return { ruleset = "DEFAULT",
        routes = { ["/etc/"] = { backend = "local", root = "/etc" } } }]]))
      failed("INVALID", "does not offer", p:composite(moonbox.state_backend{}))
      local seen
      local b = assert(p:composite(moonbox.state_backend{}, { ["local"] = function(spec, prefix)
        seen = { spec.root, prefix }
        return moonbox.state_backend{}
      end }))
      assert.same({ "/etc", "/etc/" }, seen)
      assert(b:write("/etc/x", "1"))
    end)
  end)

  describe("attacks through decide", function()
    it("stops a decide that loops, denies the check, and keeps working", function()
      local p = with_decide("if req.target == '/spin' then while true do end end return 'allow', 'fine'",
        { timeout = 0.5 })
      local a, msg, code = p:decide{ operation = "read", target = "/spin" }
      assert.is_nil(a)
      assert.are.equal("TIMEOUT", code, msg)
      local action, reason = p:check("read", "/spin")
      assert.are.equal("deny", action)
      assert.matches("deadline", reason)
      assert.are.same({ "allow", "fine" }, { p:decide{ operation = "read", target = "/ok" } })
      p:close()
    end)

    it("stops a decide that allocates without bound", function()
      local p = with_decide("local t = {} while true do t[#t + 1] = {} end", { timeout = 3 })
      failed("ENOMEM", nil, p:decide{ operation = "read", target = "/a" })
      p:close()
    end)

    it("stops a decide with a catastrophic pattern", function()
      local p = with_decide("return req.target:find('.-.-.-.-b') and 'allow' or 'deny'", { timeout = 0.5 })
      failed("TIMEOUT", nil, p:decide{ operation = "read", target = ("a"):rep(100000) })
      p:close()
    end)

    for _, c in ipairs({
      { "return 'yes'", "decide returned \"yes\"" },
      { "return print", "is a function" },
      { "return 'allow', 42", "reason must be a string" },
      { "error('nope')", "nope" },
      { "return os.time()", "'os' is not available" },
      { "presets.DEFAULT.default = 'allow' return 'allow'", "read%-only" },
    }) do
      it("refuses a decide that " .. c[1], function()
        local p = with_decide(c[1])
        failed("INVALID", c[2], p:decide{ operation = "read", target = "/a" })
        assert.are.equal("deny", (p:check("read", "/a")))
        p:close()
      end)
    end

    it("keeps state between calls, inside the cap", function()
      local p = assert(policy.load_string([[
        local calls = 0
        function decide(req)
          calls = calls + 1
          if calls > 2 then return "deny", "rate limited after 2 checks" end
        end
        return { ruleset = "PERMISSIVE" }]]))
      assert.are.equal("allow", (p:check("read", "/a")))
      assert.are.equal("allow", (p:check("read", "/a")))
      assert.are.same({ "deny", "rate limited after 2 checks" }, { p:check("read", "/a") })
      p:close()
    end)

    it("raises on misuse", function()
      local p = with_decide("return 'allow'")
      assert.has_error(function() p:decide("read") end)
      assert.has_error(function() p:decide{ f = print } end)
      p:close()
      assert.has_error(function() p:decide{ operation = "read", target = "/a" } end)
      assert.has_error(function() policy.load_string("return {}", { memroy = 1 }) end)
      assert.has_error(function() policy.load(42) end)
    end)
  end)
end)
