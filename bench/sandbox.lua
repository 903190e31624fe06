-- Sandbox benchmark (issue 5 item 5): ./build/moonbox run bench/sandbox.lua [RUNS]
--
-- The median (and p90) round trip of one trivial command through each way of running it, all
-- in one run on the same machine, RUNS times each (default 300, after 20 warm-up runs):
--
--   local_sandbox   sb:execute("true") — spawn /bin/sh -c true in its own process group,
--                   capture, wait on the loop, build the result table. Target < 1 ms.
--   proc floor      moonbox.proc.run{"/bin/sh", "-c", "true"}: the same without the Lua layer
--   raw /bin/true   moonbox.proc.run{"/bin/true"}: no shell at all
--
--   namespace_sandbox sb:execute("true") through moonbox-nsexec. Target < 2 ms and < bwrap.
--   bwrap --unshare-all --ro-bind / / true, unshare -Urpf --mount-proc true: the peers
--
-- and the amortized cost per command when 8 tasks run them concurrently.
--
-- Adding a row (namespace_sandbox, bwrap, unshare, ...): append to `rows` below. A row is
--   { label = "...", target = <ms or nil>, pause = <seconds slept, untimed, before each run>,
--     make = function(dir) return run, cleanup end }
-- where make gets a fresh temporary directory and returns the function timed per call (it
-- raises on failure) and an optional cleanup, or nil, reason to print the row as skipped.
-- command_row(label, argv, target) builds a row that runs argv (no shell) through moonbox.proc.
local moonbox = require "moonbox"
local proc = require "moonbox.proc"

local RUNS = tonumber(arg and arg[1]) or 300
local WARMUP = 20

local function median_p90(list)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  local n = #s
  local med = n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
  return med, s[math.max(1, math.ceil(n * 0.9))]
end

local function tmpdir()
  local p = assert(io.popen("mktemp -d /tmp/moonbox-bench.XXXXXX"))
  local dir = p:read("l")
  p:close()
  return dir, function() os.execute("rm -rf '" .. dir .. "'") end
end

local function command_row(label, argv, target)
  return {
    label = label,
    target = target,
    make = function()
      local probe, msg = proc.run(argv)
      if not probe then return nil, msg end
      if probe.exit_code ~= 0 then
        return nil, "exit " .. probe.exit_code .. ": " .. probe.output:gsub("\n.*", "")
      end
      return function()
        local r = assert(proc.run(argv))
        if r.exit_code ~= 0 then error(label .. ": exit " .. r.exit_code) end
      end
    end,
  }
end

-- A peer's row: like command_row, but a run that fails is run again (counted in its time) —
-- bwrap's recursive bind of / fails now and then when a mount appears or goes under it (a
-- container starting elsewhere on the machine), which says nothing about its speed.
local function peer_row(label, argv)
  local row = command_row(label, argv)
  local make = row.make
  row.make = function(dir)
    local run, why = make(dir)
    if not run then return nil, why end
    return function()
      for attempt = 1, 3 do
        local r = proc.run(argv)
        if r and r.exit_code == 0 then return end
        if attempt == 3 then error(label .. ": failed 3 times: " .. (r and r.output or "?")) end
      end
    end
  end
  return row
end

local function namespace_run(dir)
  local sb = moonbox.namespace_sandbox { root = dir }
  local ok, msg = sb:start()
  if not ok then return nil, msg end
  return function()
    local r = sb:execute("true")
    if r.exit_code ~= 0 then error("execute: exit " .. r.exit_code .. ": " .. r.output) end
  end, function() sb:stop() end
end

