-- Lua line coverage for scripts/ and presets/ (Debian ships no luacov).
--
--   require("spec.support.luacov").start(report_file)
--
-- spec/support/helper.lua calls it when MOONBOX_LUACOV=<report file> is set.
--
-- Counting: a line hook (debug.sethook, "l") on the running thread and on the main thread.
-- Lua 5.4's lua_newthread copies the creating thread's C hook, but debug.sethook's Lua function
-- is looked up per thread (verified on 5.4.4: a fresh coroutine runs unhooked), so start()
-- wraps coroutine.create/wrap to hook every coroutine made from Lua afterwards, and
-- M.instrument_tasks() wraps moonbox.spawn so each host task hooks its own thread. Other
-- threads made in C (lua_newthread) are counted only if passed to M.attach(thread).
-- Only chunks whose source is a file under the scripts/ or presets/ folders of the moonbox data
-- root are counted (package.loaded["moonbox.paths"], else the current directory). start() may
-- run before `require "moonbox"`, so the modules it loads are counted from their first line.
--
-- Executable lines come from the compiler itself: `luac5.4 -p -l -l FILE` lists every
-- instruction with its line. A line counts as executable when it carries an instruction other
-- than a function's final implicit RETURN (the `end` of a function that always returns
-- explicitly can never run, and is not a line a test could reach). Without luac5.4 a heuristic
-- is used instead (and the report says so): non-blank lines that are not comments, not only
-- `end`/`else`/`}`/`)`/`do`/`repeat`, and not inside a long comment or string.
--
-- The report is written when the Lua state closes: a __gc sentinel in this module's table runs
-- at lua_close (the host closes its state on exit; busted ends with os.exit(code, true), which
-- closes it too). One line per file, `hit/total pct% path  missed: ranges`, then
-- `Lua line coverage: NN.N% (hit/total)` as the last line.
local M = {}

local counts = {} -- source -> { [line] = hits }
local classified = {} -- source -> counts table or false
local project_root, roots

local function dirname(p) return (p:match("^(.*)/[^/]*$")) end

local function clean(p)
  p = p:gsub("/%./", "/"):gsub("//+", "/")
  local changed = true
  while changed do
    local n
    p, n = p:gsub("/[^/]+/%.%./", "/", 1)
    changed = n > 0
  end
  return p
end

-- The folders to count, from the moonbox data root once it is known (stock lua5.4 learns it
-- only when `require "moonbox"` loads the C module, after the hook may already be running).
local function find_roots()
  local paths = package.loaded["moonbox.paths"]
  if not (paths and paths.scripts) then return nil end
  local scripts = clean(paths.scripts)
  project_root = dirname(scripts)
  roots = { scripts, paths.presets and clean(paths.presets) or project_root .. "/presets" }
  return roots
end

local function classify(source)
  if source:sub(1, 1) ~= "@" then return false end
  if not roots and not find_roots() then return nil end
  local path = source:sub(2)
  if path:sub(1, 1) ~= "/" then path = (os.getenv("PWD") or ".") .. "/" .. path end
  path = clean(path)
  for _, r in ipairs(roots) do
    if path:sub(1, #r + 1) == r .. "/" then
      local t = counts[path]
      if not t then
        t = {}
        counts[path] = t
      end
      return t
    end
  end
  return false
end

local getinfo = debug.getinfo
-- function -> its file's counts table, or false; keyed by the function (getinfo "f" costs half
-- of "S", which formats short_src on every call), weak so closures can be collected
local by_function = setmetatable({}, { __mode = "k" })

local function hook(_, line)
  local fn = getinfo(2, "f").func
  local t = by_function[fn]
  if t == nil then
    local source = getinfo(fn, "S").source
    t = classified[source]
    if t == nil then
      t = classify(source) -- nil while the data root is unknown: ask again next time
      classified[source] = t
    end
    if t ~= nil then by_function[fn] = t end
  end
  if t then t[line] = (t[line] or 0) + 1 end
end

-- Executable lines of a file from `luac5.4 -p -l -l`, or nil when luac5.4 is missing/failing.
local function luac_lines(path)
  local p = io.popen("luac5.4 -p -l -l '" .. path:gsub("'", "'\\''") .. "' 2>/dev/null")
  if not p then return nil end
  local text = p:read("a")
  p:close()
  if not text:find("instructions at", 1, true) then return nil end
  local lines = {}
  local fn_last -- line of the current function's last instruction seen so far
  local fn_lines -- lines of the current function, without its last instruction
  local function flush()
    if fn_lines then
      for l in pairs(fn_lines) do lines[l] = true end
    end
  end
  for row in text:gmatch("[^\n]+") do
    if row:match("^main <") or row:match("^function <") then
      flush()
      fn_lines, fn_last = {}, nil
    else
      local l, op = row:match("^%s+%d+%s+%[(%d+)%]%s+(%u+)")
      -- VARARGPREP never raises a line event (the hook starts after it), so it is no line to reach
      if l and fn_lines and op ~= "VARARGPREP" then
        -- the previous instruction was not the last one: it counts
        if fn_last then fn_lines[fn_last] = true end
        fn_last = tonumber(l)
      end
    end
  end
  flush()
  return lines
end

local TRIVIAL = { ["end"] = true, ["else"] = true, ["}"] = true, [")"] = true, ["do"] = true, ["repeat"] = true,
  ["},"] = true, ["end)"] = true, ["end,"] = true, ["})"] = true, ["then"] = true }

