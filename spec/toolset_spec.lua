-- moonbox.console_toolset: definitions, argument checks, every tool's answers and errors
-- (reference §7, §9.9, §9.11, §9.12), over every backend that is available.
local moonbox = require "moonbox"
local toolset = require "moonbox.toolset"
local descriptions = require "moonbox.toolset.descriptions"
local hashline = require "moonbox.hashline"
local lua_backend = require "spec.support.lua_backend"
local table_sandbox = require "spec.support.table_sandbox"
local schema = require "spec.support.json_schema"
local tmpdir = require "spec.support.tmpdir"

local quiet = function() end
local HAS_PERMISSIONS = pcall(require, "moonbox.permissions")

local function mem(files) return lua_backend.new { files = files or {} } end

-- A toolset whose call() returns the answer only (call2 keeps is_error too), so answers can go
-- straight into assert.matches.
local function new(opts)
  opts.on_error = opts.on_error or quiet
  local ts = moonbox.console_toolset(opts)
  ts.call2 = ts.call
  ts.call = function(self, name, args) return (self:call2(name, args)) end
  return ts
end

local function names(ts)
  local out = {}
  for _, d in ipairs(ts:definitions()) do out[#out + 1] = d.name end
  return table.concat(out, ",")
end

local READONLY = { default = "deny", read = { default = "allow" }, glob = { default = "allow" },
  grep = { default = "allow" }, ls = { default = "allow" } }

describe("console_toolset options", function()
  local b = mem()

  it("needs a backend and checks every option", function()
    assert.has_error(function() moonbox.console_toolset({}) end,
      "console_toolset: option 'backend' is required (a backend or sandbox)")
    assert.has_error(function() moonbox.console_toolset() end)
    assert.has_error(function() moonbox.console_toolset({ backend = b, colour = "red" }) end)
    assert.has_error(function() moonbox.console_toolset({ backend = b, edit_format = "patch" }) end)
    assert.has_error(function() moonbox.console_toolset({ backend = b, profile = "chat" }) end)
    assert.has_error(function() moonbox.console_toolset({ backend = b, ask_fallback = "allow" }) end)
    assert.has_error(function() moonbox.console_toolset({ backend = b, hash_len = 9 }) end)
    assert.has_error(function() moonbox.console_toolset({ backend = b, include_execute = "yes" }) end)
    assert.has_error(function() moonbox.console_toolset({ backend = b, max_image_bytes = -1 }) end)
  end)

  it("refuses unknown description overrides, listing the valid names", function()
    local ok, e = pcall(moonbox.console_toolset, { backend = b, descriptions = { reed_file = "x", zap = "y" } })
    assert.is_false(ok)
    assert.matches("unknown tool name(s) in `descriptions`: reed_file, zap. Valid names: edit_file, execute, glob, "
      .. "grep, hashline_edit, kill_shell, list_shells, ls, read_file, read_output, run_in_background, write_file.",
      e, 1, true)
    assert.has_error(function() moonbox.console_toolset({ backend = b, descriptions = { ls = 3 } }) end)
    assert.has_error(function()
      moonbox.console_toolset({ backend = b, descriptions = { hashline_read_file = "x" } })
    end)
  end)

  it("is registered in moonbox", function()
    assert.same({ "moonbox.toolset", "new" }, moonbox._registry.console_toolset)
    assert.same({ "moonbox.capability", "new" }, moonbox._registry.console_capability)
    assert.equal("function", type(moonbox.console_toolset))
    assert.equal("function", type(moonbox.console_capability))
    assert.equal("function", type(toolset.new))
  end)
end)

describe("console_toolset definitions", function()
  local b = table_sandbox.new({}, function() return { output = "", exit_code = 0 } end)

  it("offers the reference's tools in order, per edit format", function()
    assert.equal("ls,read_file,write_file,edit_file,glob,grep,execute,run_in_background,read_output,kill_shell,"
      .. "list_shells", names(new { backend = b }))
    assert.equal("ls,read_file,write_file,hashline_edit,glob,grep,execute,run_in_background,read_output,"
      .. "kill_shell,list_shells", names(new { backend = b, edit_format = "hashline" }))
    assert.equal("ls,read_file,write_file,edit_file,glob,grep,execute",
      names(new { backend = b, include_background = false }))
    assert.equal("ls,read_file,write_file,edit_file,glob,grep", names(new { backend = b, include_execute = false }))
  end)

  local with_perms = HAS_PERMISSIONS and it or pending
  with_perms("drops the tools whose operation defaults to deny, the five shell tools together", function()
    assert.equal("ls,read_file,glob,grep", names(new { backend = b, permissions = READONLY }))
    assert.equal("ls,read_file,glob,grep", names(new { backend = b, permissions = READONLY, edit_format = "hashline" }))
    local no_exec = { default = "allow", execute = { default = "deny" } }
    assert.equal("ls,read_file,write_file,edit_file,glob,grep", names(new { backend = b, permissions = no_exec }))
    local ask_all = { default = "ask" }
    assert.equal(11, #new({ backend = b, permissions = ask_all }):definitions())
    -- an operation's own default overrides the ruleset's
    local edit_ok = { default = "deny", edit = { default = "allow" }, read = { default = "allow" } }
    assert.equal("ls,read_file,edit_file,glob,grep", names(new { backend = b, permissions = edit_ok }))
    assert.equal("deny", toolset.operation_default(READONLY, "write"))
    assert.equal("allow", toolset.operation_default(READONLY, "read"))
    assert.equal("ask", toolset.operation_default({}, "read"))
  end)

  it("marks the tools that need approval, from the flags or from the ruleset", function()
    local function approvals(ts)
      local out = {}
      for _, d in ipairs(ts:definitions()) do
        if d.requires_approval then out[#out + 1] = d.name end
        assert.equal(d.requires_approval, ts:requires_approval(d.name))
      end
      return table.concat(out, ",")
    end
    assert.equal("execute,run_in_background,kill_shell", approvals(new { backend = b }))
    assert.equal("write_file,edit_file,execute,run_in_background,kill_shell",
      approvals(new { backend = b, require_write_approval = true }))
    assert.equal("write_file,hashline_edit", approvals(new { backend = b, edit_format = "hashline",
      require_write_approval = true, require_execute_approval = false }))
    assert.equal("write_file,edit_file,execute,run_in_background,kill_shell",
      approvals(new { backend = b, permissions = { default = "ask" } }))
    assert.equal("", approvals(new { backend = b, permissions = { default = "allow" } }))
    assert.equal("execute,run_in_background,kill_shell",
      approvals(new { backend = b, permissions = { default = "allow", execute = { default = "ask" } } }))
    assert.is_false(new({ backend = b }):requires_approval("read_file"))
    assert.is_false(new({ backend = b }):requires_approval("nope"))
  end)

  it("gives JSON Schemas valid under draft 2020-12 and usable by OpenAI, Anthropic and MCP", function()
    local cjson = require "cjson"
    for _, fmt in ipairs({ "str_replace", "hashline" }) do
      for _, d in ipairs(new({ backend = b, edit_format = fmt }):definitions()) do
        assert.is_string(d.description)
        assert.is_true(#d.description > 40, d.name)
        local p = d.parameters
        local ok, problems = schema.check_schema(p)
        assert(ok, d.name .. ": " .. table.concat(problems or {}, "; "))
        assert.equal("object", p.type)
        assert.is_false(p.additionalProperties)
        for pname, prop in pairs(p.properties) do
          assert(type(prop.description) == "string" and #prop.description > 3, d.name .. "." .. pname)
          assert.is_string(prop.type)
        end
        -- round trip through JSON: required stays an array, properties an object
        local back = cjson.decode(cjson.encode(p))
        assert.same(p, back)
        local json = cjson.encode(p)
        if p.required then assert.matches('"required":%[', json) end
        assert.matches('"properties":{', json)
        -- every default is a valid value, and an empty call is valid exactly when nothing is required
        assert.equal(p.required == nil, (schema.validate(p, setmetatable({}, {}))))
      end
    end
  end)

  it("accepts exactly the arguments its schemas accept", function()
    local null = require("cjson").null
    local ts = new { backend = b, edit_format = "hashline" }
    local samples = {
      { "ls", {} }, { "ls", { path = "/" } }, { "ls", { path = 1 } }, { "ls", { dir = "/" } },
      { "read_file", { path = "/a", offset = 0, limit = 1 } }, { "read_file", { path = "/a", limit = 0 } },
      { "read_file", { offset = 1 } }, { "read_file", { path = "/a", offset = 1.5 } },
      { "read_file", { path = "/a", offset = 2.0 } }, { "read_file", { path = true } },
      { "hashline_edit", { path = "/a", start_line = 1, start_hash = "ab", new_content = "" } },
      { "hashline_edit", { path = "/a", start_line = 0, start_hash = "ab", new_content = "" } },
      { "hashline_edit", { path = "/a", start_line = 1, start_hash = "ab" } },
      { "hashline_edit", { path = "/a", start_line = 1, start_hash = "ab", new_content = "x", insert_after = 1 } },
      { "hashline_edit", { path = "/a", start_line = 1, start_hash = "ab", new_content = "x", end_line = 2,
        end_hash = "cd", insert_after = false } },
      { "grep", { pattern = "x", output_mode = "count" } }, { "grep", { pattern = "x", output_mode = "all" } },
      { "grep", { pattern = "x", ignore_case = "yes" } }, { "grep", { pattern = "x", glob_pattern = "*.c" } },
      { "execute", { command = "x", timeout = 0 } }, { "execute", { command = "x", timeout = 30 } },
      { "execute", { command = { "ls" } } }, { "list_shells", {} }, { "list_shells", { all = true } },
      { "kill_shell", { shell_id = "bg_1" } }, { "kill_shell", { shell_id = 1 } },
    }
    local defs = {}
    for _, d in ipairs(ts:definitions()) do defs[d.name] = d.parameters end
    for _, c in ipairs(samples) do
      local valid = schema.validate(defs[c[1]], c[2])
      local out = ts:call(c[1], c[2])
      local refused = out:find("^Error: Missing required argument") or out:find("^Error: Unknown argument")
        or out:find("^Error: Argument '")
      assert(valid == not refused, c[1] .. ": schema says " .. tostring(valid) .. ", call says " .. out)
    end
    -- null stands for an absent optional argument (models send it), never for a required one
    assert.is_nil(ts:call("read_file", { path = "/a", offset = null }):find("^Error: Argument"))
  end)

  it("declares the parameters and defaults of the reference", function()
    local defs = {}
    for _, d in ipairs(new({ backend = b }):definitions()) do defs[d.name] = d.parameters end
    assert.same({ "path" }, defs.read_file.required)
    assert.equal(0, defs.read_file.properties.offset.default)
    assert.equal(2000, defs.read_file.properties.limit.default)
    assert.same({ "path", "old_string", "new_string" }, defs.edit_file.required)
    assert.is_false(defs.edit_file.properties.replace_all.default)
    assert.same({ "files_with_matches", "content", "count" }, defs.grep.properties.output_mode.enum)
    assert.equal("files_with_matches", defs.grep.properties.output_mode.default)
    assert.is_true(defs.grep.properties.ignore_hidden.default)
    assert.equal(120, defs.execute.properties.timeout.default)
    assert.is_nil(defs.list_shells.required)
    assert.same({}, defs.list_shells.properties)
    local hl = {}
    for _, d in ipairs(new({ backend = b, edit_format = "hashline" }):definitions()) do hl[d.name] = d.parameters end
    assert.same({ "path", "start_line", "start_hash", "new_content" }, hl.hashline_edit.required)
    assert.equal("integer", hl.hashline_edit.properties.end_line.type)
    local hidden = new({ backend = b, default_ignore_hidden = false }):definitions()
    for _, d in ipairs(hidden) do
      if d.name == "grep" then assert.is_false(d.parameters.properties.ignore_hidden.default) end
    end
  end)

  it("renders descriptions with summary, usage, coding block and returns", function()
    local defs = {}
    for _, d in ipairs(new({ backend = b }):definitions()) do defs[d.name] = d.description end
    assert.matches("^<summary>", defs.grep)
    assert.matches("<description>`files_with_matches` lists paths", defs.grep, 1, true)
    assert.matches("</returns>$", defs.read_file)
    assert.matches("git add -A", defs.execute, 1, true)
    local agent = {}
    for _, d in ipairs(new({ backend = b, profile = "agent" }):definitions()) do agent[d.name] = d.description end
    assert.is_nil(agent.execute:find("git add -A", 1, true))
    assert.is_true(#agent.execute < #defs.execute)
    assert.equal("Do a thing.\n\nCarefully.", descriptions.render({ summary = "Do a thing.", usage = "Carefully." }))
    local hl = {}
    for _, d in ipairs(new({ backend = b, edit_format = "hashline" }):definitions()) do hl[d.name] = d.description end
    assert.matches("{line_number}:{hash}|{content}", hl.read_file:gsub("{text}", "{content}"), 1, true)
  end)

  it("applies description overrides: a string replaces the text, a table the text and argument help", function()
    local ts = new { backend = b, descriptions = { read_file = "Read it.", ls = { summary = "List.", usage = "",
      returns = "", args = { path = "Where to look." } } } }
    local defs = {}
    for _, d in ipairs(ts:definitions()) do defs[d.name] = d end
    assert.equal("Read it.", defs.read_file.description)
    assert.equal(descriptions.TOOL_TEXT.read_file.args.path, defs.read_file.parameters.properties.path.description)
    assert.equal("List.", defs.ls.description)
    assert.equal("Where to look.", defs.ls.parameters.properties.path.description)
    -- the read_file override applies in hashline mode too
    local hl = new { backend = b, edit_format = "hashline", descriptions = { read_file = "Read it." } }
    for _, d in ipairs(hl:definitions()) do
      if d.name == "read_file" then assert.equal("Read it.", d.description) end
    end
  end)

  it("gives a system prompt per edit format", function()
    local sp = new({ backend = b }):system_prompt()
    for _, w in ipairs({ "ls", "read_file", "write_file", "edit_file", "execute" }) do
      assert.matches(w, sp, 1, true)
    end
    assert.is_nil(sp:lower():find("hashline", 1, true))
    local hp = new({ backend = b, edit_format = "hashline" }):system_prompt()
    assert.matches("hashline_edit", hp, 1, true)
    assert.is_nil(hp:find("edit_file", 1, true))
    assert.equal(descriptions.SYSTEM_PROMPT, descriptions.system_prompt())
  end)
end)

describe("console_toolset:call argument checks", function()
  local ts = new { backend = mem({ ["/a.txt"] = "one\ntwo\n" }) }

  local cases = {
    { "unknown tool", "rm", {}, "Error: Unknown tool 'rm'. Available tools: ls, read_file, write_file, edit_file, "
      .. "glob, grep, execute, run_in_background, read_output, kill_shell, list_shells." },
    { "missing argument", "read_file", {}, "Error: Missing required argument 'path' for tool 'read_file'." },
    { "null for a required argument", "read_file", { path = require("cjson").null },
      "Error: Missing required argument 'path' for tool 'read_file'." },
    { "unknown argument", "read_file", { path = "/a.txt", fiel = 1 },
      "Error: Unknown argument 'fiel' for tool 'read_file'. Valid arguments: limit, offset, path." },
    { "two unknown arguments", "list_shells", { a = 1, b = 2 },
      "Error: Unknown arguments 'a', 'b' for tool 'list_shells'. Valid arguments: none." },
    { "wrong type", "read_file", { path = "/a.txt", offset = "3" },
      "Error: Argument 'offset' of tool 'read_file' must be an integer (got string)." },
    { "fractional integer", "read_file", { path = "/a.txt", limit = 2.5 },
      "Error: Argument 'limit' of tool 'read_file' must be an integer (got number)." },
    { "wrong type: boolean", "edit_file", { path = "/a.txt", old_string = "a", new_string = "b", replace_all = "yes" },
      "Error: Argument 'replace_all' of tool 'edit_file' must be a boolean (got string)." },
    { "object for a string", "write_file", { path = { "x" }, content = "" },
      "Error: Argument 'path' of tool 'write_file' must be a string (got array)." },
    { "enum", "grep", { pattern = "x", output_mode = "lines" },
      "Error: Argument 'output_mode' of tool 'grep' must be one of: files_with_matches, content, count "
        .. "(got 'lines')." },
    { "minimum", "read_file", { path = "/a.txt", offset = -1 },
      "Error: Argument 'offset' of tool 'read_file' must be >= 0 (got -1)." },
    { "arguments not an object", "ls", "x", "Error: Arguments of tool 'ls' must be an object (got string)." },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local out, is_error = ts:call2(c[2], c[3])
      assert.equal(c[4], out)
      assert.is_true(is_error)
    end)
  end

  it("accepts null for optional arguments, whole floats for integers, and no arguments at all", function()
    local null = require("cjson").null
    assert.equal("     1\tone\n     2\ttwo", ts:call("read_file", { path = "/a.txt", offset = null, limit = 10.0 }))
    assert.matches("^Contents of /:", ts:call("ls"))
    local out, is_error = ts:call2("read_file", { path = "/a.txt" })
    assert.is_false(is_error)
    assert.matches("one", out)
  end)
end)

-- The tool answers over one backend; `make(files)` returns a fresh backend holding `files`.
-- Texts the toolset writes are asserted exactly; the backends' own messages only in substance.
local function tool_suite(label, make)
  describe("console tools over " .. label, function()
    local b, ts
    before_each(function()
      b = make({ ["/src/main.py"] = "def main():\n    return 1\n", ["/README.md"] = "# demo\n",
        ["/notes.txt"] = "alpha\nbeta\ngamma\n" })
      ts = new { backend = b }
    end)

    it("ls lists directories first with a slash, files with sizes", function()
      local out = ts:call("ls", { path = "/" })
      assert.matches("^Contents of /:\n", out)
      assert.matches("\n  src/\n", out, 1, true)
      assert.matches("  README.md (7 bytes)", out, 1, true)
      assert.matches("  notes.txt (17 bytes)", out, 1, true)
      assert.equal("Directory '/nope' is empty or does not exist", ts:call("ls", { path = "/nope" }))
    end)

    it("read_file returns numbered lines, slices and errors", function()
      assert.equal("     1\talpha\n     2\tbeta\n     3\tgamma", ts:call("read_file", { path = "/notes.txt" }))
      assert.equal("     2\tbeta\n\n... (1 more lines)", ts:call("read_file", { path = "/notes.txt", offset = 1,
        limit = 1 }))
      local out, is_error = ts:call2("read_file", { path = "/missing.txt" })
      assert.equal("Error: File '/missing.txt' not found. Check the path with `ls` or `glob`, then read it again.", out)
      assert.is_true(is_error)
      assert(b:write("/empty.txt", ""))
      assert.matches("^     1\t$", ts:call("read_file", { path = "/empty.txt" }):gsub("%(the file is empty%)",
        "     1\t"))
      assert.matches("^Error: .*Offset 9 exceeds file length %(3 lines%)", ts:call("read_file", { path = "/notes.txt",
        offset = 9 }))
    end)

    it("write_file reports lines written and creates parents", function()
      assert.matches("^Wrote 2 lines to .*/new/dir/x%.txt$", ts:call("write_file", { path = "/new/dir/x.txt",
        content = "a\nb\n" }))
      assert.equal("a\nb\n", b:read_bytes("/new/dir/x.txt"))
      assert.matches("^Wrote 0 lines to ", ts:call("write_file", { path = "/empty.txt", content = "" }))
      assert.matches("^Wrote 1 lines to ", ts:call("write_file", { path = "/one.txt", content = "no newline" }))
    end)

    it("edit_file replaces exact text and names the path", function()
      assert.matches("^Edited .*/notes%.txt: replaced 1 occurrence%(s%)$", ts:call("edit_file", { path = "/notes.txt",
        old_string = "beta", new_string = "BETA" }))
      assert.equal("alpha\nBETA\ngamma\n", b:read_bytes("/notes.txt"))
      ts:call("write_file", { path = "/r.txt", content = "x x x\n" })
      assert.matches("^Edited .*: replaced 3 occurrence%(s%)$", ts:call("edit_file", { path = "/r.txt",
        old_string = "x",
        new_string = "y", replace_all = true }))
      assert.equal("y y y\n", b:read_bytes("/r.txt"))
    end)

    it("edit_file failures are Error text", function()
      local out = ts:call("edit_file", { path = "/notes.txt", old_string = "delta", new_string = "x" })
      assert.matches("^Error: ", out)
      ts:call("write_file", { path = "/r.txt", content = "x x\n" })
      out = ts:call("edit_file", { path = "/r.txt", old_string = "x", new_string = "y" })
      assert.matches("^Error: .*2 times", out)
      out = ts:call("edit_file", { path = "/none.txt", old_string = "x", new_string = "y" })
      assert.matches("^Error: .*not found", out)
      assert.equal("Error: File '/none.txt' not found. Check the path with `ls` or `glob`, then read it again.", out)
    end)

    it("edit_file refuses a file changed since it was read, and allows the rest", function()
      ts:call("read_file", { path = "/notes.txt" })
      assert(b:write("/notes.txt", "alpha\nchanged elsewhere\ngamma\n"))
      assert.equal("Error: '/notes.txt' changed since you last read it. Read it again before editing so your change "
        .. "applies to the current contents.", ts:call("edit_file", { path = "/notes.txt", old_string = "alpha",
        new_string = "A" }))
      assert.equal("alpha\nchanged elsewhere\ngamma\n", b:read_bytes("/notes.txt"))
      -- read again: the edit goes through, and consecutive edits need no new read
      ts:call("read_file", { path = "/notes.txt" })
      assert.matches("^Edited", ts:call("edit_file", { path = "/notes.txt", old_string = "alpha", new_string = "A" }))
      assert.matches("^Edited", ts:call("edit_file", { path = "notes.txt", old_string = "gamma", new_string = "G" }))
      -- never read: not checked; written through the tool: counts as read
      assert.matches("^Edited", ts:call("edit_file", { path = "/README.md", old_string = "demo", new_string = "d" }))
      ts:call("write_file", { path = "/w.txt", content = "1\n" })
      assert.matches("^Edited", ts:call("edit_file", { path = "/w.txt", old_string = "1", new_string = "2" }))
      -- a failed read records nothing
      ts:call("read_file", { path = "/later.txt" })
      assert(b:write("/later.txt", "x\n"))
      assert.matches("^Edited", ts:call("edit_file", { path = "/later.txt", old_string = "x", new_string = "y" }))
    end)

    it("glob lists matches, caps at 100 and says when nothing matched", function()
      assert.equal("Found 1 file(s) matching '**/*.py':\n  /src/main.py", ts:call("glob", { pattern = "**/*.py" }))
      assert.equal("No files matching '*.rs' in /", ts:call("glob", { pattern = "*.rs" }))
      for i = 1, 105 do assert(b:write(("/many/f%03d.txt"):format(i), "x")) end
      local out = ts:call("glob", { pattern = "*.txt", path = "/many" })
      assert.matches("^Found 105 file%(s%) matching '%*%.txt':\n", out)
      assert.matches("\n  ... and 5 more$", out)
      local _, lines = out:gsub("\n", "")
      assert.equal(101, lines)
    end)

    it("grep answers in three modes, caps lists and cuts long lines", function()
      assert.equal("Files containing 'a':\n  /notes.txt\n  /src/main.py", ts:call("grep", { pattern = "a" }))
      assert.equal("Found 3 match(es) for 'a'", ts:call("grep", { pattern = "a", path = "/notes.txt",
        output_mode = "count" }))
      assert.matches("^Matches for 'eta':\n  [^\n]*notes%.txt:2: beta$", ts:call("grep", { pattern = "eta",
        output_mode = "content" }))
      assert.equal("No matches for 'zzz'", ts:call("grep", { pattern = "zzz" }))
      assert.matches("^Files containing 'def':\n  .*main%.py$", ts:call("grep", { pattern = "def",
        glob_pattern = "*.py" }))
      assert.equal("No matches for 'ALPHA'", ts:call("grep", { pattern = "ALPHA" }))
      assert.matches("notes%.txt", ts:call("grep", { pattern = "ALPHA", ignore_case = true }))
      assert(b:write("/long.txt", ("x"):rep(150) .. "\n"))
      for i = 1, 60 do assert(b:write(("/g/f%02d.txt"):format(i), "needle\n")) end
      local out = ts:call("grep", { pattern = "x+", path = "/long.txt", output_mode = "content" })
      assert.matches(":1: " .. ("x"):rep(100) .. "$", out)
      out = ts:call("grep", { pattern = "needle", path = "/g" })
      assert.matches("\n  ... and 10 more files$", out)
      out = ts:call("grep", { pattern = "needle", path = "/g", output_mode = "content" })
      assert.matches("\n  ... and 10 more matches$", out)
      assert.equal("Found 60 match(es) for 'needle'", ts:call("grep", { pattern = "needle", output_mode = "count" }))
    end)

    it("grep passes backend errors through as Error text", function()
      local out, is_error = ts:call2("grep", { pattern = "(" })
      assert.matches("^Error: .*regex", out)
      assert.is_true(is_error)
    end)

    it("hashline read and edit round-trip", function()
      local hl = new { backend = b, edit_format = "hashline" }
      local out = hl:call("read_file", { path = "/notes.txt" })
      assert.equal(("1:%s|alpha\n2:%s|beta\n3:%s|gamma"):format(hashline.hash("alpha"), hashline.hash("beta"),
        hashline.hash("gamma")), out)
      local h2 = out:match("\n2:(%x+)|")
      assert.matches("^Edited .*notes%.txt: Replaced 1 line%(s%) with 2 line%(s%) at line 2$", hl:call("hashline_edit",
        { path = "/notes.txt", start_line = 2, start_hash = h2, new_content = "B1\nB2" }))
      assert.equal("alpha\nB1\nB2\ngamma\n", b:read_bytes("/notes.txt"))
      -- a stale anchor
      out = hl:call("hashline_edit", { path = "/notes.txt", start_line = 2, start_hash = h2, new_content = "x" })
      assert.matches("^Error: Hash mismatch at line 2: expected '" .. h2 .. "', got '%x+'%. File may have changed", out)
      -- insert, delete, range
      assert.matches("Inserted 1 line%(s%) after line 1$", hl:call("hashline_edit", { path = "/notes.txt",
        start_line = 1, start_hash = hashline.hash("alpha"), new_content = "a2", insert_after = true }))
      assert.matches("Deleted 2 line%(s%) at line 3$", hl:call("hashline_edit", { path = "/notes.txt", start_line = 3,
        start_hash = hashline.hash("B1"), end_line = 4, end_hash = hashline.hash("B2"), new_content = "" }))
      assert.equal("alpha\na2\ngamma\n", b:read_bytes("/notes.txt"))
      assert.matches("^Error: Line 9 out of range %(file has 3 lines%)$", hl:call("hashline_edit", {
        path = "/notes.txt",
        start_line = 9, start_hash = "00", new_content = "x" }))
    end)

    it("hashline read offsets, missing files and empty files", function()
      local hl = new { backend = b, edit_format = "hashline" }
      assert.equal(("3:%s|gamma"):format(hashline.hash("gamma")), hl:call("read_file", { path = "/notes.txt",
        offset = 2 }))
      assert.equal("Error: Offset 5 exceeds file length (3 lines)", hl:call("read_file", { path = "/notes.txt",
        offset = 5 }))
      assert.equal("Error: File '/nope.txt' not found. Check the path with `ls` or `glob`, then read it again.",
        hl:call("read_file", { path = "/nope.txt" }))
      assert.matches("^Error: File '/nope.txt' not found", hl:call("hashline_edit", { path = "/nope.txt",
        start_line = 1, start_hash = "00", new_content = "x" }))
      assert(b:write("/empty.txt", ""))
      assert.equal("1:" .. hashline.hash("") .. "|", hl:call("read_file", { path = "/empty.txt" }))
      assert(b:write("/bin.dat", "a\0b\255"))
      assert.matches("^Error: File '/bin.dat' is binary", hl:call("read_file", { path = "/bin.dat" }))
    end)

    it("hashline_edit refuses a file changed since it was read", function()
      local hl = new { backend = b, edit_format = "hashline", hash_len = 4 }
      local out = hl:call("read_file", { path = "/notes.txt" })
      assert.matches("^1:%x%x%x%x|alpha", out)
      assert(b:write("/notes.txt", "zero\nalpha\nbeta\ngamma\n"))
      assert.matches("changed since you last read it", hl:call("hashline_edit", { path = "/notes.txt", start_line = 1,
        start_hash = hashline.hash("alpha", 4), new_content = "A" }))
    end)

    it("hashline keeps CRLF line endings and a missing final newline", function()
      local hl = new { backend = b, edit_format = "hashline" }
      assert(b:write("/crlf.txt", "one\r\ntwo\r\nthree"))
      local out = hl:call("read_file", { path = "/crlf.txt" })
      assert.equal(("1:%s|one\n2:%s|two\n3:%s|three"):format(hashline.hash("one"), hashline.hash("two"),
        hashline.hash("three")), out)
      assert.matches("^Edited", hl:call("hashline_edit", { path = "/crlf.txt", start_line = 2,
        start_hash = hashline.hash("two"), new_content = "TWO\nTWO-B" }))
      assert.equal("one\r\nTWO\r\nTWO-B\r\nthree", b:read_bytes("/crlf.txt"))
    end)

    it("images and PDFs become content parts when enabled, text paths otherwise", function()
      local png = "\137PNG\r\n\26\n" .. ("\0"):rep(20)
      assert(b:write("/pic.PNG", png))
      assert(b:write("/doc.pdf", "%PDF-1.4\n%%EOF\n"))
      local media = new { backend = b, image_support = true, document_support = true }
      local part = media:call("read_file", { path = "/pic.PNG" })
      assert.same({ type = "image", media_type = "image/png", data = moonbox.codec.base64_encode(png) }, part)
      assert.equal(png, moonbox.codec.base64_decode(part.data))
      part = media:call("read_file", { path = "/doc.pdf" })
      assert.equal("document", part.type)
      assert.equal("application/pdf", part.media_type)
      assert.equal("Error: Image file '/missing.jpg' not found or empty", media:call("read_file",
        { path = "/missing.jpg" }))
      assert.equal("Error: Document file '/missing.pdf' not found or empty", media:call("read_file",
        { path = "/missing.pdf" }))
      local tiny = new { backend = b, image_support = true, max_image_bytes = 1, document_support = true,
        max_document_bytes = 0 }
      assert.equal("Error: Image '/pic.PNG' too large (0.0MB, max 0.0MB)", tiny:call("read_file",
        { path = "/pic.PNG" }))
      assert.equal("Error: Document '/doc.pdf' too large (0.0MB, max 0.0MB)", tiny:call("read_file",
        { path = "/doc.pdf" }))
      -- off by default: a PDF is read as text; hashline mode shares the media path
      assert.equal("string", type(new({ backend = b }):call("read_file", { path = "/doc.pdf" })))
      local hl = new { backend = b, edit_format = "hashline", document_support = true }
      assert.equal("document", hl:call("read_file", { path = "/doc.pdf" }).type)
      -- files without an image extension stay text
      assert.equal("string", type(media:call("read_file", { path = "/notes.txt" })))
    end)

    it("shell tools say the backend cannot run commands", function()
      assert.equal("Error: Backend does not support command execution", ts:call("execute", { command = "true" }))
      assert.equal("Error: Backend does not support background processes", ts:call("run_in_background",
        { command = "x" }))
      assert.equal("Error: Backend does not support background processes", ts:call("read_output", { shell_id = "x" }))
      assert.equal("Error: Backend does not support background processes", ts:call("kill_shell", { shell_id = "x" }))
      assert.equal("Error: Backend does not support background processes", ts:call("list_shells"))
    end)
  end)
end

tool_suite("the Lua-table backend", mem)
tool_suite("state_backend", function(files) return moonbox.state_backend { files = files } end)

describe("on disk", function()
  local cleanups = {}
  tool_suite("local_backend", function(files)
    local dir, rm = tmpdir.make()
    cleanups[#cleanups + 1] = rm
    local b = moonbox.local_backend { root = dir }
    for p, c in pairs(files) do assert(b:write(p, c)) end
    return b
  end)
  teardown(function()
    for _, rm in ipairs(cleanups) do rm() end
  end)
end)

describe("console tools that fail inside", function()
  it("turns a raising backend into an Error result and logs the traceback", function()
    local logged
    local b = mem({ ["/a"] = "x" })
    b.read = function() error("connection reset by peer") end
    b.grep = function() error({ code = 7 }) end
    local ts = new { backend = b, on_error = function(m) logged = m end }
    local out, is_error = ts:call2("read_file", { path = "/a" })
    assert.equal("Error: connection reset by peer", out)
    assert.is_true(is_error)
    assert.matches("stack traceback", logged)
    assert.matches("^Error: ", ts:call("grep", { pattern = "x" }))
  end)

  it("reports a backend failure without a message", function()
    local b = mem()
    b.write = function() return nil end
    local ts = new { backend = b }
    assert.equal("Error: the backend failed without a message", ts:call("write_file", { path = "/x", content = "" }))
  end)

  it("passes backend error fields and Error strings through", function()
    local b = mem({ ["/a"] = "x\n" })
    b.write = function() return { error = "disk full" } end
    b.read = function() return "Error: File '/a' is weird" end
    b.grep = function() return "Error: Invalid regex pattern: missing )" end
    local ts = new { backend = b }
    assert.equal("Error: disk full", ts:call("write_file", { path = "/a", content = "" }))
    assert.equal("Error: File '/a' is weird", ts:call("read_file", { path = "/a" }))
    assert.equal("Error: Invalid regex pattern: missing )", ts:call("grep", { pattern = "(" }))
  end)

  it("serializes edits of one path: a second editor is refused while the first is inside the backend", function()
    local b = mem({ ["/a.txt"] = "one\n" })
    local real_edit = b.edit
    local ts = new { backend = b }
    b.edit = function(self, ...)
      coroutine.yield("inside")
      return real_edit(self, ...)
    end
    local first = coroutine.create(function()
      return ts:call("edit_file", { path = "/a.txt", old_string = "one", new_string = "uno" })
    end)
    assert.same({ true, "inside" }, { coroutine.resume(first) })
    -- A plain coroutine cannot wait for the holder: the concurrent editor gets a retryable error.
    local busy = coroutine.wrap(function()
      return ts:call("edit_file", { path = "a.txt", old_string = "one", new_string = "eins" })
    end)()
    assert.equal("Error: 'a.txt' is being edited by another call; try again.", busy)
    -- other paths are not blocked
    assert.matches("^Wrote", ts:call("write_file", { path = "/b.txt", content = "x" }))
    local ok, out = coroutine.resume(first)
    assert.is_true(ok)
    assert.matches("^Edited", out)
    assert.equal("uno\n", b:read_bytes("/a.txt"))
    -- released: the next edit goes through
    b.edit = real_edit
    assert.matches("^Edited", ts:call("edit_file", { path = "/a.txt", old_string = "uno", new_string = "eins" }))
  end)

  it("releases the lock when the backend raises", function()
    local b = mem({ ["/a.txt"] = "one\n" })
    local real_edit = b.edit
    b.edit = function() error("boom") end
    local ts = new { backend = b }
    assert.equal("Error: boom", ts:call("edit_file", { path = "/a.txt", old_string = "one", new_string = "x" }))
    b.edit = real_edit
    assert.matches("^Edited", ts:call("edit_file", { path = "/a.txt", old_string = "one", new_string = "x" }))
  end)

  it("makes a second editor wait inside a task until the first is done", function()
    local b = mem({ ["/a.txt"] = "one\n" })
    local real_edit = b.edit
    local ts = new { backend = b }
    local order = {}
    b.edit = function(self, path, old, ...)
      order[#order + 1] = "enter " .. old
      moonbox.sleep(0.02) -- the backend waits (I/O): other tasks run meanwhile
      order[#order + 1] = "leave " .. old
      return real_edit(self, path, old, ...)
    end
    local t1 = moonbox.spawn(function()
      return ts:call("edit_file", { path = "/a.txt", old_string = "one", new_string = "uno" })
    end)
    local t2 = moonbox.spawn(function()
      moonbox.sleep(0.005)
      return ts:call("edit_file", { path = "/a.txt", old_string = "uno", new_string = "eins" })
    end)
    assert.matches("^Edited", t1:join())
    assert.matches("^Edited", t2:join())
    assert.same({ "enter one", "leave one", "enter uno", "leave uno" }, order)
    assert.equal("eins\n", b:read_bytes("/a.txt"))
  end)
end)

-- Shell tools over a sandbox: `run` answers execute like a sandbox would.
local function sandbox_suite(label, make)
  describe("shell tools over " .. label, function()
    it("execute returns output, failures, truncation and timeouts as the reference", function()
      local sb = make(function(command, opts)
        if command == "echo hi" then return { output = "hi\n", exit_code = 0 } end
        if command == "exit 3" then return { output = "bad thing\n", exit_code = 3 } end
        if command == "yes" then return { output = "y\ny\n", exit_code = 0, truncated = true } end
        if command == "sleep 9" then return { output = "partial\n", exit_code = 124, timed_out = true } end
        if command == "split" then return { stdout = "out\n", stderr = "err\n", exit_code = 0 } end
        if command == "quiet" then return { output = "", exit_code = 0 } end
        if command == "denied" then return nil, "Permission denied for execute on 'denied'", "DENIED" end
        error("disabled: shell execution is disabled for this backend " .. tostring(opts.timeout))
      end)
      local ts = new { backend = sb }
      assert.equal("hi\n", ts:call("execute", { command = "echo hi" }))
      assert.equal(120, sb.last_execute.opts.timeout)
      assert.equal("Command failed (exit code 3):\nbad thing\n", ts:call("execute", { command = "exit 3" }))
      assert.equal("y\ny\n\n\n... (output truncated)", ts:call("execute", { command = "yes" }))
      assert.equal("Command failed (exit code 124):\npartial\n\n\nError: Command timed out after 5 seconds",
        ts:call("execute", { command = "sleep 9", timeout = 5 }))
      assert.equal(5, sb.last_execute.opts.timeout)
      assert.equal("out\nerr\n", ts:call("execute", { command = "split" }))
      assert.equal("(no output)", ts:call("execute", { command = "quiet" }))
      local out, is_error = ts:call2("execute", { command = "denied" })
      assert.equal("Error: Permission denied for execute on 'denied'", out)
      assert.is_true(is_error)
      out, is_error = ts:call2("execute", { command = "other" })
      assert.equal("Error: disabled: shell execution is disabled for this backend 120", out)
      assert.is_true(is_error)
      assert.is_false(select(2, ts:call2("execute", { command = "exit 3" })))
    end)

    it("runs, follows, lists and kills background shells", function()
      local sb = make(function() return { output = "", exit_code = 0 } end)
      local ts = new { backend = sb }
      assert.equal("No background shells.", ts:call("list_shells"))
      assert.equal("Started background shell bg_1 (pid 1001).\nUse read_output('bg_1') to follow its output and "
        .. "kill_shell('bg_1') to stop it.", ts:call("run_in_background", { command = "npm run dev" }))
      assert.equal("[bg_1] running\n(no new output)", ts:call("read_output", { shell_id = "bg_1" }))
      sb:feed("bg_1", "  listening on :3000\n")
      assert.equal("[bg_1] running\nlistening on :3000", ts:call("read_output", { shell_id = "bg_1" }))
      assert.equal("[bg_1] running\n(no new output)", ts:call("read_output", { shell_id = "bg_1" }))
      ts:call("run_in_background", { command = "make watch" })
      sb:feed("bg_2", "done\n", 0)
      assert.equal("[bg_2] exited (code 0)\ndone", ts:call("read_output", { shell_id = "bg_2" }))
      assert.equal("bg_1  running  npm run dev\nbg_2  exited(0)  make watch", ts:call("list_shells"))
      assert.equal("Killed background shell bg_1.", ts:call("kill_shell", { shell_id = "bg_1" }))
      assert.equal("Background shell bg_1 was already finished or unknown.", ts:call("kill_shell",
        { shell_id = "bg_1" }))
      assert.equal("Background shell nope was already finished or unknown.", ts:call("kill_shell",
        { shell_id = "nope" }))
      assert.equal("Error: No such background shell 'nope'. Use list_shells to see the shells that exist.",
        ts:call("read_output", { shell_id = "nope" }))
      assert.matches("^bg_1  exited%(%-9%)  npm run dev", ts:call("list_shells"))
    end)

    it("accepts spawn answers as a handle table or with the pid", function()
      local sb = make(function() return { output = "", exit_code = 0 } end)
      sb.spawn = function() return { id = "h1", pid = 42 } end
      local ts = new { backend = sb }
      assert.matches("^Started background shell h1 %(pid 42%)%.", ts:call("run_in_background", { command = "x" }))
      sb.spawn = function() return "h2", 43 end
      assert.matches("^Started background shell h2 %(pid 43%)%.", ts:call("run_in_background", { command = "x" }))
      sb.spawn = function() return "h3" end
      assert.matches("^Started background shell h3%.", ts:call("run_in_background", { command = "x" }))
      sb.spawn = function() return nil, "spawn: too many background shells", "EAGAIN" end
      assert.equal("Error: spawn: too many background shells", ts:call("run_in_background", { command = "x" }))
    end)

    it("still serves the file tools", function()
      local sb = make(function() return { output = "", exit_code = 0 } end)
      local ts = new { backend = sb }
      assert.matches("^Wrote 1 lines to /x%.txt$", ts:call("write_file", { path = "/x.txt", content = "x\n" }))
      assert.equal("     1\tx", ts:call("read_file", { path = "/x.txt" }))
    end)
  end)
end

sandbox_suite("a Lua-table sandbox", function(run) return table_sandbox.new({}, run) end)

describe("shell tools over local_sandbox", function()
  local dir, rm, sb, ts
  before_each(function()
    dir, rm = tmpdir.make()
    sb = moonbox.local_sandbox { root = dir }
    ts = new { backend = sb }
  end)
  after_each(function()
    sb:stop()
    rm()
  end)

  it("executes commands with the reference's texts", function()
    assert.equal("hi\n", ts:call("execute", { command = "echo hi" }))
    assert.equal("Command failed (exit code 3):\noops\n", ts:call("execute", { command = "echo oops >&2; exit 3" }))
    assert.equal("(no output)", ts:call("execute", { command = "true" }))
    local out = ts:call("execute", { command = "echo partial; sleep 5", timeout = 1 })
    assert.matches("^Command failed %(exit code 124%):\npartial\n", out)
    assert.matches("Error: Command timed out after 1 seconds$", out)
    -- the file tools see what commands wrote
    ts:call("execute", { command = "printf 'made\\n' > made.txt" })
    assert.equal("     1\tmade", ts:call("read_file", { path = "/made.txt" }))
  end)

  it("runs, follows, lists and kills a background shell", function()
    local started = ts:call("run_in_background", { command = "echo ready; sleep 30" })
    assert.matches("^Started background shell bg_1 %(pid %d+%)%.\nUse read_output%('bg_1'%)", started)
    local out
    local deadline = moonbox.now() + 15 -- a shell on a busy machine may take seconds to start
    repeat
      out = ts:call("read_output", { shell_id = "bg_1" })
      if out:find("ready", 1, true) then break end
      moonbox.sleep(0.01)
    until moonbox.now() > deadline
    assert.equal("[bg_1] running\nready", out)
    assert.equal("[bg_1] running\n(no new output)", ts:call("read_output", { shell_id = "bg_1" }))
    assert.equal("bg_1  running  echo ready; sleep 30", ts:call("list_shells"))
    assert.equal("Killed background shell bg_1.", ts:call("kill_shell", { shell_id = "bg_1" }))
    assert.equal("Background shell bg_1 was already finished or unknown.", ts:call("kill_shell", { shell_id = "bg_1" }))
    assert.matches("^bg_1  exited%(", ts:call("list_shells"))
    assert.equal("Error: No such background shell 'bg_9'. Use list_shells to see the shells that exist.",
      ts:call("read_output", { shell_id = "bg_9" }))
  end)
end)

describe("console toolset with a permission ruleset", function()
  local perms = require "moonbox.permissions"

  it("guards the backend: denied paths and commands come back as Error text", function()
    local sb = table_sandbox.new({ ["/.env"] = "SECRET=1\n", ["/a.txt"] = "a\n" },
      function(command) return { output = "ran " .. command, exit_code = 0 } end)
    local ts = new { backend = sb, permissions = perms.presets.PERMISSIVE }
    assert.matches("^Error: .*Permission denied", ts:call("read_file", { path = "/.env" }))
    assert.equal("     1\ta", ts:call("read_file", { path = "/a.txt" }))
    assert.matches("^Error: .*Permission denied", ts:call("write_file", { path = "/.env", content = "x" }))
    assert.equal("SECRET=1\n", sb:read_bytes("/.env"))
    assert.matches("^Error: .*Permission denied", ts:call("execute", { command = "rm -rf /" }))
    assert.equal("ran ls", ts:call("execute", { command = "ls" }))
    assert.is_nil(ts:call("grep", { pattern = "SECRET" }):find(".env", 1, true))
  end)

  it("asks through the callback, or follows ask_fallback", function()
    local sb = table_sandbox.new({ ["/a.txt"] = "a\n" }, function() return { output = "ok", exit_code = 0 } end)
    local asked = {}
    local yes = new { backend = sb, permissions = perms.presets.DEFAULT, ask = function(op, target)
      asked[#asked + 1] = op .. " " .. target
      return true
    end }
    assert.matches("^Wrote 1 lines", yes:call("write_file", { path = "/b.txt", content = "b\n" }))
    assert.equal("ok", yes:call("execute", { command = "make" }))
    assert.is_true(#asked >= 2)
    local no = new { backend = sb, permissions = perms.presets.DEFAULT, ask_fallback = "deny" }
    assert.matches("^Error: .*Permission denied", no:call("write_file", { path = "/c.txt", content = "c" }))
    assert.is_false(sb:exists("/c.txt"))
    local err = new { backend = sb, permissions = perms.presets.DEFAULT }
    assert.matches("^Error: ", err:call("write_file", { path = "/c.txt", content = "c" }))
    assert.is_false(sb:exists("/c.txt"))
  end)

  it("offers no write, edit or shell tools under READONLY", function()
    local ts = new { backend = table_sandbox.new({}, function() end), permissions = perms.presets.READONLY }
    assert.equal("ls,read_file,glob,grep", names(ts))
    assert.matches("^Error: Unknown tool 'write_file'", ts:call("write_file", { path = "/x", content = "" }))
  end)
end)
