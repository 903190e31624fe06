-- moonbox.session_manager over Lua-table sandboxes and a real local_sandbox (reference §6).
local moonbox = require "moonbox"

-- a sandbox written in Lua: counts its lifecycle calls; start can be slow or fail
local function fake_sandbox(id, opts)
  opts = opts or {}
  local sb = { id = id, started = 0, stopped = 0, alive = true }
  function sb:start()
    self.started = self.started + 1
    if opts.delay then moonbox.sleep(opts.delay) end
    if opts.fail then return nil, "no room for " .. id, "UNSUPPORTED" end
    return true
  end
  function sb:stop() self.stopped = self.stopped + 1; self.alive = false end
  function sb:is_alive() return self.alive end
  return sb
end

describe("moonbox.session_manager", function()
  it("creates one sandbox per id and reuses it", function()
    local made = {}
    local m = moonbox.session_manager { factory = function(id)
      made[#made + 1] = id
      return fake_sandbox(id)
    end }
    local a = assert(m:get_or_create("alice"))
    assert.equal(a, m:get_or_create("alice"))
    local b = assert(m:get_or_create("bob"))
    assert.is_not.equal(a, b)
    assert.same({ "alice", "bob" }, made)
    assert.equal(2, m:count())
    assert.is_true(m:has("alice"))
    local copy = m:sessions()
    copy.alice = nil
    assert.is_true(m:has("alice"))
    assert.equal(1, a.started)
  end)

  it("shares one sandbox between concurrent calls for an id", function()
    local made = 0
    local m = moonbox.session_manager { factory = function(id)
      made = made + 1
      return fake_sandbox(id, { delay = 0.2 })
    end }
    local tasks = {}
    for i = 1, 5 do tasks[i] = moonbox.spawn(function() return m:get_or_create("same") end) end
    local first = tasks[1]:join()
    for i = 2, 5 do assert.equal(first, tasks[i]:join()) end
    assert.equal(1, made)
    -- different ids start concurrently: 5 slow starts take about one start's time (serial: 1 s;
    -- 0.2 s starts leave room for a busy machine between one and five)
    local t0 = moonbox.now()
    for i = 1, 5 do tasks[i] = moonbox.spawn(function() return m:get_or_create("u" .. i) end) end
    for i = 1, 5 do assert.truthy(tasks[i]:join()) end
    assert.is_true(moonbox.now() - t0 < 0.6)
  end)

  it("replaces a dead sandbox", function()
    local m = moonbox.session_manager { factory = function(id) return fake_sandbox(id) end }
    local a = assert(m:get_or_create("x"))
    a.alive = false
    local b = assert(m:get_or_create("x"))
    assert.is_not.equal(a, b)
    assert.equal(1, a.stopped)
    assert.equal(1, m:count())
  end)

  it("enforces max_sessions with the reference's message", function()
    local m = moonbox.session_manager { max_sessions = 2, factory = function(id) return fake_sandbox(id) end }
    assert.truthy(m:get_or_create("a"))
    assert.truthy(m:get_or_create("b"))
    local sb, msg, code = m:get_or_create("c")
    assert.is_nil(sb)
    assert.equal("SESSION_LIMIT", code)
    assert.equal("Session limit of 2 reached. Release an idle session before opening another.", msg)
    assert.truthy(m:get_or_create("a")) -- existing ones still come back
    assert.is_true(m:release("a"))
    assert.truthy(m:get_or_create("c"))
  end)

  it("does not register a sandbox whose start fails", function()
    local sbs = {}
    local m = moonbox.session_manager { factory = function(id)
      sbs[id] = fake_sandbox(id, { fail = true })
      return sbs[id]
    end }
    local sb, msg, code = m:get_or_create("z")
    assert.is_nil(sb)
    assert.equal("UNSUPPORTED", code)
    assert.equal("no room for z", msg)
    assert.equal(0, m:count())
    assert.equal(1, sbs.z.stopped)
    -- a raising factory is a failure, not a crash
    local m2 = moonbox.session_manager { factory = function() error("factory broke") end }
    sb, msg, code = m2:get_or_create("q")
    assert.is_nil(sb)
    assert.equal("EIO", code)
    assert.matches("factory broke", msg, 1, true)
  end)

  it("releases, calling on_release", function()
    local released = {}
    local m = moonbox.session_manager { factory = function(id) return fake_sandbox(id) end,
      on_release = function(id) released[#released + 1] = id end }
    local a = m:get_or_create("a")
    assert.is_true(m:release("a"))
    assert.is_false(m:release("a"))
    assert.is_false(m:release("never"))
    assert.equal(1, a.stopped)
    assert.same({ "a" }, released)
  end)

  it("cleans up idle sessions by last activity", function()
    local m = moonbox.session_manager { idle_timeout = 0.2, factory = function(id) return fake_sandbox(id) end }
    m:get_or_create("old")
    m:get_or_create("busy")
    moonbox.sleep(0.25)
    m:get_or_create("busy") -- touched
    assert.equal(1, m:cleanup_idle())
    assert.is_false(m:has("old"))
    assert.is_true(m:has("busy"))
    assert.equal(1, m:cleanup_idle(0)) -- an explicit max_idle wins
    -- a sandbox's own last_activity and idle_timeout are used when it has them
    local own = fake_sandbox("own")
    own.last_activity = moonbox.now() - 100
    own.idle_timeout = 1000
    local m2 = moonbox.session_manager { idle_timeout = 1, factory = function() return own end }
    m2:get_or_create("own")
    assert.equal(0, m2:cleanup_idle())
  end)

  it("runs a cleanup loop as a task and shuts everything down concurrently", function()
    local m = moonbox.session_manager { idle_timeout = 0.05, factory = function(id)
      local sb = fake_sandbox(id)
      function sb:stop() moonbox.sleep(0.2); self.stopped = self.stopped + 1 end
      return sb
    end }
    m:get_or_create("a")
    local loop = m:start_cleanup_loop(0.05)
    assert.equal(loop, m:start_cleanup_loop(0.05)) -- idempotent
    moonbox.sleep(0.3)
    assert.is_false(m:has("a"))
    m:stop_cleanup_loop()
    for i = 1, 5 do m:get_or_create("s" .. i) end
    local t0 = moonbox.now()
    assert.equal(5, m:shutdown())
    assert.is_true(moonbox.now() - t0 < 0.6) -- five 0.2 s stops at once (serial: 1 s)
    assert.equal(0, m:count())
  end)

  it("works with real local sandboxes", function()
    local root = os.tmpname()
    os.remove(root)
    local m = moonbox.session_manager { factory = function(id)
      return moonbox.local_sandbox { root = root .. "/" .. id }
    end }
    local a = assert(m:get_or_create("alice"))
    local r = assert(a:execute("echo hello > f.txt && cat f.txt"))
    assert.equal(0, r.exit_code)
    assert.equal("hello\n", a:read_bytes("/f.txt"))
    assert.equal(1, m:shutdown())
    os.execute("rm -rf " .. root)
  end)

  it("raises on misuse", function()
    assert.has_error(function() moonbox.session_manager { bogus = 1 } end)
    assert.has_error(function() moonbox.session_manager { max_sessions = 0 } end)
    local m = moonbox.session_manager { factory = function(id) return fake_sandbox(id) end }
    assert.has_error(function() m:get_or_create(nil) end)
    assert.has_error(function() m:start_cleanup_loop(-1) end)
  end)
end)
