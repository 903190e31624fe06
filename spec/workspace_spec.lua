-- moonbox.workspace: what `moonbox agent` and `moonbox mcp` build from their options.
local workspace = require "moonbox.workspace"
local tmp = require "spec.support.tmpdir"

describe("moonbox.workspace", function()
  local dir, remove
  before_each(function() dir, remove = tmp.make() end)
  after_each(function() remove() end)

  local function names(ws)
    local out = {}
    for _, d in ipairs(ws.capability.prepare_tools(ws.toolset:definitions())) do out[#out + 1] = d.name end
    table.sort(out)
    return out
  end

  it("offers only the tools a tenant policy lists, and refuses the others", function()
    local paths = package.loaded["moonbox.paths"]
    local ws = assert(workspace.open { root = dir, sandbox = "none",
      policy = paths.presets .. "/tenants/reviewer.lua" })
    assert.same({ "glob", "grep", "ls", "read_file" }, names(ws))
    local ok, msg, code = ws.capability.before_tool_execute("write_file", { path = "/x", content = "y" })
    assert.is_nil(ok)
    assert.equal("DENIED", code)
    assert.matches("not allowed by the tenant policy", msg, 1, true)
    assert.is_true((ws.capability.before_tool_execute("ls", { path = "/" })))
    ws.close()
  end)

  it("builds a preset workspace with every console tool of a sandbox", function()
    local ws = assert(workspace.open { root = dir, sandbox = "local", preset = "permissive" })
    assert.equal("local", ws.sandbox_kind)
    local list = names(ws)
    assert.truthy(table.concat(list, ","):find("execute", 1, true))
    assert.truthy(table.concat(list, ","):find("write_file", 1, true))
    ws.close()
  end)

  it("refuses unknown presets, sandboxes and edit formats", function()
    local ws, msg, code = workspace.open { root = dir, preset = "nope" }
    assert.is_nil(ws)
    assert.equal("INVALID", code)
    assert.matches("unknown preset 'nope'", msg, 1, true)
    ws, msg, code = workspace.open { root = dir, sandbox = "vm" }
    assert.is_nil(ws)
    assert.equal("INVALID", code)
    assert.matches("unknown sandbox 'vm'", msg, 1, true)
    ws, msg, code = workspace.open { root = dir, sandbox = "none", edit_format = "diff" }
    assert.is_nil(ws)
    assert.equal("INVALID", code)
    assert.matches("unknown edit format", msg, 1, true)
  end)
end)
