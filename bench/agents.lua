-- bench/agents.lua: many agent runs at once in one process, against the loopback fake LLM
-- (spec/support/fake_llm.mjs, auto mode: a tool call per turn, then an answer).
--
--   build/moonbox run bench/agents.lua [AGENTS=1000] [TURNS=5] [STREAM=1]
--
-- Each agent has its own in-memory backend and console toolset and runs TURNS model requests
-- (TURNS - 1 of them answered with a read_file call). Reported: wall time, peak RSS of this
-- process (VmHWM), the longest time the loop was blocked (went without polling: the loop's own
-- measure, task.stats().max_busy), and — as a latency figure — how late a ticker task sleeping
-- 1 ms at a time woke at worst (it waits its turn behind every task that became ready before
-- it). Targets (issue 7): peak RSS < 200 MB, loop never blocked > 10 ms.
package.path = "./?.lua;" .. package.path
local moonbox = require "moonbox"
local fake_llm = require "spec.support.fake_llm"

local n_agents = tonumber(arg and arg[1]) or 1000
local turns = tonumber(arg and arg[2]) or 5
local stream = (arg and arg[3] or "1") ~= "0"

local function status_kb(field)
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+) kB"))
end

local srv = fake_llm.start()
srv:auto { turns = turns - 1, tool = "read_file", arguments = { path = "/notes.md" }, text = "done" }

local rss_before = status_kb("VmRSS")
local ticking, max_late, ticks = true, 0, 0
local ticker = moonbox.spawn(function()
  while ticking do
    local t0 = moonbox.now()
    moonbox.sleep(0.001)
    local late = moonbox.now() - t0 - 0.001
    if late > max_late then max_late = late end
    ticks = ticks + 1
  end
end)

local task = require "moonbox.task"
task.stats(true)
local t0 = moonbox.now()
local tasks = {}
for i = 1, n_agents do
  tasks[i] = moonbox.spawn(function()
    local backend = moonbox.state_backend { files = { ["/notes.md"] = "agent " .. i .. "\nline two\n" } }
    local agent = assert(moonbox.agent {
      model = "openai-compatible:fake@" .. srv.url .. "/v1",
      provider = { retry_base = 0.05, max_retries = 6 },
      toolset = moonbox.console_toolset { backend = backend, include_execute = false },
      stream = stream,
    })
    local result, msg = agent:run("read the notes")
    assert(result, msg)
    assert(result.turns == turns, "expected " .. turns .. " turns, got " .. tostring(result.turns))
    return result.turns
  end)
end
local done, failed = 0, 0
for i = 1, n_agents do
  local ok = pcall(tasks[i].join, tasks[i])
  if ok then done = done + 1 else failed = failed + 1 end
end
local wall = moonbox.now() - t0
local stats = task.stats()
local max_busy, max_busy_cpu = stats.max_busy, stats.max_busy_cpu
ticking = false
ticker:join()
local peak = status_kb("VmHWM")
srv:close()

print(string.format("agents: %d x %d turns (%s), %d ok, %d failed", n_agents, turns,
  stream and "streamed" or "whole replies", done, failed))
print(string.format("%-34s %12s %12s", "measure", "value", "target"))
print(string.format("%-34s %10.2f s %12s", "wall time", wall, "-"))
print(string.format("%-34s %9.1f MB %12s", "peak RSS (VmHWM)", peak / 1024, "< 200 MB"))
print(string.format("%-34s %9.1f MB %12s", "RSS before the runs", rss_before / 1024, "-"))
print(string.format("%-34s %9.2f ms %12s", "longest loop block, CPU time", max_busy_cpu * 1000, "< 10 ms"))
print(string.format("%-34s %9.2f ms %12s", "longest loop block, wall clock", max_busy * 1000, "-"))
print(string.format("%-34s %9.2f ms %12s", "worst 1 ms timer lateness", max_late * 1000, "-"))
print(string.format("%-34s %12d %12s", "ticker wake-ups", ticks, "-"))
print(string.format("%-34s %10.0f/s %12s", "model requests", n_agents * turns / wall, "-"))
