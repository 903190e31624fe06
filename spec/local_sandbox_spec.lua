-- moonbox.local_sandbox: the local backend's files plus commands in their own process group.
-- The reference's execute and background cases (pydantic-ai-backend §3.2, §9.3, §9.11), and what
-- its peers get wrong: timeouts that kill grandchildren, bounded output, cancellation.
local moonbox = require "moonbox"
local tmpdir = require "spec.support.tmpdir"

local exe = os.getenv("MOONBOX_EXE") or "build/moonbox"

-- How long a poll waits for what must happen: generous, since a poll returns as soon as it does
-- (a 2-core CI machine running the sanitizer or coverage build can take seconds to start a host).
local PATIENCE = 15

local read_file = tmpdir.read

-- A pid is gone when /proc has no entry for it (a zombie would still have one).
local function gone(pid, within)
  local deadline = moonbox.now() + (within or PATIENCE)
  repeat
    if not io.open("/proc/" .. pid .. "/stat") then return true end
    moonbox.sleep(0.02)
  until moonbox.now() > deadline
  return false, read_file("/proc/" .. pid .. "/stat")
end

-- Dead: gone, or a zombie waiting for a parent that is not ours to reap it.
local function dead(pid, within)
  local deadline = moonbox.now() + (within or PATIENCE)
  repeat
    local stat = read_file("/proc/" .. pid .. "/stat")
    if not stat or stat:match("^%d+ %b() Z") then return true end
    moonbox.sleep(0.02)
  until moonbox.now() > deadline
  return false, read_file("/proc/" .. pid .. "/stat")
end

local function wait_for_file(path, within)
  local deadline = moonbox.now() + (within or PATIENCE)
  repeat
    local s = read_file(path)
    if s and s:match("%d+\n") then return s:match("%d+") end
    moonbox.sleep(0.01)
  until moonbox.now() > deadline
end

local function rss_kb(field)
  return tonumber(read_file("/proc/self/status"):match(field .. ":%s*(%d+)"))
end

