-- Permission benchmark (issue 4 item 8): ./build/moonbox run bench/permissions.lua [RUNS]
--
-- Medians of process CPU time (os.clock) over RUNS runs (default 9, after one warm-up) of:
--   paths     100,000 checker:check(op, path) against presets.DEFAULT: read/write/edit over
--             1,000 generated workspace paths, one in ten a secret (.env, keys, ~/.ssh, ...)
--   commands  10,000 checker:check("execute", line) against DEFAULT: compound lines (pipes,
--             &&, $(...), quotes, wrappers, here-documents), each split into simple commands
--   explain   10,000 checker:explain over the same mix of paths
--   raw glob  100,000 permglob set:first(path) over the 12 SECRETS patterns (the matcher alone)
-- and prints them beside the issue's target (< 50 ms for the 100,000 path checks) and the
-- reference: pydantic-ai-backend 0.2.16's PermissionChecker took 3.0-3.7 s for 100,000 checks
-- on this class of machine (issue 4).
local moonbox = require "moonbox"
local perms = require "moonbox.permissions"
local permglob = require "moonbox.permglob"

local RUNS = tonumber(arg and arg[1]) or 9
local clock = os.clock -- CPU time: steadier than wall time on a shared machine

local function median(list)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
end

local function time(fn)
  fn() -- warm-up
  local t = {}
  for r = 1, RUNS do
    local t0 = clock()
    fn()
    t[r] = (clock() - t0) * 1000
  end
  return median(t), t
end

-- 1,000 paths shaped like an agent's workspace; every tenth is something SECRETS denies.
local SECRET_TAILS = { ".env", ".env.local", "certs/server.pem", "tls.key", "ca.crt",
  "credentials.json", "secrets.yaml", "my_secret.txt", "password_list", ".ssh/id_rsa" }
local DIRS = { "src", "src/core", "tests/unit", "docs/guide", "scripts", "lib/vendor/pkg" }
local EXTS = { ".c", ".h", ".lua", ".py", ".md", ".json", ".txt", ".go" }
local paths = {}
for i = 1, 1000 do
  local dir = "/workspace/project/" .. DIRS[i % #DIRS + 1]
  if i % 10 == 0 then
    paths[i] = dir .. "/" .. SECRET_TAILS[(i // 10) % #SECRET_TAILS + 1]
  else
    paths[i] = string.format("%s/module_%d%s", dir, i, EXTS[i % #EXTS + 1])
  end
end

local COMMANDS = {
  "ls -la src | grep '\\.c$' | wc -l",
  "cd /workspace/project && make -j4 test 2>&1 | tail -n 50",
  "git status && git diff --stat HEAD~1",
  "python3 -m pytest tests/unit -q -k 'not slow' || echo failed",
  "echo \"build $(date +%s)\" >> build.log; ./configure --prefix=/usr/local",
  "sudo rm -rf /",
  "find . -name '*.pyc' -exec rm -f {} \\;",
  "FOO=1 env BAR=2 timeout 30 npm run lint -- --fix",
  "cat <<'EOF' > notes.md\n# notes\nrm -rf / is not run here\nEOF",
  "for f in $(ls *.txt); do wc -l \"$f\"; done",
  "bash -c 'cd build && cmake .. && make'",
  "tar czf /tmp/out.tgz src/ && sha256sum /tmp/out.tgz",
  "echo x; rm -rf /",
  "curl -s http://127.0.0.1:8080/health | jq .status",
  "grep -rn TODO src/ --include=*.c | head -20",
  "nohup ./server --port 8080 > server.log 2>&1 &",
}

local ops = { "read", "write", "edit" }

local function bench()
  local c = perms.checker(perms.presets.DEFAULT)
  local denied = 0
  local path_ms = time(function()
    denied = 0
    for k = 0, 99 do
      local op = ops[k % 3 + 1]
      for i = 1, 1000 do
        if c:check(op, paths[i]) == "deny" then denied = denied + 1 end
      end
    end
  end)
  assert(denied == 10000, "expected one path in ten denied, got " .. denied)

  local cmd_denied = 0
  local cmd_ms = time(function()
    cmd_denied = 0
    local n = #COMMANDS
    for i = 1, 10000 do
      if c:check("execute", COMMANDS[i % n + 1]) == "deny" then cmd_denied = cmd_denied + 1 end
    end
  end)
  assert(cmd_denied == 1250, "expected 2 of 16 command lines denied, got " .. cmd_denied)

  local explain_ms = time(function()
    for i = 1, 10000 do c:explain("read", paths[i % 1000 + 1]) end
  end)

  local set = permglob.set(perms.presets.SECRETS_PATTERNS)
  local raw_ms = time(function()
    for _ = 1, 100 do
      for i = 1, 1000 do set:first(paths[i]) end
    end
  end)
  return path_ms, cmd_ms, explain_ms, raw_ms
end

local path_ms, cmd_ms, explain_ms, raw_ms = bench()
print(string.format("moonbox %s, permissions benchmark, median of %d runs", moonbox.version, RUNS))
print(string.format("%-44s %10s %12s", "work", "median ms", "per check"))
local function row(label, ms, n, note)
  print(string.format("%-44s %10.2f %9.0f ns  %s", label, ms, ms * 1e6 / n, note or ""))
end
row("100,000 path checks vs DEFAULT", path_ms, 100000,
  string.format("target < 50 ms: %s", path_ms < 50 and "met" or "MISSED"))
row("10,000 compound commands vs DEFAULT", cmd_ms, 10000)
row("10,000 explain() of paths", explain_ms, 10000)
row("100,000 permglob set:first (12 SECRETS)", raw_ms, 100000)
print(string.format("reference: pydantic-ai-backend 0.2.16, 100,000 checks: 3000-3700 ms "
  .. "(moonbox: %.0f-%.0fx faster)", 3000 / path_ms, 3700 / path_ms))
