-- Loaded by busted before any spec (see .busted), under stock lua5.4 and inside the host.
--
-- 1. MOONBOX_LUACOV=<report file> turns on Lua line coverage (spec/support/luacov.lua), before
--    anything under scripts/ is loaded.
-- 2. `require "moonbox"` before any spec, so the host's and stock lua5.4's module paths are the
--    same for every spec.
-- 3. Hygiene: after each test, no new globals. A test whose code (or the code it calls) leaves a
--    new global fails with the names; the globals are removed so the next test starts clean.
--    The check is one pass over _G per test.
local report = os.getenv("MOONBOX_LUACOV")
if report and report ~= "" then require("spec.support.luacov").start(report) end

require "moonbox"
if report and report ~= "" then require("spec.support.luacov").instrument_tasks() end

local busted = require "busted"

local known = {}
for k in pairs(_G) do known[k] = true end

local current = "?"
busted.subscribe({ "test", "start" }, function(element, parent)
  local names = { element.name }
  local ctx = parent
  while ctx and ctx.descriptor ~= "file" and ctx.name do
    table.insert(names, 1, ctx.name)
    ctx = busted.parent(ctx)
  end
  current = table.concat(names, " ")
  return nil, true
end)

busted.after_each(function()
  local leaked
  for k in pairs(_G) do
    if not known[k] then
      leaked = leaked or {}
      leaked[#leaked + 1] = tostring(k)
    end
  end
  if leaked then
    table.sort(leaked)
    for _, k in ipairs(leaked) do _G[k] = nil end
    error(string.format("test '%s' left new globals: %s (declare them local)", current,
      table.concat(leaked, ", ")), 0)
  end
end)
