-- moonbox.proc: the native process module under local_sandbox (happy paths, bad arguments,
-- failure codes of each function).
local moonbox = require "moonbox"
local proc = require "moonbox.proc"
local tmpdir = require "spec.support.tmpdir"

describe("moonbox.proc", function()
  it("runs argv without a shell and returns the result table", function()
    local r = assert(proc.run({ "/bin/echo", "a b", "$HOME" }))
    assert.equal("a b $HOME\n", r.output)
    assert.equal(0, r.exit_code)
    assert.is_false(r.timed_out)
    assert.is_nil(r.signal)
    assert.equal("hi\n", proc.run({ "echo", "hi" }).output) -- found in PATH
  end)

  it("fails with codes for a missing program or cwd", function()
    local ok, msg, code = proc.run({ "/nonexistent/prog" })
    assert.is_nil(ok)
    assert.matches("spawn /nonexistent/prog", msg, 1, true)
    assert.equal("ENOENT", code)
    ok, msg, code = proc.run({ "/bin/true" }, { cwd = "/nonexistent" })
    assert.is_nil(ok)
    assert.matches("cwd /nonexistent", msg, 1, true)
    assert.equal("ENOENT", code)
    ok, msg, code = proc.run({ "/bin/true" }, { cwd = "/etc/passwd" })
    assert.is_nil(ok)
    assert.matches("not a directory", msg, 1, true)
    assert.equal("INVALID", code)
  end)

  it("raises on bad arguments", function()
    assert.has_error(function() proc.run("echo") end)
    assert.has_error(function() proc.run({}) end)
    assert.has_error(function() proc.run({ 1 }) end)
    assert.has_error(function() proc.run({ "a\0b" }) end)
    assert.has_error(function() proc.run({ "true" }, { bogus = 1 }) end)
    assert.has_error(function() proc.run({ "true" }, { timeout = -1 }) end)
    assert.has_error(function() proc.run({ "true" }, { timeout = "1" }) end)
    assert.has_error(function() proc.run({ "true" }, { max_output = 1 }) end)
    assert.has_error(function() proc.run({ "true" }, { env = { ["A=B"] = "x" } }) end)
    assert.has_error(function() proc.run({ "true" }, { env = { A = 1 } }) end)
    assert.has_error(function() proc.run({ "true" }, { env = "A=1" }) end)
    assert.has_error(function() proc.run({ "true" }, { stdin = 1 }) end)
    assert.has_error(function() proc.run({ "true" }, { clean_env = "yes" }) end)
  end)

  it("starts from an empty environment with clean_env", function()
    local r = proc.run({ "/usr/bin/env" }, { clean_env = true, env = { ONLY = "this" } })
    assert.equal("ONLY=this\n", r.output)
  end)

  it("drives a Process: read, running, exit_code, pid, kill with a signal, close", function()
    local p = assert(proc.spawn({ "/bin/sh", "-c", "echo started; trap 'echo got TERM; exit 9' TERM; "
      .. "while :; do sleep 0.01; done" }))
    assert.matches("Process: pid %d+ %(running%)", tostring(p))
    assert.is_true(p:pid() > 0)
    local out = ""
    local deadline = moonbox.now() + 3
    repeat
      moonbox.sleep(0.01)
      out = out .. p:read().output
    until out ~= "" or moonbox.now() > deadline
    assert.equal("started\n", out)
    assert.is_true(p:running())
    assert.is_nil(p:exit_code())
    assert.is_true(p:kill(15))
    local r = p:wait()
    assert.equal(9, r.exit_code)
    assert.equal("got TERM\n", r.stdout) -- stderr has the shell's note on the killed sleep
    assert.is_false(p:running())
    assert.equal(9, p:exit_code())
    assert.is_false(p:kill())
    assert.has_error(function() p:kill(0) end)
    p:close()
    p:close() -- idempotent
    assert.matches("closed", tostring(p))
    assert.has_error(function() p:read() end, "attempt to use a closed moonbox.proc.Process")
  end)

  it("closes with <close>, killing what still runs", function()
    local pid
    do
      local p <close> = assert(proc.spawn({ "/bin/sleep", "60" }))
      pid = p:pid()
    end
    local f = io.open("/proc/" .. pid .. "/cmdline")
    local cmdline = f and f:read("a") or ""
    if f then f:close() end
    assert.is_nil(cmdline:match("sleep"))
  end)

  it("feeds a process spawned with stdin = true through send, and arms it later", function()
    local p = assert(proc.spawn({ "/bin/sh", "-c", "read a; read b; echo \"$a-$b\"; cat" },
      { stdin = true, grace = 0.1 }))
    assert.is_true(p:send("one\n"))
    moonbox.sleep(0.05) -- the process waits for more while stdin stays open
    assert.is_true(p:running())
    assert.is_true(p:send("two\nrest", true)) -- then stdin ends
    assert.is_false(p:send("late")) -- closed: nothing more goes in
    assert.are.equal(p, p:arm(5))
    local r = p:wait()
    assert.are.equal("one-two\nrest", r.output)
    assert.are.equal(0, r.exit_code)
    p:close()
    -- arm(timeout) starts the deadline and the duration from the call, not from the spawn
    local q = assert(proc.spawn({ "/bin/sh", "-c", "read x; sleep 10" },
      { stdin = true, grace = 0.1 }))
    moonbox.sleep(1)
    q:send("go\n", true)
    q:arm(0.2)
    local t = q:wait()
    q:close()
    assert.is_true(t.timed_out)
    assert.are.equal(124, t.exit_code)
    assert.is_true(t.duration < 1, tostring(t.duration)) -- counted from the spawn: > 1.2 s
    assert.is_true(t.duration >= 0.2)
    -- bad arguments raise; a process spawned without stdin = true takes nothing
    local plain = assert(proc.spawn({ "/bin/cat" }))
    assert.is_false(plain:send("x"))
    assert.has_error(function() plain:send({}) end)
    assert.has_error(function() plain:arm(-1) end)
    assert.has_error(function() proc.spawn({ "/bin/cat" }, { stdin = false }) end)
    plain:close()
  end)

  it("makes directories and resolves real paths", function()
    local dir, cleanup = tmpdir.make()
    assert.is_true(proc.mkdirs(dir .. "/a/b/c"))
    assert.is_true(proc.mkdirs(dir .. "/a/b/c")) -- already there
    assert.equal(dir .. "/a/b/c", proc.realpath(dir .. "/a/./b/../b/c"))
    local f = assert(io.open(dir .. "/file", "w"))
    f:close()
    local ok, _, code = proc.mkdirs(dir .. "/file/x")
    assert.is_nil(ok)
    assert.equal("ENOTDIR", code)
    ok, _, code = proc.realpath(dir .. "/missing")
    assert.is_nil(ok)
    assert.equal("ENOENT", code)
    cleanup()
  end)
end)
