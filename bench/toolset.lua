-- Toolset benchmark (issue 3 item 5): ./build/moonbox run bench/toolset.lua [RUNS]
--
-- On the reference corpus's 10,000-line file, as the median wall time of RUNS runs (default 5):
--
--   hashline.format of the whole file,
--   1,000 hashline.apply edits on it, each taking its anchor from a one-line hashline.format
--     of the current content (which re-hashes the line) and producing the next content,
--   1,000 edit_file calls through console_toolset on a local_backend (read tracking, per-path
--     lock, SHA-256 fingerprints and an atomic write per call),
--   1,000 hashline_edit calls through console_toolset on the same local_backend.
--
-- Prints the medians with the target (1,000 hashline edits under 50 ms) and the reference
-- (pydantic-ai-backend 0.2.16: 0.73-0.89 s for the 1,000 hashline edits on this class of machine).
local moonbox = require "moonbox"
local hashline = require "moonbox.hashline"
local tmpdir_ok, tmpdir = pcall(require, "spec.support.tmpdir")

local RUNS = tonumber(arg and arg[1]) or 5
local LINES, EDITS = 10000, 1000
local clock = moonbox.monotonic

local function median(list)
  local s = { table.unpack(list) }
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

-- The 10,000-line file of bench/backends.lua.
local function big_lines()
  local lines = {}
  for l = 1, LINES do lines[l] = string.format("line_%05d = compute(%d)  # big file", l, l) end
  return lines
end

-- The i-th edited line: a deterministic walk over the file (7919 is prime, so lines spread).
local function target(i) return (i * 7919) % LINES + 1 end

local function make_dir()
  if tmpdir_ok then return tmpdir.make() end
  local p = assert(io.popen("mktemp -d /tmp/moonbox-bench.XXXXXX"))
  local dir = p:read("l")
  p:close()
  return dir, function() os.execute("rm -rf '" .. dir .. "'") end
end

-- Median wall time and median CPU time (os.clock: less disturbed by a busy machine).
local function time(fn)
  local wall, cpu = {}, {}
  for r = 1, RUNS do
    collectgarbage("collect")
    local t0, c0 = clock(), os.clock()
    fn(r)
    wall[#wall + 1], cpu[#cpu + 1] = clock() - t0, os.clock() - c0
  end
  return { wall = median(wall), cpu = median(cpu) }
end

-- Only the content stays alive during the hashline runs: a table of 10,000 line strings would
-- make every garbage-collection cycle (one every few edits of a 389 KB file) mark them all.
local content = table.concat(big_lines(), "\n") .. "\n"

local results = {}

results.format = time(function()
  local out = assert(hashline.format(content, 0, LINES))
  assert(#out > #content)
end)

-- Each edit takes its anchor the way a model does, from a one-line read of the current content
-- (format re-hashes that line), then applies; the result is the next edit's content.
results.apply = time(function()
  local cur = content
  for i = 1, EDITS do
    local ln = target(i)
    local hh, text = assert(hashline.format(cur, ln - 1, 1)):match("^%d+:(%x+)|([^\n]*)")
    cur = assert(hashline.apply(cur, { start_line = ln, start_hash = hh, new_content = text .. " -- " .. i }))
  end
end)

local dir, cleanup = make_dir()
local backend = moonbox.local_backend { root = dir }

results.edit_file = time(function(r)
  assert(backend:write("/big.py", content))
  local tools = moonbox.console_toolset { backend = backend }
  tools:call("read_file", { path = "/big.py", limit = 10 })
  for i = 1, EDITS do
    local ln = target(i)
    local old = string.format("line_%05d = compute(%d)", ln, ln)
    local out = tools:call("edit_file", { path = "/big.py", old_string = old, new_string = old .. " + " .. r })
    assert(out:find("^Edited"), out)
  end
end)

results.hashline_edit = time(function()
  assert(backend:write("/big.py", content))
  local tools = moonbox.console_toolset { backend = backend, edit_format = "hashline" }
  tools:call("read_file", { path = "/big.py", limit = 10 })
  local text = big_lines()
  for i = 1, EDITS do
    local ln = target(i)
    local new = text[ln] .. " -- " .. i
    local out = tools:call("hashline_edit", { path = "/big.py", start_line = ln, start_hash = hashline.hash(text[ln]),
      new_content = new })
    assert(out:find("^Edited"), out)
    text[ln] = new
  end
end)
cleanup()

local function ms(r) return string.format("%9.1f ms %9.1f ms", r.wall * 1000, r.cpu * 1000) end
print(string.format("moonbox toolset benchmark: %d-line file (%d bytes), median of %d runs", LINES, #content, RUNS))
print(string.format("  %-52s %12s %12s", "", "wall", "cpu"))
print(string.format("  %-52s %s", "hashline.format, whole file", ms(results.format)))
print(string.format("  %-52s %s   target < 50 ms %s; pydantic-ai-backend 0.2.16: 730-890 ms",
  "1,000 hashline edits (format 1 line + apply)", ms(results.apply),
  results.apply.wall < 0.05 and "(met)" or "(missed on wall time)"))
print(string.format("  %-52s %s", "1,000 edit_file calls, toolset on local_backend", ms(results.edit_file)))
print(string.format("  %-52s %s", "1,000 hashline_edit calls, toolset on local_backend", ms(results.hashline_edit)))
