-- Docker sandbox benchmark (issue 6 item 5):
--   ./build/moonbox run bench/docker.lua [RUNS] [IMAGE]
--
-- Needs a daemon: DOCKER_HOST or MOONBOX_TEST_DOCKER_HOST (unix://...), else
-- /var/run/docker.sock; `bash .ci/dockerd start` gives a private one with the local test image
-- (default IMAGE moonbox-test/busybox:1; no registry is contacted, containers use network none).
--
-- In one run, on one container:
--   docker_sandbox   sb:execute("true"): exec create + start (stream demuxed natively) + exec
--                    inspect over the unix socket, the result table built. Target: at most the
--                    CLI's time.
--   docker exec CLI  /usr/bin/docker -H <socket> exec <id> true (the whole client process)
-- The two alternate call by call (so load on the machine hits both alike); RUNS each (default
-- 40, after 3 warm-up calls). Then container create-to-ready: new sandbox, start() (create +
-- start, `sleep infinity` under init), first execute("true") answered — median of 5 — and the
-- amortized execute when 8 tasks share the container.
local moonbox = require "moonbox"
local proc = require "moonbox.proc"

local RUNS = tonumber(arg and arg[1]) or 40
local IMAGE = arg and arg[2] or "moonbox-test/busybox:1"
local WARMUP = 3

local host = os.getenv("DOCKER_HOST") or os.getenv("MOONBOX_TEST_DOCKER_HOST") or "unix:///var/run/docker.sock"
local socket = host:match("^unix://(.+)$")
if not socket then error("bench/docker.lua: DOCKER_HOST must be unix:///path, got " .. host) end
local CLI = "/usr/bin/docker"
if not io.open(CLI) then CLI = "docker" end

local function median_p90(list)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  local n = #s
  local med = n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
  return med, s[math.max(1, math.ceil(n * 0.9))]
end

local function ms(s) return string.format("%.1f", s * 1000) end

local sb = moonbox.docker_sandbox { image = IMAGE, socket = socket }
local ok, msg = sb:start()
if not ok then
  io.stderr:write("bench/docker.lua: ", msg, "\n")
  os.exit(1)
end
local id = sb:container_id()
local argv = { CLI, "-H", "unix://" .. socket, "exec", id, "true" }

local function via_sandbox()
  local r = assert(sb:execute("true"))
  if r.exit_code ~= 0 then error("execute: exit " .. r.exit_code) end
end

local function via_cli()
  local r = assert(proc.run(argv))
  if r.exit_code ~= 0 then error("docker exec: exit " .. r.exit_code .. ": " .. r.output) end
end

for _ = 1, WARMUP do
  via_sandbox()
  via_cli()
end
local t_sb, t_cli = {}, {}
for i = 1, RUNS do
  local t0 = moonbox.now()
  via_sandbox()
  t_sb[i] = moonbox.now() - t0
  t0 = moonbox.now()
  via_cli()
  t_cli[i] = moonbox.now() - t0
end

-- 8 tasks sharing the container: the amortized cost per command
local CONC, PER = 8, 5
local t0 = moonbox.now()
local tasks = {}
for i = 1, CONC do
  tasks[i] = moonbox.spawn(function()
    for _ = 1, PER do via_sandbox() end
  end)
end
for _, t in ipairs(tasks) do t:join() end
local amortized = (moonbox.now() - t0) / (CONC * PER)
sb:stop { purge = true }

-- create-to-ready
local ready = {}
for i = 1, 5 do
  local s = moonbox.docker_sandbox { image = IMAGE, socket = socket }
  local c0 = moonbox.now()
  assert(s:start())
  assert(s:execute("true"))
  ready[i] = moonbox.now() - c0
  s:stop { purge = true }
end

local sb_med, sb_p90 = median_p90(t_sb)
local cli_med, cli_p90 = median_p90(t_cli)
local r_med, r_p90 = median_p90(ready)
print(string.format("docker_sandbox benchmark: %d runs each, image %s, daemon %s", RUNS, IMAGE, socket))
print()
print("| what | median ms | p90 ms |")
print("|---|---:|---:|")
print(string.format("| docker_sandbox execute(\"true\") | %s | %s |", ms(sb_med), ms(sb_p90)))
print(string.format("| `docker exec <id> true` (CLI) | %s | %s |", ms(cli_med), ms(cli_p90)))
print(string.format("| docker_sandbox execute, 8 tasks sharing the container (amortized) | %s | |", ms(amortized)))
print(string.format("| container create-to-ready (start + first execute) | %s | %s |", ms(r_med), ms(r_p90)))
print()
print(string.format("target docker_sandbox <= CLI: %s (%.2fx the CLI's median)",
  sb_med <= cli_med and "met" or "NOT met", sb_med / cli_med))