local function heuristic_lines(path)
  local f = io.open(path, "r")
  if not f then return {} end
  local lines, n, in_long = {}, 0, nil
  for raw in f:lines() do
    n = n + 1
    local s = raw:match("^%s*(.-)%s*$")
    if in_long then
      if s:find(in_long, 1, true) then in_long = nil end
    elseif s:match("^%-%-%[(=*)%[") then
      local eq = s:match("^%-%-%[(=*)%[")
      if not s:find("]" .. eq .. "]", 1, true) then in_long = "]" .. eq .. "]" end
    elseif s ~= "" and not s:match("^%-%-") and not TRIVIAL[s] then
      lines[n] = true
      local eq = s:match("%[(=*)%[[^%]]*$")
      if eq then in_long = "]" .. eq .. "]" end
    end
  end
  f:close()
  return lines
end

local function ranges(list)
  local out, i = {}, 1
  while i <= #list do
    local j = i
    while j < #list and list[j + 1] == list[j] + 1 do j = j + 1 end
    out[#out + 1] = i == j and tostring(list[i]) or (list[i] .. "-" .. list[j])
    i = j + 1
  end
  return table.concat(out, ",")
end

local function all_files()
  local files = {}
  for _, r in ipairs(roots) do
    local p = io.popen("find '" .. r:gsub("'", "'\\''") .. "' -name '*.lua' -type f 2>/dev/null")
    if p then
      for line in p:lines() do files[clean(line)] = true end
      p:close()
    end
  end
  for path in pairs(counts) do files[path] = true end
  local list = {}
  for path in pairs(files) do list[#list + 1] = path end
  table.sort(list)
  return list
end

-- Writes the report; returns hit, total.
function M.write(report)
  if not roots and not find_roots() then
    local scripts = clean((os.getenv("PWD") or ".") .. "/scripts")
    project_root = dirname(scripts)
    roots = { scripts, project_root .. "/presets" }
  end
  local used_heuristic = false
  local hit_all, total_all = 0, 0
  local rows = {}
  for _, path in ipairs(all_files()) do
    local exec = luac_lines(path)
    if not exec then
      exec = heuristic_lines(path)
      used_heuristic = true
    end
    local hits = counts[path] or {}
    local hit, total, missed = 0, 0, {}
    for l in pairs(exec) do
      total = total + 1
      if hits[l] then
        hit = hit + 1
      else
        missed[#missed + 1] = l
      end
    end
    table.sort(missed)
    hit_all, total_all = hit_all + hit, total_all + total
    local rel = path:sub(#project_root + 2)
    rows[#rows + 1] = string.format("%5d/%-5d %5.1f%%  %s%s", hit, total, total > 0 and 100 * hit / total or 100,
      rel, #missed > 0 and ("  missed: " .. ranges(missed)) or "")
  end
  local f = assert(io.open(report, "w"))
  f:write("Lua line coverage of scripts/ and presets/ (spec/support/luacov.lua)\n")
  if used_heuristic then f:write("(luac5.4 not available: executable lines estimated from the source text)\n") end
  f:write(table.concat(rows, "\n"), "\n")
  f:write(string.format("Lua line coverage: %.1f%% (%d/%d)\n", total_all > 0 and 100 * hit_all / total_all or 100,
    hit_all, total_all))
  f:close()
  return hit_all, total_all
end

local started = false

-- How much slower Lua code runs while lines are counted (the hook costs ~0.3 us a line, 10-30x
-- on tight loops). Specs with a time bound on Lua code multiply it by this; 1 when inactive.
function M.time_factor() return started and 30 or 1 end

-- Counts lines run in a thread made outside coroutine.create/wrap (a host task).
function M.attach(thread)
  if started then debug.sethook(thread, hook, "l") end
end

-- The host makes task threads in C (moonbox.spawn): wrap spawn so each task hooks itself
-- first. Called once moonbox is loaded (before anything has cached moonbox.spawn).
function M.instrument_tasks()
  if not started then return end
  local ok, task = pcall(require, "moonbox.task")
  if not ok or type(task) ~= "table" or type(task.spawn) ~= "function" or M._spawn then return end
  M._spawn = task.spawn
  task.spawn = function(fn, ...)
    if type(fn) ~= "function" then return M._spawn(fn, ...) end -- misuse raises as before
    return M._spawn(function(...)
      debug.sethook(hook, "l")
      return fn(...)
    end, ...)
  end
end

function M.start(report)
  if started then return end
  started = true
  debug.sethook(hook, "l")
  local main = debug.getregistry()[1] -- LUA_RIDX_MAINTHREAD
  if type(main) == "thread" and main ~= coroutine.running() then debug.sethook(main, hook, "l") end
  -- A new thread inherits the C side of the hook, but debug.sethook keeps the Lua function per
  -- thread (ldblib's hook table), so a coroutine nobody registered runs uncounted: register
  -- each one as it is made.
  local create = coroutine.create
  coroutine.create = function(fn) -- luacheck: ignore 122
    local co = create(fn)
    debug.sethook(co, hook, "l")
    return co
  end
  coroutine.wrap = function(fn) -- luacheck: ignore 122
    local co = create(fn)
    debug.sethook(co, hook, "l")
    return function(...)
      local r = table.pack(coroutine.resume(co, ...))
      if not r[1] then error(r[2], 2) end
      return table.unpack(r, 2, r.n)
    end
  end
  M._sentinel = setmetatable({}, {
    __gc = function()
      debug.sethook()
      if type(main) == "thread" then debug.sethook(main) end
      local ok, err = pcall(M.write, report)
      if not ok then io.stderr:write("luacov: cannot write ", report, ": ", tostring(err), "\n") end
    end,
  })
end

return M
