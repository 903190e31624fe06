-- Backend benchmark (issue 2 item 8): ./build/moonbox run bench/backends.lua [RUNS]
--
-- Generates the reference's corpus in a temp directory — 40 directories x 50 Python files x
-- 200 lines, about 1% of the lines matching TODO_\d{3}, plus one 10,000-line file — and times,
-- as the median of RUNS runs (default 5), on local_backend (the directory) and state_backend
-- (the same files in memory):
--
--   grep TODO_\d{3} over the corpus, glob **/*.py, a default read of the big file,
--   1,000 edits on the big file, 2,000 small writes,
--
-- and, in the same run, ripgrep (`rg -n TODO_\d{3}` over the same directory, output read
-- through a pipe) when it is installed. Prints one table with the medians, the ratio to
-- ripgrep, the targets (grep within 1.5x of ripgrep; 1,000 edits under 100 ms) and the
-- reference's figures (pydantic-ai-backend 0.2.16: grep 313-374 ms, edits 0.7-2.0 s).
local moonbox = require "moonbox"

local RUNS = tonumber(arg and arg[1]) or 5
local DIRS, FILES, LINES, BIG_LINES = 40, 50, 200, 10000
local EDITS, WRITES = 1000, 2000
local PATTERN = "TODO_\\d{3}"

local clock = moonbox.monotonic

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function run(cmd)
  local ok = os.execute(cmd)
  if not (ok == true or ok == 0) then error("command failed: " .. cmd) end
end

local function median(list)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

-- Deterministic pseudo-random numbers (a 32-bit LCG), so every run sees the same corpus.
local seed = 12345
local function rand(n)
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed % n
end

local WORDS = { "value", "result", "index", "items", "config", "buffer", "count", "total", "name", "path" }

local function code_line(i)
  local r = rand(100)
  if r == 0 then return string.format("    # TODO_%03d: revisit %s handling", rand(1000), WORDS[rand(10) + 1]) end
  local w1, w2 = WORDS[rand(10) + 1], WORDS[rand(10) + 1]
  if r < 20 then return string.format("def %s_%d(%s, %s):", w1, i, w2, w1) end
  if r < 40 then return string.format("    return %s + %d", w2, rand(1000)) end
  if r < 60 then return string.format("    %s = %s.get(\"%s\", %d)", w1, w2, w1, i) end
  if r < 80 then return string.format("    if %s > %d:", w1, rand(100)) end
  return string.format("        %s.append(%s_%d)", w1, w2, i)
end

-- Writes the corpus under dir; returns { [virtual path] = content } for the state backend.
local function make_corpus(dir)
  local files = {}
  for d = 1, DIRS do
    local sub = string.format("pkg%02d", d)
    run("mkdir -p " .. sh_quote(dir .. "/" .. sub))
    for f = 1, FILES do
      local lines = {}
      for l = 1, LINES do lines[l] = code_line(l) end
      local content = table.concat(lines, "\n") .. "\n"
      local vpath = string.format("/%s/module_%02d.py", sub, f)
      local h = assert(io.open(dir .. vpath, "wb"))
      h:write(content)
      h:close()
      files[vpath] = content
    end
  end
  local big = {}
  for l = 1, BIG_LINES do big[l] = string.format("line_%05d = compute(%d)  # big file", l, l) end
  local content = table.concat(big, "\n") .. "\n"
  local h = assert(io.open(dir .. "/big.py", "wb"))
  h:write(content)
  h:close()
  files["/big.py"] = content
  return files, content
end

-- Seconds for fn(), which returns the count it produced (checked to be the same every run).
local function timed(label, runs, prepare, fn)
  local times, count = {}, nil
  for _ = 1, runs do
    if prepare then prepare() end
    local t0 = clock()
    local n = fn()
    times[#times + 1] = clock() - t0
    if count and n ~= count then error(label .. ": result changed between runs (" .. count .. " vs " .. n .. ")") end
    count = n
  end
  return { median = median(times), count = count }
end

local function must(r, msg, code)
  if r == nil then error((msg or "failed") .. " (" .. tostring(code) .. ")", 2) end
  return r
end

local function bench_backend(name, make, big_content)
  local b = make()
  local r = {}
  r.grep = timed(name .. " grep", RUNS, nil, function() return #must(b:grep(PATTERN)) end)
  r.glob = timed(name .. " glob", RUNS, nil, function() return #must(b:glob("**/*.py")) end)
  r.read = timed(name .. " read", RUNS, nil, function() return #must(b:read("/big.py")) end)
  r.edits = timed(name .. " edits", RUNS, function() must(b:write("/big.py", big_content)) end, function()
    for i = 1, EDITS do
      local old = string.format("line_%05d = compute", i * 9)
      must(b:edit("/big.py", old, string.format("LINE_%05d = compute", i * 9)))
    end
    return EDITS
  end)
  local round = 0
  r.writes = timed(name .. " writes", RUNS, function() round = round + 1 end, function()
    for i = 1, WRITES do
      must(b:write(string.format("/scratch/r%d/f%04d.txt", round, i), "small file " .. i .. "\n"))
    end
    return WRITES
  end)
  if b.close then b:close() end
  return r
end

local function bench_rg(dir)
  local probe = io.popen("command -v rg 2>/dev/null")
  local found = probe:read("a")
  probe:close()
  if found == "" then return nil end
  return timed("rg", RUNS, nil, function()
    local p = assert(io.popen("cd " .. sh_quote(dir) .. " && rg -n --no-heading " .. sh_quote(PATTERN) .. " ."))
    local out = p:read("a")
    p:close()
    return select(2, out:gsub("\n", ""))
  end)
end

local function ms(s) return s and string.format("%.1f ms", s * 1000) or "n/a" end

local function ratio(a, b)
  if not (a and b) or b == 0 then return "" end
  return string.format("%.2fx", a / b)
end

local function machine()
  local cpu = "unknown CPU"
  local f = io.open("/proc/cpuinfo")
  if f then
    for line in f:lines() do
      local m = line:match("^model name%s*:%s*(.+)$")
      if m then
        cpu = m
        break
      end
    end
    f:close()
  end
  local p = io.popen("nproc 2>/dev/null")
  local n = p and p:read("l") or "?"
  if p then p:close() end
  return string.format("%s, %s cores", cpu, n)
end

local function main()
  local tmp = os.tmpname()
  os.remove(tmp)
  local dir = tmp .. "-moonbox-bench"
  run("mkdir -p " .. sh_quote(dir .. "/corpus"))
  local ok, err = pcall(function()
    local corpus = dir .. "/corpus"
    io.write(string.format("corpus: %d dirs x %d files x %d lines + one %d-line file in %s\n", DIRS, FILES, LINES,
      BIG_LINES, corpus))
    local files, big = make_corpus(corpus)
    io.write(string.format("runs: %d (medians)\nmachine: %s\n\n", RUNS, machine()))

    local results, order = {}, {}
    local rg = bench_rg(corpus)
    if moonbox.local_backend then
      -- a copy, so the edits and writes do not change what the other measurements see
      run("cp -r " .. sh_quote(corpus) .. " " .. sh_quote(dir .. "/local"))
      results.local_backend = bench_backend("local_backend",
        function() return moonbox.local_backend{ root = dir .. "/local" } end, big)
      order[#order + 1] = "local_backend"
    else
      io.write("local_backend: not available in this build\n")
    end
    if moonbox.state_backend then
      results.state_backend = bench_backend("state_backend",
        function() return moonbox.state_backend{ files = files } end, big)
      order[#order + 1] = "state_backend"
    else
      io.write("state_backend: not available in this build\n")
    end

    -- same matches as ripgrep?
    for _, name in ipairs(order) do
      local n = results[name].grep.count
      if rg and n ~= rg.count then
        io.write(string.format("WARNING: %s grep found %d lines, rg found %d\n", name, n, rg.count))
      end
    end

    local rows = {
      { "grep " .. PATTERN, "grep", "<= 1.5x rg", "313-374 ms" },
      { "glob **/*.py", "glob", "", "" },
      { "read big file (default 2000 lines)", "read", "", "" },
      { "1,000 edits on the big file", "edits", "< 100 ms", "0.7-2.0 s" },
      { "2,000 small writes", "writes", "", "" },
    }
    local header = { "operation" }
    for _, name in ipairs(order) do header[#header + 1] = name end
    header[#header + 1] = "rg"
    header[#header + 1] = "target"
    header[#header + 1] = "pydantic-ai-backend 0.2.16"
    local out = { "| " .. table.concat(header, " | ") .. " |", "|" .. string.rep("---|", #header) }
    for _, row in ipairs(rows) do
      local cells = { row[1] }
      for _, name in ipairs(order) do
        local t = results[name][row[2]].median
        local cell = ms(t)
        if row[2] == "grep" and rg then cell = cell .. " (" .. ratio(t, rg.median) .. " rg)" end
        if row[2] == "edits" then cell = cell .. (t < 0.1 and " (meets)" or " (MISSES)") end
        if row[2] == "grep" and rg then cell = cell .. (t <= 1.5 * rg.median and " (meets)" or " (MISSES)") end
        cells[#cells + 1] = cell
      end
      cells[#cells + 1] = row[2] == "grep" and (rg and ms(rg.median) or "not installed") or ""
      cells[#cells + 1] = row[3]
      cells[#cells + 1] = row[4]
      out[#out + 1] = "| " .. table.concat(cells, " | ") .. " |"
    end
    io.write(table.concat(out, "\n"), "\n")
    if rg then
      io.write(string.format("\nmatching lines: rg %d", rg.count))
      for _, name in ipairs(order) do io.write(string.format(", %s %d", name, results[name].grep.count)) end
      io.write("\n")
    end
  end)
  os.execute("rm -rf " .. sh_quote(dir))
  if not ok then error(err, 0) end
end

main()
