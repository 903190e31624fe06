-- moonbox quickstart: an agent's workspace at work.
--
--   ./build/moonbox run examples/quickstart.lua       (bash .ci/setup quickstart runs this)
--
-- Shows the two built-in backends an agent's tools sit on: one in memory (state_backend) and
-- one on disk (local_backend, confined to a temp directory this script makes and removes):
-- reads with line numbers, an edit, a failed edit with the nearest-match help, a grep and a
-- glob — then commands in a sandbox (with a timeout that kills), the permission gate with the
-- rule that decided, and tool calls as a model makes them.
local moonbox = require "moonbox"

local function heading(text) io.write("\n== ", text, " ", string.rep("=", math.max(3, 72 - #text)), "\n\n") end

-- A short rendering of result tables: { occurrences = 1, path = "/a.py" }.
local function inspect(v)
  if type(v) ~= "table" then return type(v) == "string" and string.format("%q", v) or tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. " = " .. inspect(v[k]) end
  return "{ " .. table.concat(parts, ", ") .. " }"
end

local function show(label, ...)
  local r, msg, code = ...
  if r == nil then
    io.write(label, "\n  -> failed with ", tostring(code), ":\n", msg, "\n\n")
  elseif type(r) == "string" then
    io.write(label, "\n", r, "\n\n")
  else
    io.write(label, "\n  -> ", inspect(r), "\n\n")
  end
  return r
end

local function listing(entries)
  for _, e in ipairs(entries) do
    io.write(string.format("  %-28s %s\n", e.path .. (e.is_dir and "/" or ""),
      e.is_dir and "dir" or string.format("%d bytes", e.size)))
  end
  io.write("\n")
end

local APP = [[
import json


def load(path):
    with open(path) as f:
        return json.load(f)


def total(items):
    # TODO_101: skip items without a price
    return sum(item["price"] for item in items)
]]

local TEST = [[
from app import total


def test_total():
    # TODO_102: cover the empty list
    assert total([{"price": 2}, {"price": 3}]) == 5
]]

local function main(root)
  io.write("moonbox ", tostring(moonbox.version), ": an agent's workspace, in memory and on disk\n")

  heading("1. In memory: state_backend")
  local mem = moonbox.state_backend{ files = { ["/notes.md"] = "# Notes\n\n- the price field may be missing\n" } }
  show('mem:write("/plan.md", ...)', mem:write("/plan.md", "1. read app.py\n2. fix total()\n3. run the tests\n"))
  show('mem:read("/plan.md")   -- numbered lines, as a model sees them', mem:read("/plan.md"))
  show('mem:read("/notes.md", 2, 1)   -- offset 2 (0-based), limit 1', mem:read("/notes.md", 2, 1))

  heading("2. On disk: local_backend confined to a temp directory")
  local disk = moonbox.local_backend{ root = root }
  show('disk:write("src/app.py", ...)', disk:write("src/app.py", APP))
  show('disk:write("tests/test_app.py", ...)', disk:write("tests/test_app.py", TEST))
  io.write('disk:ls("/")\n')
  listing(disk:ls("/"))
  show('disk:read("/src/app.py", 8, 4)', disk:read("/src/app.py", 8, 4))
  show('disk:read("../../etc/passwd")   -- nothing outside the root', disk:read("../../etc/passwd"))

  heading("3. An edit")
  show('disk:edit("/src/app.py", <the return line>, <a safer one>)', disk:edit("/src/app.py",
    '    return sum(item["price"] for item in items)',
    '    return sum(item.get("price", 0) for item in items)'))
  show('disk:read("/src/app.py", 9)', disk:read("/src/app.py", 9))

  heading("4. A failed edit: the nearest match and how it differs")
  io.write("The model copied the line with 2-space indentation; the file uses 4 spaces:\n\n")
  show('disk:edit("/src/app.py", "def load(path):\\n  with open(path) as f:", ...)',
    disk:edit("/src/app.py", "def load(path):\n  with open(path) as f:",
      "def load(path):\n  with open(path, 'rb') as f:"))

  heading("5. grep")
  for _, m in ipairs(disk:grep("TODO_\\d{3}")) do
    io.write(string.format("  %s:%d: %s\n", m.path, m.line_number, m.line))
  end
  io.write("\n")
  local hits = disk:grep("price", { glob = "*.py", ignore_case = true, max = 3 })
  io.write('disk:grep("price", { glob = "*.py", ignore_case = true, max = 3 })\n')
  for _, m in ipairs(hits) do io.write(string.format("  %s:%d: %s\n", m.path, m.line_number, m.line)) end
  io.write("\n")

  heading("6. glob")
  io.write('disk:glob("**/*.py")   -- newest first\n')
  listing(disk:glob("**/*.py"))
  io.write('mem:glob("*.md")\n')
  listing(mem:glob("*.md"))

  heading("7. Commands in a sandbox")
  -- namespace isolation where the kernel allows it (fails closed: UNSUPPORTED, never unconfined)
  local sb = moonbox.namespace_sandbox { root = root, memory = "256M", pids = 64 }
  local ok_ns, why = sb:start()
  if not ok_ns then
    io.write("namespace sandbox unavailable here (", tostring(why), "); using host processes\n\n")
    sb:stop()
    sb = moonbox.local_sandbox { root = root }
  end
  local r = sb:execute("cd src && grep -c price app.py && id -u && ls / | tr '\\n' ' '")
  io.write("sb:execute(\"cd src && grep -c price app.py && id -u && ls /\")\n")
  io.write(string.format("  exit_code = %d, output:\n%s\n", r.exit_code, r.output))
  local t = sb:execute("echo started; sleep 30; echo never", { timeout = 0.5 })
  io.write("sb:execute(\"echo started; sleep 30\", { timeout = 0.5 })\n")
  io.write(string.format("  timed_out = %s, exit_code = %d, partial output: %s\n\n", tostring(t.timed_out),
    t.exit_code, (t.output:gsub("\n", "\\n"))))

  heading("8. The permission gate")
  local perms = require "moonbox.permissions"
  local checker = perms.checker(perms.presets.DEFAULT)
  for _, c in ipairs { { "read", "/src/app.py" }, { "read", "/.env" }, { "execute", "git status" },
    { "execute", "echo hi; sudo rm -rf /" } } do
    local action = checker:check(c[1], c[2])
    io.write(string.format("  %-8s %-26s -> %-5s  %s\n", c[1], c[2], action, checker:explain(c[1], c[2]).summary))
  end
  io.write("\n")

  heading("9. A tool call, as a model makes it")
  local tools = moonbox.console_toolset { backend = sb, permissions = perms.presets.PERMISSIVE }
  io.write('tools:call("grep", { pattern = "TODO_\\d+", output_mode = "content" })\n')
  io.write(tools:call("grep", { pattern = "TODO_\\d+", output_mode = "content" }), "\n\n")
  io.write('tools:call("edit_file", { path = "/nope.py", old_string = "x", new_string = "y" })\n')
  io.write(tools:call("edit_file", { path = "/nope.py", old_string = "x", new_string = "y" }), "\n\n")
  sb:stop()

  if disk.close then disk:close() end
  if mem.close then mem:close() end
  io.write("done: the temp workspace is removed on exit\n")
end

local root = os.tmpname()
os.remove(root)
root = root .. "-moonbox-quickstart"
assert(os.execute("mkdir -p '" .. root .. "'"))
local ok, err = xpcall(main, debug.traceback, root)
os.execute("rm -rf '" .. root:gsub("'", "'\\''") .. "'")
if not ok then error(err, 0) end
