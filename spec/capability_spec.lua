-- moonbox.console_capability: the toolset with instructions and per-call permission checks
-- (reference §8.6, §9.11).
local moonbox = require "moonbox"
local lua_backend = require "spec.support.lua_backend"

local HAS_PERMISSIONS = pcall(require, "moonbox.permissions")
local with_perms = HAS_PERMISSIONS and it or pending

local function mem(files) return lua_backend.new { files = files or {} } end

describe("console_capability", function()
  it("builds the toolset with the same options and its system prompt", function()
    local cap = moonbox.console_capability { backend = mem(), edit_format = "hashline", include_execute = false }
    assert.equal("ConsoleCapability", cap.name)
    assert.equal(cap.toolset:system_prompt(), cap.instructions)
    assert.matches("hashline_edit", cap.instructions, 1, true)
    local names = {}
    for _, d in ipairs(cap.toolset:definitions()) do names[#names + 1] = d.name end
    assert.equal("ls,read_file,write_file,hashline_edit,glob,grep", table.concat(names, ","))
    local plain = moonbox.console_capability { backend = mem() }
    assert.matches("read_file", plain.instructions, 1, true)
  end)

  it("passes everything through without permissions", function()
    local cap = moonbox.console_capability { backend = mem() }
    local defs = cap.toolset:definitions()
    assert.equal(defs, cap.prepare_tools(defs))
    assert.is_true(cap.before_tool_execute("write_file", { path = "/.env" }))
    assert.is_true(cap.before_tool_execute("execute", { command = "rm -rf /" }))
    assert.is_true(cap.before_tool_execute("not_a_console_tool", {}))
  end)

  it("checks its options like the toolset", function()
    assert.has_error(function() moonbox.console_capability() end)
    assert.has_error(function() moonbox.console_capability { backend = mem(), colour = 1 } end)
    assert.has_error(function() moonbox.console_capability { backend = mem(), descriptions = { nope = "x" } } end)
  end)

  with_perms("drops denied tools and checks paths and commands per call", function()
    local perms = require "moonbox.permissions"
    local readonly = perms.presets.READONLY
    local cap = moonbox.console_capability { backend = mem(), permissions = readonly }
    local all = moonbox.console_toolset({ backend = mem() }):definitions()
    all[#all + 1] = { name = "web_search", description = "x", parameters = { type = "object", properties = {} } }
    local kept = {}
    for _, d in ipairs(cap.prepare_tools(all)) do kept[#kept + 1] = d.name end
    assert.equal("ls,read_file,glob,grep,web_search", table.concat(kept, ","))
    assert.is_true(cap.before_tool_execute("read_file", { path = "/src/a.py" }))
    local ok, msg, code = cap.before_tool_execute("read_file", { path = "/.env" })
    assert.is_nil(ok)
    assert.equal("DENIED", code)
    assert.matches("Permission denied for read on '/.env'", msg, 1, true)
    assert.equal("DENIED", select(3, cap.before_tool_execute("write_file", { path = "/a.txt" })))
    assert.equal("DENIED", select(3, cap.before_tool_execute("execute", { command = "ls" })))
    assert.is_true(cap.before_tool_execute("glob", { pattern = "**" }))
    assert.is_true(cap.before_tool_execute("web_search", { q = "x" }))
  end)

  with_perms("asks through the callback, or refuses with ASK without one", function()
    local perms = require "moonbox.permissions"
    local asked
    local cap = moonbox.console_capability { backend = mem(), permissions = perms.presets.DEFAULT,
      ask = function(op, target) asked = op .. " " .. target; return true end }
    assert.is_true(cap.before_tool_execute("execute", { command = "make test" }))
    assert.equal("execute make test", asked)
    local strict = moonbox.console_capability { backend = mem(), permissions = perms.presets.DEFAULT }
    assert.equal("ASK", select(3, strict.before_tool_execute("write_file", { path = "/a.txt" })))
    local deny = moonbox.console_capability { backend = mem(), permissions = perms.presets.DEFAULT,
      ask_fallback = "deny" }
    assert.equal("DENIED", select(3, deny.before_tool_execute("write_file", { path = "/a.txt" })))
  end)
end)
