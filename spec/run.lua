-- Runs busted inside the moonbox host: moonbox run spec/run.lua [busted args...]
-- Defaults to every *_spec.lua under spec/ with the counting output handler.
local args = { ... }
if #args == 0 then args = { "spec" } end
local has_output = false
for _, a in ipairs(args) do
  if a == "-o" or a:match("^%-%-output") then has_output = true end
end
if not has_output then
  table.insert(args, 1, "spec/support/output.lua")
  table.insert(args, 1, "-o")
end
-- busted reads its arguments from the global `arg`.
local busted_arg = { [0] = "busted" }
for i, a in ipairs(args) do busted_arg[i] = a end
_G.arg = busted_arg -- luacheck: ignore 122
require "busted.runner" { standalone = false }
