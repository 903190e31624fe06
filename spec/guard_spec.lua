-- moonbox.guard: a ruleset enforced over any backend or sandbox (reference §3.5, §8.5, §9.4).
local moonbox = require "moonbox"
local lua_backend = require "spec.support.lua_backend"

local P = moonbox.permissions.presets

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. d))
  return d
end

local function writefile(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function readfile(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function paths(list)
  local out = {}
  for _, e in ipairs(list) do out[#out + 1] = e.path end
  table.sort(out)
  return out
end

local function state(files)
  return moonbox.state_backend { files = files or {
    ["/src/main.c"] = "int main(void) { return 0; }\n",
    ["/src/.env"] = "TOKEN=SECRET\n",
    ["/docs/readme.md"] = "return to sender\n",
  } }
end

describe("moonbox.guard over a backend", function()
  it("reads what is allowed and refuses what is denied, naming the rule", function()
    local g = moonbox.guard(state(), P.DEFAULT)
    assert.matches("return 0", g:read("/src/main.c"))
    assert.same({ nil, "Permission denied for read on '/src/.env': Protect sensitive files", "DENIED" },
      { g:read("/src/.env") })
    assert.same({ nil, "Permission denied for read on '/src/.env': Protect sensitive files", "DENIED" },
      { g:read_bytes("/src/.env") })
    assert.equal("int main(void) { return 0; }\n", g:read_bytes("/src/main.c"))
  end)

  it("uses the operation default when no rule matches", function()
    local g = moonbox.guard(state(), { read = { default = "deny" } })
    local ok, msg, code = g:read("/src/main.c")
    assert.is_nil(ok)
    assert.equal("DENIED", code)
    assert.matches("Permission denied", msg, 1, true)
  end)

  it("follows ask_fallback when there is no ask callback", function()
    local b = state()
    local deny = moonbox.guard(b, P.STRICT, { ask_fallback = "deny" })
    assert.same({ nil, "Permission denied for read on '/src/main.c' (approval required)", "DENIED" },
      { deny:read("/src/main.c") })
    local err = moonbox.guard(b, P.STRICT)
    assert.same({ nil, "Permission required for read on '/src/main.c'", "ASK" }, { err:read("/src/main.c") })
  end)

  it("asks the callback, and does nothing when it says no", function()
    local asked = {}
    local answer = false
    local b = state()
    local g = moonbox.guard(b, P.DEFAULT, { ask = function(op, target)
      asked[#asked + 1] = op .. " " .. target
      return answer
    end })
    assert.same({ nil, "Permission denied for write on '/new.txt'", "DENIED" }, { g:write("/new.txt", "x") })
    assert.is_false(b:exists("/new.txt"))
    answer = true
    assert.truthy(g:write("/new.txt", "x"))
    assert.is_true(b:exists("/new.txt"))
    assert.same({ "write /new.txt", "write /new.txt" }, asked)
  end)

  it("writes and edits nothing when denied", function()
    local b = state()
    local g = moonbox.guard(b, P.PERMISSIVE)
    assert.same({ nil, "Permission denied for write on '/app/.env': Protect sensitive and system files",
      "DENIED" }, { g:write("/app/.env", "A=1") })
    assert.is_false(b:exists("/app/.env"))
    local ok, _, code = g:edit("/src/.env", "SECRET", "x")
    assert.is_nil(ok)
    assert.equal("DENIED", code)
    assert.equal("TOKEN=SECRET\n", b:read_bytes("/src/.env"))
    assert.truthy(g:write("/src/new.c", "x"))
    assert.equal(1, g:edit("/src/new.c", "x", "y").occurrences)
    assert.equal("y", b:read_bytes("/src/new.c"))
  end)

  it("hides denied entries from ls and glob, and lists nothing under a denied base", function()
    local rs = { default = "ask",
      ls = { default = "allow", rules = { { pattern = "**/.env", action = "deny" },
        { pattern = "/secret", action = "deny" } } },
      glob = { default = "allow", rules = { { pattern = "/src/**", action = "deny" } } } }
    local b = state { ["/src/a.c"] = "", ["/src/.env"] = "", ["/secret/k"] = "", ["/b.c"] = "" }
    local g = moonbox.guard(b, rs)
    assert.same({ "/src/a.c" }, paths(g:ls("/src")))
    assert.same({}, g:ls("/secret"))
    assert.same({ "/b.c", "/src" }, paths(g:ls("/")))
    assert.same({ "/b.c", "/secret/k" }, paths(g:glob("**/*")))
    assert.same({}, g:glob("*", "/src/x"))
    -- a global "ask" still lists (only an explicit deny hides)
    local askall = moonbox.guard(b, { default = "ask" })
    assert.equal(#b:ls("/src"), #askall:ls("/src"))
  end)

  it("drops grep matches from files denied for grep or read, and refuses a denied base", function()
    local b = state { ["/a.txt"] = "needle\n", ["/k/.env"] = "needle\n", ["/g/x.txt"] = "needle\n" }
    local g = moonbox.guard(b, { default = "allow",
      read = { rules = { { pattern = "**/.env", action = "deny", description = "Protect env files" } } },
      grep = { rules = { { pattern = "/g/**", action = "deny", description = "No grep here" } } } })
    assert.same({ "/a.txt" }, paths(g:grep("needle")))
    assert.same({ nil, "Permission denied for grep on '/g/x.txt': No grep here", "DENIED" },
      { g:grep("needle", { path = "/g/x.txt" }) })
    assert.same({ "/a.txt" }, paths(g:grep("needle", { path = "/" })))
  end)

  it("drops files denied for read from a files() export", function()
    local g = moonbox.guard(state(), P.DEFAULT)
    local all = g:files()
    assert.truthy(all["/src/main.c"])
    assert.is_nil(all["/src/.env"])
    assert.is_nil(moonbox.guard(lua_backend.new {}, P.DEFAULT).files)
  end)

  it("passes exists and failures through unchanged", function()
    local g = moonbox.guard(state(), P.DEFAULT)
    assert.is_true(g:exists("/src/.env")) -- not filtered, as the reference
    local ok, msg, code = g:read("/missing")
    assert.is_nil(ok)
    assert.equal("ENOENT", code)
    assert.matches("no such file", msg, 1, true)
  end)

  it("wraps a Lua-table backend the same way and forwards unknown methods", function()
    local b = lua_backend.new { files = { ["/x/.env"] = "A=1\n", ["/x/a"] = "a\n" } }
    function b.custom(self, v) return self == b and v end
    b.label = "mine"
    local g = moonbox.guard(b, P.DEFAULT)
    assert.is_nil((g:read("/x/.env")))
    assert.matches("a", g:read("/x/a"))
    assert.equal(42, g:custom(42))
    assert.equal("mine", g.label)
    assert.is_nil(g.execute) -- the backend cannot run commands, so neither can the guard
    assert.is_nil(g.no_such_method)
    assert.equal(b, g.backend)
    assert.equal("ask", g.permissions.default)
    assert.matches("^moonbox.guard.Guard%(", tostring(g))
  end)

  it("lets the ask callback wait inside a task", function()
    local b = state()
    local g = moonbox.guard(b, P.DEFAULT, { ask = function(op, target)
      moonbox.sleep(0.01) -- yields to the loop inside a task
      return op == "write" and target == "/later.txt"
    end })
    local t = moonbox.spawn(function() return g:write("/later.txt", "x") end)
    assert.truthy(t:join())
    assert.is_true(b:exists("/later.txt"))
  end)

  it("raises on misuse", function()
    assert.has_error(function() moonbox.guard(nil, P.DEFAULT) end,
      "guard: backend must be a table or userdata, got nil")
    assert.has_error(function() moonbox.guard(state()) end)
    assert.has_error(function() moonbox.guard(state(), P.DEFAULT, { asks = print }) end,
      "guard: unknown option 'asks' (expected ask, ask_fallback, cwd, root, home)")
    assert.has_error(function() moonbox.guard(state(), { reed = {} }) end)
    local g = moonbox.guard(state(), P.DEFAULT)
    assert.has_error(function() g:read(42) end, "guard: read: path must be a string, got number")
  end)
end)

describe("moonbox.guard over a sandbox", function()
  local dir, sb, g

  before_each(function()
    dir = tmpdir()
    assert(os.execute("mkdir -p " .. dir .. "/restricted " .. dir .. "/ok " .. dir .. "/out"))
    writefile(dir .. "/restricted/secret.txt", "SECRET\n")
    writefile(dir .. "/ok/a.txt", "fine\n")
    sb = assert(moonbox.local_sandbox { root = dir })
    g = moonbox.guard(sb, {
      default = "allow",
      read = { rules = { { pattern = "/restricted/**", action = "deny", description = "No peeking" } } },
      write = { rules = { { pattern = "/out/**", action = "deny" } } },
      execute = { rules = { { pattern = "rm *", action = "deny", description = "Block rm commands" } } },
    }, { root = sb.root })
  end)

  after_each(function()
    sb:kill_all()
    os.execute("rm -rf " .. dir)
  end)

  it("runs what is allowed", function()
    local r = g:execute("echo hello")
    assert.equal("hello\n", r.output)
    assert.equal(0, r.exit_code)
  end)

  it("checks the command rules first, on every simple command", function()
    assert.same({ nil, "Permission denied for execute on 'rm notes.txt': Block rm commands", "DENIED" },
      { g:execute("rm notes.txt") })
    -- `*` never crosses `/`, so the path check is what stops this one
    assert.same({ nil, "Permission denied: command references '/restricted/secret.txt', which is denied "
      .. "for read", "DENIED" }, { g:execute("rm restricted/secret.txt") })
    assert.same({ nil, "Permission denied for execute on 'echo a; sudo rm x': Block rm commands", "DENIED" },
      { g:execute("echo a; sudo rm x") })
  end)

  it("refuses commands that name a denied path, however it is spelled", function()
    for _, cmd in ipairs {
      "cat restricted/secret.txt",
      "cat /restricted/secret.txt",
      "cat " .. sb.root .. "/restricted/secret.txt",
      "cat ok/../restricted/secret.txt",
      "cat ./restricted//secret.txt",
      "grep --file=restricted/secret.txt x",
      "cat 'restricted/secret.txt",
      "echo $(cat restricted/secret.txt)",
      "cat < restricted/secret.txt",
      "X=restricted/secret.txt sh -c 'cat $X'",
    } do
      local ok, msg, code = g:execute(cmd)
      assert.is_nil(ok, cmd)
      assert.equal("DENIED", code, cmd)
      assert.matches("^Permission denied: command references '.*', which is denied for read$", msg)
      assert.not_matches("SECRET", msg)
    end
    local ok, msg = g:execute("echo x > out/file.txt")
    assert.is_nil(ok)
    assert.equal("Permission denied: command references '/out/file.txt', which is denied for write", msg)
    assert.is_nil(readfile(dir .. "/out/file.txt"))
  end)

  it("finds the sandbox's root by itself", function()
    local h = moonbox.guard(sb, { default = "allow",
      read = { rules = { { pattern = "/restricted/**", action = "deny" } } } })
    assert.is_nil((h:execute("cat " .. sb.root .. "/restricted/secret.txt")))
    assert.truthy(h:execute("cat " .. sb.root .. "/ok/a.txt"))
  end)

  it("expands ~ in command paths", function()
    local h = moonbox.guard(sb, { default = "allow",
      read = { rules = { { pattern = "/home/agent/.ssh/**", action = "deny" } } } }, { home = "/home/agent" })
    assert.is_nil((h:execute("cat ~/.ssh/id_rsa")))
    assert.truthy(h:execute("echo ~"))
  end)

  it("guards background commands too and passes the rest through", function()
    assert.same({ nil, "Permission denied for execute on 'rm x': Block rm commands", "DENIED" },
      { g:spawn("rm x") })
    assert.is_nil((g:spawn("cat restricted/secret.txt")))
    local id = assert(g:spawn("sleep 5"))
    assert.equal(1, #g:list())
    assert.truthy(g:kill(id))
    assert.equal(sb.id, g.id)
    assert.equal(sb.root, g.root)
  end)

  it("applies file rules to the sandbox's files", function()
    assert.is_nil((g:read("/restricted/secret.txt")))
    assert.matches("fine", g:read("/ok/a.txt"))
  end)

  it("asks for an ask command and runs it only when allowed", function()
    local answer
    local h = moonbox.guard(sb, P.DEFAULT, { ask = function() return answer end, root = sb.root })
    answer = false
    assert.same({ nil, "Permission denied for execute on 'echo hi'", "DENIED" }, { h:execute("echo hi") })
    answer = true
    assert.equal("hi\n", h:execute("echo hi").output)
    assert.is_nil((h:execute("sudo rm -rf /"))) -- denied before anyone is asked
  end)
end)

describe("moonbox.guarding", function()
  it("wraps once: not without a ruleset, not what is guarded already", function()
    local b = state()
    assert.equal(b, moonbox.guarding(b, nil))
    local g = moonbox.guarding(b, P.DEFAULT)
    assert.not_equal(b, g)
    assert.equal("ask", g.permissions.default)
    assert.equal(g, moonbox.guarding(g, P.PERMISSIVE))
  end)
end)

describe("moonbox.local_backend{permissions = ...}", function()
  it("is guarded with the ruleset, and plain without one", function()
    local dir = tmpdir()
    writefile(dir .. "/.env", "SECRET=1\n")
    writefile(dir .. "/a.txt", "a\n")
    local b = assert(moonbox.local_backend { root = dir, permissions = P.DEFAULT, ask_fallback = "deny" })
    assert.equal("ask", b.permissions.default)
    assert.same({ nil, "Permission denied for read on '/.env': Protect sensitive files", "DENIED" },
      { b:read("/.env") })
    assert.matches("a", b:read("/a.txt"))
    assert.same({ nil, "Permission denied for write on '/b.txt' (approval required)", "DENIED" },
      { b:write("/b.txt", "x") })
    assert.is_nil(readfile(dir .. "/b.txt"))
    local plain = moonbox.local_backend { root = dir }
    assert.is_nil(plain.permissions)
    assert.equal("SECRET=1\n", plain:read_bytes("/.env"))
    assert.has_error(function() moonbox.local_backend { root = dir, ask = print } end,
      "local_backend: ask and ask_fallback need permissions (a ruleset)")
    os.execute("rm -rf " .. dir)
  end)
end)
