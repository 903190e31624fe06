-- The event loop and tasks: spawn/join/cancel/status, sleep ordering, errors, fd waits, and
-- behaviour outside a task (stock lua5.4: waits block while the loop keeps other tasks going).
local moonbox = require "moonbox"

local exe = os.getenv("MOONBOX_EXE") or "build/moonbox"

local files = require "spec.support.tmpdir"
local sh = files.capture

local function tmpscript(text)
  local name = os.tmpname()
  local f = assert(io.open(name, "w"))
  f:write(text)
  f:close()
  return name
end

local function run_script(text)
  local s = tmpscript(text)
  local out, rc = sh(exe .. " run " .. s)
  os.remove(s)
  return out, rc
end

describe("moonbox tasks", function()
  -- Hygiene: every task a test spawned has finished (the running main task aside).
  after_each(function()
    local stats = require("moonbox.task").stats()
    local own = moonbox.in_task() and 1 or 0
    assert.equal(0, stats.tasks - own, "tasks left unfinished by the test")
  end)

  it("exposes the task API through the registry", function()
    for _, name in ipairs { "spawn", "sleep", "now", "run", "in_task" } do
      assert.equal("function", type(moonbox[name]))
    end
    assert.equal("function", type(moonbox.io.wait_readable))
    assert.equal("function", type(moonbox.io.reader))
  end)

  it("has a monotonic clock in seconds", function()
    local a = moonbox.now()
    local b = moonbox.now()
    assert.is_true(b >= a)
    assert.is_true(a > 0)
  end)

  it("runs a task and joins its results", function()
    local t = moonbox.spawn(function(x, y) return x + y, "two", nil end, 40, 2)
    assert.equal("ready", t:status())
    local a, b, c = t:join()
    assert.equal(42, a)
    assert.equal("two", b)
    assert.is_nil(c)
    assert.equal(3, select("#", t:join())) -- join again: same results
    assert.equal("done", t:status())
  end)

  it("wakes sleepers in order of their deadlines", function()
    local order = {}
    local tasks = {}
    for i, d in ipairs { 0.06, 0.02, 0.04, 0.0 } do
      tasks[i] = moonbox.spawn(function()
        moonbox.sleep(d)
        order[#order + 1] = d
      end)
    end
    for _, t in ipairs(tasks) do t:join() end
    assert.same({ 0.0, 0.02, 0.04, 0.06 }, order)
  end)

  it("sleeps concurrently: ten 0.1 s sleeps take about 0.1 s", function()
    local t0 = moonbox.now()
    local tasks = {}
    for i = 1, 10 do tasks[i] = moonbox.spawn(moonbox.sleep, 0.1) end
    for _, t in ipairs(tasks) do t:join() end
    local dt = moonbox.now() - t0
    assert.is_true(dt >= 0.099, "slept " .. dt)
    assert.is_true(dt < 0.5, "slept " .. dt)
  end)

  it("re-raises a task's error on join and keeps its traceback", function()
    local t = moonbox.spawn(function() error("boom in task") end)
    local ok, err = pcall(t.join, t)
    assert.is_false(ok)
    assert.matches("boom in task", err)
    assert.equal("failed", t:status())
    assert.matches("stack traceback", t:traceback())
    -- error values that are not strings pass through unchanged
    local obj = { code = 7 }
    local t2 = moonbox.spawn(function() error(obj) end)
    local ok2, err2 = pcall(t2.join, t2)
    assert.is_false(ok2)
    assert.equal(obj, err2)
    -- a failed task is the same type to its methods, tostring and argument checks
    assert.matches("^moonbox.task.Task: .* %(failed%)$", tostring(t))
    assert.is_false(t:cancel())
    assert.has_error(function() t.join({}) end, "bad argument #1 to 'join' (moonbox.task.Task expected, got table)")
  end)

  it("keeps other tasks running when one fails", function()
    local bad = moonbox.spawn(function()
      moonbox.sleep(0.01)
      error("first fails")
    end)
    local good = moonbox.spawn(function()
      moonbox.sleep(0.03)
      return "still here"
    end)
    assert.equal("still here", good:join())
    assert.is_false(pcall(bad.join, bad))
  end)

  it("cancels a sleeping task and runs its <close> variables", function()
    local closed = false
    local t = moonbox.spawn(function()
      local _ <close> = setmetatable({}, { __close = function() closed = true end })
      moonbox.sleep(30)
      return "never"
    end)
    moonbox.sleep(0.01)
    assert.equal("waiting", t:status())
    local t0 = moonbox.now()
    assert.is_true(t:cancel())
    assert.is_true(moonbox.now() - t0 < 0.5)
    assert.equal("cancelled", t:status())
    assert.is_true(closed)
    local ok, err = pcall(t.join, t)
    assert.is_false(ok)
    assert.matches("task cancelled", err)
    assert.is_false(t:cancel()) -- already finished
  end)

  it("runs <close> variables of a task that fails, and still re-raises its error", function()
    local closed = false
    local t = moonbox.spawn(function()
      local _ <close> = setmetatable({}, { __close = function() closed = true end })
      moonbox.sleep(0)
      error("fails with a resource open")
    end)
    local ok, err = pcall(t.join, t)
    assert.is_false(ok)
    assert.matches("fails with a resource open", err)
    assert.is_true(closed)
    assert.matches("stack traceback", t:traceback())
  end)

  it("cancels a task blocked where it cannot yield (a sort comparator)", function()
    -- Outside a task the test's own sleep would be below the comparator's on the C stack (waits
    -- that block complete last-in first-out), so this needs the host's main task.
    if not moonbox.in_task() then
      pending("needs the host: run inside moonbox")
      return
    end
    local closed = false
    local t = moonbox.spawn(function()
      local _ <close> = setmetatable({}, { __close = function() closed = true end })
      table.sort({ 2, 1 }, function(a, b)
        moonbox.sleep(30) -- not yieldable here: blocks, running the loop
        return a < b
      end)
      return "sorted"
    end)
    moonbox.sleep(0.02)
    assert.equal("running", t:status())
    local t0 = moonbox.now()
    assert.is_true(t:cancel())
    local ok, err = pcall(t.join, t)
    assert.is_false(ok)
    assert.matches("task cancelled", err)
    assert.equal("cancelled", t:status())
    assert.is_true(closed)
    assert.is_true(moonbox.now() - t0 < 1)
  end)

  it("cancels a task that has not started yet", function()
    local ran = false
    local t = moonbox.spawn(function() ran = true end)
    assert.is_true(t:cancel())
    moonbox.sleep(0.01)
    assert.is_false(ran)
    assert.equal("cancelled", t:status())
  end)

  it("lets a task cancel itself", function()
    local t
    t = moonbox.spawn(function()
      moonbox.sleep(0)
      t:cancel()
      error("not reached")
    end)
    assert.is_false(pcall(t.join, t))
    assert.equal("cancelled", t:status())
  end)

  it("cancels a joiner without disturbing the task it joined", function()
    local slow = moonbox.spawn(function()
      moonbox.sleep(0.05)
      return "slow done"
    end)
    local joiner = moonbox.spawn(function() return slow:join() end)
    moonbox.sleep(0.01)
    assert.is_true(joiner:cancel())
    assert.equal("slow done", slow:join())
  end)

  it("refuses to join itself and checks its arguments", function()
    local t
    t = moonbox.spawn(function()
      moonbox.sleep(0)
      return t:join()
    end)
    local ok, err = pcall(t.join, t)
    assert.is_false(ok)
    assert.matches("cannot join itself", err)
    assert.has_error(function() moonbox.spawn(42) end)
    assert.has_error(function() moonbox.sleep(-1) end)
    assert.has_error(function() moonbox.sleep("x") end)
  end)

  it("treats a plain coroutine.yield in a task as letting the others run", function()
    local log = {}
    local a = moonbox.spawn(function()
      for i = 1, 3 do
        log[#log + 1] = "a" .. i
        coroutine.yield()
      end
    end)
    local b = moonbox.spawn(function()
      for i = 1, 3 do
        log[#log + 1] = "b" .. i
        coroutine.yield()
      end
    end)
    a:join()
    b:join()
    assert.same({ "a1", "b1", "a2", "b2", "a3", "b3" }, log)
  end)

  it("blocks inside a plain coroutine instead of yielding to it", function()
    local co = coroutine.wrap(function()
      moonbox.sleep(0.01) -- must not yield to this coroutine's resumer
      return "slept"
    end)
    assert.equal("slept", co())
  end)

  it("waits for an fd to become readable, with a timeout", function()
    local r = assert(io.popen("sleep 0.05; echo hi"))
    local t0 = moonbox.now()
    assert.is_true(moonbox.io.wait_readable(r))
    assert.is_true(moonbox.now() - t0 >= 0.04)
    assert.equal("hi\n", r:read("a"))
    r:close()
    local idle = assert(io.popen("sleep 0.1"))
    local ok, msg, code = moonbox.io.wait_readable(idle, 0.02)
    assert.is_nil(ok)
    assert.matches("not readable", msg)
    assert.equal("TIMEOUT", code)
    idle:close()
    assert.has_error(function() moonbox.io.wait_readable("x") end)
  end)

  it("reads lines from an fd on the loop while other tasks run", function()
    local p = assert(io.popen("printf 'one\\ntwo\\r\\n'; sleep 0.05; printf 'three\\nlast'"))
    local reader = moonbox.io.reader(p)
    local ticks = 0
    local ticker = moonbox.spawn(function()
      for _ = 1, 3 do
        moonbox.sleep(0.01)
        ticks = ticks + 1
      end
    end)
    local lines = {}
    for line in function() return reader:read_line() end do lines[#lines + 1] = line end
    ticker:join()
    assert.same({ "one", "two\r", "three", "last" }, lines)
    assert.equal(3, ticks)
    reader:close()
    p:close()
    assert.has_error(function() reader:read_line() end)
  end)
end)

describe("the worker pool", function()
  local codec = require "moonbox.codec"
  local big = string.rep("0123456789abcdef", 2 * 1024 * 1024) -- 32 MiB
  local expected

  it("runs CPU-heavy natives on a worker while other tasks keep going", function()
    local blocked = coroutine.wrap(function() return codec.sha256(big) end) -- not a task: inline
    expected = blocked()
    local ticks = 0
    local ticker = moonbox.spawn(function()
      while true do
        moonbox.sleep(0.002)
        ticks = ticks + 1
      end
    end)
    local hasher = moonbox.spawn(function() return codec.sha256(big) end)
    assert.equal(expected, hasher:join())
    ticker:cancel()
    assert.is_true(ticks >= 3, "the ticker ran " .. ticks .. " times while hashing")
  end)

  it("drops the result of a cancelled task's work and stays usable", function()
    local tasks = {}
    for i = 1, 4 do tasks[i] = moonbox.spawn(function() return codec.sha256(big) end) end
    moonbox.sleep(0)
    for i = 1, 3 do assert.is_true(tasks[i]:cancel()) end
    assert.equal(expected, tasks[4]:join())
    assert.equal(expected, moonbox.spawn(codec.sha256, big):join())
  end)
end)

describe("moonbox run", function()
  it("runs the main chunk as a task and waits for every task it spawned", function()
    local out, rc = run_script([[
      local moonbox = require "moonbox"
      print("in task", moonbox.in_task())
      moonbox.spawn(function() moonbox.sleep(0.05); print("late task") end)
      print("main done")
    ]])
    assert.equal(0, rc)
    assert.equal("in task\ttrue\nmain done\nlate task\n", out)
  end)

  it("reports an unjoined task's error with its traceback and keeps going", function()
    local out, rc = run_script([[
      local moonbox = require "moonbox"
      moonbox.spawn(function() error("lost error") end)
      moonbox.sleep(0.02)
      collectgarbage()
      collectgarbage()
      print("after")
    ]])
    assert.equal(0, rc)
    assert.matches("task failed: .-lost error", out)
    assert.matches("stack traceback", out, 1, true)
    assert.matches("after", out, 1, true)
  end)

  it("runs scripts with a gentler incremental collector (short loop stalls)", function()
    -- setstepmul/setpause return the values they replace: the host's, see host/main.c
    local out, rc = run_script([[
      print(collectgarbage("setstepmul", 8), collectgarbage("setpause", 200), collectgarbage("isrunning"))
    ]])
    assert.equal(0, rc)
    assert.equal("8\t200\ttrue\n", out)
  end)

  it("exits 1 with the traceback when the main task fails, cancelling the rest", function()
    local out, rc = run_script([[
      local moonbox = require "moonbox"
      moonbox.spawn(function()
        local _ <close> = setmetatable({}, { __close = function() print("closed") end })
        moonbox.sleep(60)
      end)
      moonbox.sleep(0.01)
      error("main boom")
    ]])
    assert.equal(1, rc)
    assert.matches("main boom", out, 1, true)
    assert.matches("stack traceback", out, 1, true)
    assert.matches("closed", out, 1, true)
  end)

  it("detects tasks that wait on each other forever", function()
    local out, rc = run_script([[
      local moonbox = require "moonbox"
      local a, b
      a = moonbox.spawn(function() moonbox.sleep(0); return b:join() end)
      b = moonbox.spawn(function() moonbox.sleep(0); return a:join() end)
    ]])
    assert.equal(1, rc)
    assert.matches("can never happen", out, 1, true)
  end)
end)