local rows = {
  {
    label = 'local_sandbox execute("true")',
    target = 1.0,
    make = function(dir)
      local sb = assert(moonbox.local_sandbox { root = dir })
      return function()
        local r = sb:execute("true")
        if r.exit_code ~= 0 then error("execute: exit " .. r.exit_code) end
      end, function() sb:stop() end
    end,
  },
  command_row("proc.run /bin/sh -c true (floor)", { "/bin/sh", "-c", "true" }),
  command_row("proc.run /bin/true (no shell)", { "/bin/true" }),
  {
    -- per command: new user, mount, pid, ipc, uts and net namespaces, its own proc, the seccomp
    -- filter, sh. Back to back, each command also pays for preparing the next one's spare
    -- (about 1.3 ms of CPU, a new network namespace 0.4 ms of it) on a 2-vCPU machine.
    label = 'namespace_sandbox execute("true")',
    target = 2.0,
    make = function(dir) return namespace_run(dir) end,
  },
  {
    -- the same with 5 ms between commands (untimed), as an agent's commands come: the spare
    -- is ready when the command arrives and the next one is made after it, so this is the
    -- command's own path only
    label = 'namespace_sandbox, commands 5 ms apart',
    pause = 0.005,
    make = function(dir) return namespace_run(dir) end,
  },
  -- the peers, spawned directly (no shell), as bubblewrap users and util-linux run them
  peer_row("bwrap --unshare-all --ro-bind / / true",
    { "/usr/bin/bwrap", "--unshare-all", "--ro-bind", "/", "/", "true" }),
  peer_row("unshare -Urpf --mount-proc true",
    { "/usr/bin/unshare", "-Urpf", "--mount-proc", "true" }),
}

-- Median and p90 of the successful runs, and a note when some runs failed (a failing run is
-- reported, not fatal: one flaky peer must not hide the other rows).
local function measure(row)
  local dir, cleanup_dir = tmpdir()
  local run, cleanup = row.make(dir)
  if not run then
    cleanup_dir()
    return nil, cleanup
  end
  local failed, first_error = 0, nil
  local function attempt()
    local ok, err = pcall(run)
    if not ok then
      failed = failed + 1
      first_error = first_error or tostring(err)
    end
    return ok
  end
  for _ = 1, WARMUP do attempt() end
  local times = {}
  for _ = 1, RUNS do
    if row.pause then moonbox.sleep(row.pause) end
    local t0 = moonbox.now()
    if attempt() then times[#times + 1] = (moonbox.now() - t0) * 1000 end
  end
  if cleanup then cleanup() end
  cleanup_dir()
  local note = failed > 0 and string.format("%d of %d runs failed (first: %s)", failed,
    RUNS + WARMUP, first_error) or nil
  if #times == 0 then return nil, note end
  local med, p90 = median_p90(times)
  return med, p90, note
end

-- Amortized cost per command with 8 tasks issuing execute("true") at once.
local function concurrent(n_tasks, per_task)
  local dir, cleanup_dir = tmpdir()
  local sb = assert(moonbox.local_sandbox { root = dir })
  local t0 = moonbox.now()
  local tasks = {}
  for i = 1, n_tasks do
    tasks[i] = moonbox.spawn(function()
      for _ = 1, per_task do assert(sb:execute("true").exit_code == 0) end
    end)
  end
  for _, t in ipairs(tasks) do t:join() end
  local per = (moonbox.now() - t0) * 1000 / (n_tasks * per_task)
  sb:stop()
  cleanup_dir()
  return per
end

print(string.format("sandbox round trip, %d runs each (median / p90, ms)", RUNS))
print(string.format("%-44s %9s %9s %9s  %s", "command", "median", "p90", "target", ""))
for _, row in ipairs(rows) do
  local med, p90, note = measure(row)
  if med == nil then
    print(string.format("%-44s %9s %9s %9s  skipped: %s", row.label, "-", "-",
      row.target and string.format("< %.1f", row.target) or "", tostring(p90)))
  else
    local verdict = ""
    if row.target then verdict = med < row.target and "ok" or "MISSED" end
    print(string.format("%-44s %9.3f %9.3f %9s  %s", row.label, med, p90,
      row.target and string.format("< %.1f", row.target) or "", verdict))
    if note then print(string.format("%-44s %s", "", note)) end
  end
end
print(string.format("%-44s %9.3f   (amortized per command)", 'local_sandbox, 8 tasks x 100 "true"',
  concurrent(8, 100)))