describe("local_sandbox", function()
  -- Hygiene: every task a test spawned has finished (the running main task aside).
  after_each(function()
    local stats = require("moonbox.task").stats()
    local own = moonbox.in_task() and 1 or 0
    assert.equal(0, stats.tasks - own, "tasks left unfinished by the test")
  end)

  local dir, cleanup, sb
  before_each(function()
    dir, cleanup = tmpdir.make()
    sb = assert(moonbox.local_sandbox { root = dir })
  end)
  after_each(function()
    sb:stop()
    cleanup()
  end)

  describe("construction", function()
    it("creates its root, has an id, and is alive", function()
      local root = dir .. "/new/deeper"
      local s = assert(moonbox.local_sandbox { root = root, id = "mine" })
      assert.equal("mine", s.id)
      assert.equal(root, s.root)
      assert.equal("directory", io.popen("stat -c %F " .. root):read("l"))
      assert.is_true(s:is_alive())
      assert.is_true(s:start())
      assert.matches("^local%-%x+$", sb.id)
      assert.not_equal(sb.id, moonbox.local_sandbox { root = dir }.id)
    end)

    it("rejects bad options", function()
      assert.has_error(function() moonbox.local_sandbox { root = dir, nope = 1 } end,
        "sandbox: unknown option 'nope'")
      assert.has_error(function() moonbox.local_sandbox { root = dir, timeout = "x" } end)
      assert.has_error(function() moonbox.local_sandbox {} end)
      assert.has_error(function() moonbox.local_sandbox("x") end)
      assert.has_error(function() moonbox.local_sandbox { root = dir, argv_prefix = print } end)
    end)

    it("fails with a code when the root cannot be made", function()
      local ok, msg, code = moonbox.local_sandbox { root = "/proc/nope/x" }
      assert.is_nil(ok)
      assert.matches("local_sandbox", msg)
      assert.is_string(code)
    end)
  end)

  describe("files", function()
    it("show commands no trace of an edit burst's spare inode", function()
      for i = 1, 3 do assert(sb:write("/a.txt", "v" .. i .. "\n")) end
      assert(sb:edit("/a.txt", "v3", "v4"))
      assert.equal("a.txt\nv4\n", sb:execute("ls -A; cat a.txt").output)
      for i = 1, 3 do assert(sb:write("/sub/b.txt", "w" .. i)) end
      local p = assert(sb:spawn("ls -A sub"))
      local out = ""
      repeat
        local r = assert(sb:read_output(p))
        out = out .. r.output
        if r.running then moonbox.sleep(0.01) end
      until not r.running
      assert.equal("b.txt\n", out)
    end)

    it("are the local backend's, on the same root", function()
      assert.equal("/notes.md", sb:write("/notes.md", "hi\n").path)
      assert.equal("     1\thi", sb:read("/notes.md"))
      assert.is_true(sb:exists("/notes.md"))
      assert.equal("hi\n", read_file(dir .. "/notes.md"))
      assert.equal(1, #sb:ls("/"))
      assert.equal("hi\n", sb:execute("cat notes.md").output)
      assert.equal(sb:backend():root(), sb.root)
      assert.is_nil(sb.no_such_method)
    end)
  end)

  describe("execute", function()
    it("runs a command in the root and returns the full result", function()
      local r = sb:execute("echo hello")
      assert.equal("hello\n", r.output)
      assert.equal("hello\n", r.stdout)
      assert.equal("", r.stderr)
      assert.equal(0, r.exit_code)
      assert.is_false(r.truncated)
      assert.is_false(r.timed_out)
      assert.is_number(r.duration)
      assert.equal(dir .. "\n", sb:execute("pwd").output)
    end)

    it("keeps stdout and stderr apart and interleaves them in output", function()
      local r = sb:execute("echo out; sleep 0.2; echo err >&2; sleep 0.2; echo out2; exit 3")
      assert.equal(3, r.exit_code)
      assert.equal("out\nout2\n", r.stdout)
      assert.equal("err\n", r.stderr)
      assert.equal("out\nerr\nout2\n", r.output)
    end)

    it("reports a signalled command as 128 + signal", function()
      local r = sb:execute("kill -TERM $$")
      assert.equal(143, r.exit_code)
      assert.equal(15, r.signal)
    end)

    it("honours cwd, confined to the root", function()
      assert(os.execute("mkdir -p " .. dir .. "/sub/deep"))
      assert.equal(dir .. "/sub/deep\n", sb:execute("pwd", { cwd = "sub/deep" }).output)
      assert.equal(dir .. "/sub\n", sb:execute("pwd", { cwd = "/sub" }).output)
      assert.equal(dir .. "/sub\n", sb:execute("pwd", { cwd = dir .. "/sub" }).output)
      local ok, msg, code = sb:execute("pwd", { cwd = "../" })
      assert.is_nil(ok)
      assert.matches("outside the sandbox root", msg)
      assert.equal("EACCES", code)
      ok, msg, code = sb:execute("pwd", { cwd = "missing" })
      assert.is_nil(ok)
      assert.matches("missing", msg)
      assert.equal("ENOENT", code)
      assert(os.execute("ln -s /etc " .. dir .. "/link"))
      ok, msg, code = sb:execute("pwd", { cwd = "link" })
      assert.is_nil(ok)
      assert.matches("outside", msg)
      assert.equal("EACCES", code)
    end)

    it("closes stdin unless given, and feeds it when given", function()
      local t0 = moonbox.now()
      local r = sb:execute("cat; echo done")
      assert.equal("done\n", r.output)
      assert.is_true(moonbox.now() - t0 < 5)
      assert.equal("line one\nline two", sb:execute("cat", { stdin = "line one\nline two" }).output)
      local big = string.rep("0123456789abcdef", 1 << 16) -- 1 MiB, more than a socket buffer
      assert.equal(tostring(#big) .. "\n", sb:execute("wc -c | tr -d ' '", { stdin = big }).output)
      assert.equal(0, sb:execute("exit 0", { stdin = big }).exit_code) -- nobody reads: no SIGPIPE
    end)

    it("merges env from the sandbox and the call over the host environment", function()
      local s = assert(moonbox.local_sandbox { root = dir, env = { A = "from-sandbox", B = "b" } })
      local r = s:execute('echo "$A $B $C ${HOME:+home}"', { env = { B = "from-call", C = "c" } })
      assert.equal("from-sandbox from-call c home\n", r.output)
      assert.equal("unset\n", s:execute('echo "${A-unset}"', { env = { A = false } }).output)
    end)

    it("times out: partial output, exit 124, timed_out", function()
      local t0 = moonbox.now()
      -- 1 s: a shell started on a busy machine has printed "before" by then
      local r = sb:execute("echo before; sleep 30; echo after", { timeout = 1 })
      assert.is_true(moonbox.now() - t0 < 6)
      assert.equal(124, r.exit_code)
      assert.is_true(r.timed_out)
      assert.equal("before\n", r.output)
      local s = assert(moonbox.local_sandbox { root = dir, timeout = 0.1 })
      assert.is_true(s:execute("sleep 5").timed_out)
      -- timeout = 0 is honoured (the reference's 0.2.7 behaviour), not read as "no timeout"
      local zero = sb:execute("sleep 5", { timeout = 0 })
      assert.is_true(zero.timed_out)
      assert.equal(124, zero.exit_code)
    end)

    it("kills a grandchild on timeout: the whole process group goes", function()
      local pidfile = dir .. "/pidfile"
      local r = sb:execute("(sleep 60 & echo $! > " .. pidfile .. "; wait)", { timeout = 1 })
      assert.is_true(r.timed_out)
      assert.equal(124, r.exit_code)
      local pid = assert(wait_for_file(pidfile))
      assert.is_true(gone(pid))
    end)

    it("escalates to SIGKILL for commands that ignore SIGTERM", function()
      -- timeout 1 s: the shell has written its pid by then, even on a busy machine
      local s = assert(moonbox.local_sandbox { root = dir, grace = 0.1 })
      local t0 = moonbox.now()
      local r = s:execute("trap '' TERM; echo $$ > pid2; while :; do sleep 0.01; done",
        { timeout = 1 })
      assert.is_true(r.timed_out)
      assert.is_true(moonbox.now() - t0 < 6)
      assert.is_true(gone(assert(wait_for_file(dir .. "/pid2"))))
    end)

    it("leaves nothing behind when the shell exits before its children", function()
      local r = sb:execute("sleep 60 & echo $! > pid3")
      assert.equal(0, r.exit_code)
      assert.is_true(gone(assert(wait_for_file(dir .. "/pid3"))))
    end)

    it("caps output: head and tail kept, a marker says how much was dropped", function()
      local s = assert(moonbox.local_sandbox { root = dir, max_output = 1000 })
      local r = s:execute("seq 1 100000")
      assert.is_true(r.truncated)
      assert.equal("1\n2\n3\n", r.output:sub(1, 6))
      assert.equal("99999\n100000\n", r.output:sub(-13))
      local dropped = tonumber(r.output:match("%[%.%.%. (%d+) bytes of output dropped %.%.%.%]"))
      assert.equal(588895 - 1000, dropped)
      assert.is_true(#r.output < 1100)
      assert.is_true(r.stdout:find("bytes of output dropped", 1, true) ~= nil)
      assert.equal("", r.stderr)
      local small = s:execute("seq 1 10")
      assert.is_false(small.truncated)
      assert.equal(21, #small.output)
    end)

    it("keeps memory bounded for 1 GB of output", function()
      local before = rss_kb("VmHWM")
      local t0 = moonbox.now()
      local r = sb:execute("head -c 1000000000 /dev/zero; echo; echo end")
      local dt = moonbox.now() - t0
      assert.equal(0, r.exit_code)
      assert.is_true(r.truncated)
      assert.equal("\nend\n", r.output:sub(-5))
      local dropped = tonumber(r.output:match("(%d+) bytes of output dropped"))
      assert.equal(1000000005 - 100000, dropped) -- 10^9 + "\n" + "end\n"
      local grew = rss_kb("VmHWM") - before
      assert.is_true(grew < 40 * 1024, "peak RSS grew by " .. grew .. " kB")
      assert.is_true(dt < 60, "took " .. dt .. " s")
    end)

    it("returns INVALID for a NUL byte and raises on misuse", function()
      local ok, msg, code = sb:execute("echo a\0b")
      assert.is_nil(ok)
      assert.matches("NUL", msg)
      assert.equal("INVALID", code)
      assert.has_error(function() sb:execute(42) end)
      assert.has_error(function() sb:execute("true", { nope = 1 }) end)
      assert.has_error(function() sb:execute("true", { timeout = -1 }) end)
      assert.has_error(function() sb:execute("true", "x") end)
    end)

    it("raises when execution is disabled, as the reference does", function()
      local s = assert(moonbox.local_sandbox { root = dir, enable_execute = false })
      assert.has_error(function() s:execute("true") end,
        "Shell execution is disabled for this backend. "
        .. "Initialize with enable_execute = true to enable.")
      assert.has_error(function() s:spawn("true") end)
      assert.equal("/x", s:write("/x", "still a backend").path)
    end)
  end)

  describe("tasks", function()
    it("runs 50 commands at once in one process", function()
      local t0 = moonbox.now()
      local tasks = {}
      for i = 1, 50 do
        tasks[i] = moonbox.spawn(function() return sb:execute("sleep 0.3; echo " .. i) end)
      end
      for i, t in ipairs(tasks) do
        local r = t:join()
        assert.equal(i .. "\n", r.output)
      end
      local dt = moonbox.now() - t0
      assert.is_true(dt < 5, "50 x 0.3 s commands took " .. dt .. " s") -- serial: 15 s
    end)

    it("cancels a running command: its process group is gone", function()
      local closed = false
      local t = moonbox.spawn(function()
        local _ <close> = setmetatable({}, { __close = function() closed = true end })
        return sb:execute("sleep 60 & echo $! > cpid; sleep 60")
      end)
      local pid = assert(wait_for_file(dir .. "/cpid"))
      assert.is_true(t:cancel())
      assert.equal("cancelled", t:status())
      assert.is_true(closed)
      assert.is_true(gone(pid))
    end)

    it("blocks outside a task (a plain coroutine) and still gives the result", function()
      local co = coroutine.wrap(function() return sb:execute("echo from coroutine").output end)
      assert.equal("from coroutine\n", co())
    end)
  end)

  describe("background processes", function()
    it("numbers them bg_1, bg_2 and reads only new output", function()
      local id = sb:spawn("echo one; sleep 1; echo two; exit 4")
      assert.equal("bg_1", id)
      assert.equal("bg_2", sb:spawn("true"))
      local deadline = moonbox.now() + PATIENCE
      local first
      repeat
        moonbox.sleep(0.02)
        first = sb:read_output(id)
      until first.output ~= "" or moonbox.now() > deadline
      assert.equal("one\n", first.output)
      assert.is_true(first.running)
      assert.is_nil(first.exit_code)
      local last
      local rest = ""
      repeat -- a read between `echo two` and the exit already takes "two"
        moonbox.sleep(0.05)
        last = sb:read_output(id)
        rest = rest .. last.output
      until not last.running or moonbox.now() > deadline
      assert.equal("two\n", rest)
      assert.is_false(last.running)
      assert.equal(4, last.exit_code)
      local again = sb:read_output(id)
      assert.equal("", again.output)
      assert.equal(4, again.exit_code)
    end)

    it("answers NOT_FOUND for an unknown id", function()
      local ok, msg, code = sb:read_output("bg_42")
      assert.is_nil(ok)
      assert.matches("No such background process", msg)
      assert.equal("NOT_FOUND", code)
    end)

    it("kills the group: true while running, false after or unknown", function()
      local id = sb:spawn("sleep 60 & echo $! > kpid; wait")
      local pid = assert(wait_for_file(dir .. "/kpid"))
      assert.is_true(sb:kill(id))
      assert.is_false(sb:read_output(id).running)
      assert.is_false(sb:kill(id))
      assert.is_false(sb:kill("bg_99"))
      assert.is_true(gone(pid))
    end)

    it("lists running and finished processes with exit codes", function()
      local a = sb:spawn("exit 7")
      local b = sb:spawn("sleep 60")
      local deadline = moonbox.now() + PATIENCE
      local list
      repeat -- until `exit 7` has been reaped (a fixed sleep is too short on a busy machine)
        moonbox.sleep(0.02)
        list = sb:list()
      until not list[1].running or moonbox.now() > deadline
      assert.equal(2, #list)
      assert.same({ id = a, command = "exit 7", pid = list[1].pid, running = false, exit_code = 7 },
        list[1])
      assert.equal(b, list[2].id)
      assert.is_true(list[2].running)
      assert.is_true(list[2].pid > 0)
      assert.is_nil(list[2].exit_code)
      sb:kill_all()
      assert.same({}, sb:list())
    end)

    it("caps unread output and keeps the newest", function()
      local s = assert(moonbox.local_sandbox { root = dir, max_output = 100 })
      local id = s:spawn("seq 1 10000")
      local deadline = moonbox.now() + PATIENCE
      repeat -- list() does not read: every line stays unread until the process is done
        moonbox.sleep(0.02)
      until not s:list()[1].running or moonbox.now() > deadline
      local r = s:read_output(id)
      assert.is_false(r.running)
      assert.is_true(r.truncated)
      assert.equal("10000\n", r.output:sub(-6))
      s:stop()
    end)

    it("kills everything on stop() and on garbage collection", function()
      sb:spawn("echo $$ > s1; sleep 60")
      local s2 = assert(moonbox.local_sandbox { root = dir })
      s2:spawn("echo $$ > s2; sleep 60")
      local p1 = assert(wait_for_file(dir .. "/s1"))
      local p2 = assert(wait_for_file(dir .. "/s2"))
      sb:stop()
      assert.same({}, sb:list())
      assert.is_true(gone(p1))
      s2 = nil -- luacheck: ignore 311
      collectgarbage()
      collectgarbage()
      assert.is_true(gone(p2))
    end)

    it("kills everything when the host exits", function()
      local script = dir .. "/bg.lua"
      local f = assert(io.open(script, "w"))
      f:write(string.format([[
        local sb = require("moonbox").local_sandbox { root = %q }
        sb:spawn("echo $$ > hpid; sleep 60")
        require("moonbox").sleep(0.2)
      ]], dir))
      f:close()
      assert(os.execute(exe .. " run " .. script))
      assert.is_true(gone(assert(wait_for_file(dir .. "/hpid"))))
    end)

    it("kills everything when the host is killed by SIGTERM", function()
      local script = dir .. "/term.lua"
      local f = assert(io.open(script, "w"))
      f:write(string.format([[
        local sb = require("moonbox").local_sandbox { root = %q }
        sb:spawn("echo $$ > tpid; sleep 60")
        local f = assert(io.open(%q, "w"))
        f:write("1\n")
        f:close()
        require("moonbox").sleep(60)
      ]], dir, dir .. "/ready"))
      f:close()
      assert(os.execute(exe .. " run " .. script .. " >/dev/null 2>&1 & echo $! > " .. dir .. "/host"))
      assert(wait_for_file(dir .. "/ready")) -- spawn returned: the group is registered
      local bg = assert(wait_for_file(dir .. "/tpid"))
      local host = assert(wait_for_file(dir .. "/host"))
      assert(os.execute("kill -TERM " .. host))
      assert.is_true(dead(host))
      assert.is_true(dead(bg))
    end)
  end)

  describe("the argv_prefix extension point", function()
    it("wraps every command and may override spawn options", function()
      local seen
      local s = assert(moonbox.sandbox.new {
        root = dir,
        kind = "wrapped",
        argv_prefix = function(command, ctx)
          seen = { command = command, cwd = ctx.cwd, root = ctx.root, background = ctx.background }
          return { "/usr/bin/env", "WRAPPED=yes" }, { env = { EXTRA = "x" } }
        end,
      })
      assert.matches("^wrapped%-", s.id)
      assert.equal("yes x\n", s:execute('echo "$WRAPPED $EXTRA"').output)
      assert.same({ command = 'echo "$WRAPPED $EXTRA"', cwd = dir, root = dir, background = false },
        seen)
      local id = s:spawn("echo bg")
      assert.is_true(seen.background)
      local deadline = moonbox.now() + PATIENCE
      local out = ""
      repeat
        moonbox.sleep(0.02)
        local r = s:read_output(id)
        out = out .. r.output
      until not r.running or moonbox.now() > deadline
      assert.equal("bg\n", out)
      s:stop()
    end)

    it("passes a hook's failure through, and runs on_start once", function()
      local starts = 0
      local s = assert(moonbox.sandbox.new {
        root = dir,
        on_start = function() starts = starts + 1; return true end,
        argv_prefix = function() return nil, "wrapper: not available here", "UNSUPPORTED" end,
      })
      assert.is_false(s:is_alive())
      local ok, msg, code = s:execute("true")
      assert.is_nil(ok)
      assert.equal("wrapper: not available here", msg)
      assert.equal("UNSUPPORTED", code)
      s:execute("true")
      assert.equal(1, starts)
      assert.is_true(s:is_alive())
      s:stop()
      assert.is_false(s:is_alive())
    end)
  end)
end)
