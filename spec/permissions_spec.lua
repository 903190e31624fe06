-- moonbox.permissions: rulesets, presets, the checker and explain (reference §8, §9.10).
local moonbox = require "moonbox"
local perms = require "moonbox.permissions"
local cjson = require "cjson"

local P = perms.presets

local function checker(rs, opts) return perms.checker(rs, opts) end

describe("permissions rulesets", function()
  it("validates and normalizes plain data", function()
    local rs = perms.ruleset {
      read = { default = "allow", rules = { { pattern = "**/.env", action = "deny" } } },
    }
    assert.is_true(perms.is_ruleset(rs))
    assert.equal("ask", rs.default) -- the reference's global default
    assert.equal("", rs.read.rules[1].description) -- description defaults to ""
    assert.is_nil(rs.write) -- absent operations stay absent
  end)

  it("raises naming an unknown operation, field or action", function()
    assert.has_error(function() perms.ruleset { reed = {} } end,
      "permissions: unknown operation 'reed' in ruleset (expected default, read, write, edit, "
      .. "execute, glob, grep, ls)")
    assert.has_error(function() perms.ruleset { read = { rule = {} } } end,
      "permissions: unknown field 'rule' in read (expected default, rules)")
    assert.has_error(function()
      perms.ruleset { read = { rules = { { pattern = "x", action = "deny", descr = "" } } } }
    end, "permissions: unknown field 'descr' in read rule 1 (expected pattern, action, description)")
    assert.has_error(function()
      perms.ruleset { write = { rules = { { pattern = "x", action = "block" } } } }
    end, "permissions: invalid action 'block' for write rule 1 (expected allow, deny or ask)")
    assert.has_error(function() perms.ruleset { default = "maybe" } end,
      "permissions: invalid action 'maybe' for ruleset default (expected allow, deny or ask)")
    assert.has_error(function() perms.ruleset { ls = { default = 1 } } end,
      "permissions: invalid action of type number for ls default (expected allow, deny or ask)")
    assert.has_error(function() perms.ruleset { read = { rules = { { action = "deny" } } } } end,
      "permissions: read rule 1 needs a pattern string, got nil")
    assert.has_error(function() perms.ruleset { read = { rules = { x = 1 } } } end,
      "permissions: read rules must be a list; found key 'x'")
    assert.has_error(function() perms.ruleset "DEFAULT" end)
  end)

  it("round-trips through JSON", function()
    local text = cjson.encode(P.DEFAULT)
    local back = perms.ruleset(cjson.decode(text))
    local a, b = checker(P.DEFAULT), checker(back)
    for _, t in ipairs { { "read", "/a/.env" }, { "write", "/a.c" }, { "execute", "rm -rf /" } } do
      assert.equal(a:check(t[1], t[2]), b:check(t[1], t[2]))
    end
  end)

  it("is reachable as moonbox.permissions", function()
    -- (not compared by identity: busted reloads modules per spec file, moonbox caches its fields)
    assert.equal("function", type(moonbox.permissions.checker))
    assert.equal("ask", moonbox.permissions.presets.DEFAULT.default)
  end)
end)

describe("permission presets (reference §8.2, exact data)", function()
  it("holds the reference's pattern lists", function()
    assert.same({ "**/.env", "**/.env.*", "**/*.pem", "**/*.key", "**/*.crt", "**/credentials*",
      "**/secrets*", "**/*secret*", "**/*password*", "**/.aws/**", "**/.ssh/**", "**/.gnupg/**" },
      P.SECRETS_PATTERNS)
    assert.same({ "/etc/**", "/var/**", "/usr/**", "/bin/**", "/sbin/**", "/boot/**", "/sys/**",
      "/proc/**" }, P.SYSTEM_PATTERNS)
    assert.same({ "rm -rf /*", "rm -rf /", ":(){:|:&};:", "dd if=*of=/dev/*", "mkfs*", "> /dev/sda",
      "chmod -R 777 /" }, P.DANGEROUS_COMMANDS)
  end)

  it("builds the reference's table of defaults", function()
    local want = {
      DEFAULT = { "ask", "allow", "ask", "ask", "ask", "allow", "allow", "allow" },
      PERMISSIVE = { "allow", "allow", "allow", "allow", "allow", "allow", "allow", "allow" },
      READONLY = { "deny", "allow", "deny", "deny", "deny", "allow", "allow", "allow" },
      STRICT = { "ask", "ask", "ask", "ask", "ask", "ask", "ask", "ask" },
    }
    for name, row in pairs(want) do
      local rs = P[name]
      assert.equal(row[1], rs.default, name)
      for i, op in ipairs(perms.operations) do assert.equal(row[i + 1], rs[op].default, name .. " " .. op) end
    end
    assert.equal(12, #P.DEFAULT.read.rules)
    assert.equal(20, #P.PERMISSIVE.write.rules)
    assert.equal("Protect sensitive and system files", P.PERMISSIVE.edit.rules[20].description)
    assert.equal("/proc/**", P.PERMISSIVE.edit.rules[20].pattern)
    assert.equal("Block dangerous commands", P.STRICT.execute.rules[7].description)
    assert.equal(0, #P.READONLY.write.rules)
    for _, rs in pairs { P.DEFAULT, P.PERMISSIVE, P.READONLY, P.STRICT } do
      for _, op in ipairs(perms.operations) do
        for _, r in ipairs(rs[op].rules) do assert.equal("deny", r.action) end
      end
    end
  end)

  it("denies secrets under SECRETS rules", function()
    local c = checker(P.DEFAULT)
    for _, p in ipairs { "/p/.env", "/p/.env.local", "/p/.env.production", "/p/cert.pem",
      "/p/server.key", "/p/ca.crt", "/home/u/.aws/credentials", "/p/credentials.json", ".env" } do
      assert.equal("deny", c:check("read", p), p)
    end
    assert.equal("allow", c:check("read", "/p/Secret.txt")) -- case-sensitive, as the reference
    assert.equal("deny", c:check("read", "/p/my_secret.txt"))
    assert.equal("allow", c:check("read", "/etc/passwd"))
  end)

  it("DEFAULT: reads allowed, .env denied, write/execute ask, listings allowed", function()
    local c = checker(P.DEFAULT)
    assert.equal("allow", c:check("read", "/src/main.c"))
    assert.equal("deny", c:check("read", "/src/.env"))
    assert.equal("ask", c:check("write", "/src/main.c"))
    assert.equal("ask", c:check("execute", "make"))
    for _, op in ipairs { "glob", "grep", "ls" } do assert.equal("allow", c:check(op, "/src")) end
  end)

  it("DEFAULT denies the reference's dangerous commands", function()
    local c = checker(P.DEFAULT)
    for _, cmd in ipairs { "rm -rf /", "rm -rf /*", "mkfs", "mkfs.ext4", "chmod -R 777 /", ":(){:|:&};:" } do
      assert.equal("deny", c:check("execute", cmd), cmd)
    end
    -- the reference's narrow globs, kept exactly: * does not cross /
    assert.equal("ask", c:check("execute", "dd if=/dev/zero of=/dev/sda"))
    assert.equal("ask", c:check("execute", "rm -rf /tmp/scratch"))
  end)

  it("PERMISSIVE allows read/write/execute but not secret or system writes", function()
    local c = checker(P.PERMISSIVE)
    assert.equal("allow", c:check("read", "/a"))
    assert.equal("allow", c:check("write", "/a"))
    assert.equal("allow", c:check("execute", "make test"))
    assert.equal("deny", c:check("write", "/a/.env"))
    assert.equal("deny", c:check("edit", "/etc/hosts"))
    assert.equal("allow", c:check("read", "/etc/hosts"))
  end)

  it("READONLY allows read/glob/grep and denies secret reads, write, edit, execute", function()
    local c = checker(P.READONLY)
    assert.equal("allow", c:check("read", "/a"))
    assert.equal("allow", c:check("glob", "/a"))
    assert.equal("allow", c:check("grep", "/a"))
    assert.equal("deny", c:check("read", "/a/.env"))
    assert.equal("deny", c:check("write", "/a"))
    assert.equal("deny", c:check("edit", "/a"))
    assert.equal("deny", c:check("execute", "ls"))
  end)

  it("STRICT asks for everything but denies secrets", function()
    local c = checker(P.STRICT)
    for _, op in ipairs { "read", "write", "execute", "glob", "ls" } do
      assert.equal("ask", c:check(op, "/a"), op)
    end
    assert.equal("deny", c:check("read", "/a/.env"))
  end)

  it("create_ruleset has the reference's defaults and flags", function()
    local c = checker(perms.create_ruleset())
    assert.equal("allow", c:check("read", "/a"))
    assert.equal("ask", c:check("write", "/a"))
    assert.equal("ask", c:check("execute", "ls"))
    assert.equal("allow", c:check("ls", "/a"))
    assert.equal("deny", c:check("read", "/a/.env"))
    c = checker(perms.create_ruleset { allow_write = true, allow_execute = true, allow_read = false })
    assert.equal("allow", c:check("write", "/a"))
    assert.equal("allow", c:check("execute", "ls"))
    assert.equal("ask", c:check("read", "/a")) -- never deny
    c = checker(perms.create_ruleset { deny_secrets = false })
    assert.equal("allow", c:check("read", "/a/.env"))
    assert.equal("deny", perms.create_ruleset { default = "deny" }.default)
    assert.equal(0, #perms.create_ruleset().execute.rules)
    assert.equal(perms.create_ruleset, P.create_ruleset)
    assert.has_error(function() perms.create_ruleset { allow_writes = true } end,
      "permissions: create_ruleset: unknown flag 'allow_writes'")
  end)
end)

describe("permission checker", function()
  local rs = {
    default = "ask",
    read = { default = "deny", rules = {
      { pattern = "/project/safe/**", action = "allow" },
      { pattern = "**", action = "deny", description = "Nothing else" },
    } },
    write = { rules = { { pattern = "/tmp/**", action = "allow" } } },
  }

  it("takes the first matching rule (an allow before a broad deny carves an exception)", function()
    local c = checker(rs)
    local action, rule = c:check("read", "/project/safe/a/b.txt")
    assert.equal("allow", action)
    assert.equal("/project/safe/**", rule.pattern)
    action, rule = c:check("read", "/project/other.txt")
    assert.equal("deny", action)
    assert.equal("Nothing else", rule.description)
    assert.is_nil(c:find_matching_rule("edit", "/x"))
    assert.equal("**", c:find_matching_rule("read", "/x").pattern)
  end)

  it("falls back to the operation default, then the ruleset default", function()
    local c = checker(rs)
    assert.equal("allow", c:check("write", "/tmp/x"))
    assert.equal("ask", c:check("write", "/home/x")) -- write has rules but no default
    assert.equal("ask", c:check("glob", "/x")) -- glob absent
    local c2 = checker { default = "allow", ls = { default = "deny" } }
    assert.equal("deny", c2:check("ls", "/"))
    assert.equal("allow", c2:check("grep", "/"))
  end)

  it("answers is_allowed / is_denied / requires_approval", function()
    local c = checker(P.DEFAULT)
    assert.is_true(c:is_allowed("read", "/a"))
    assert.is_true(c:is_denied("read", "/a/.env"))
    assert.is_true(c:requires_approval("write", "/a"))
    assert.is_false(c:is_allowed("write", "/a"))
  end)

  it("authorizes with the reference's messages", function()
    local c = checker(P.DEFAULT)
    assert.is_true(c:authorize("read", "/a"))
    assert.same({ nil, "Permission denied for read on '/a/.env': Protect sensitive files", "DENIED" },
      { c:authorize("read", "/a/.env") })
    assert.same({ nil, "Permission required for write on '/a'", "ASK" }, { c:authorize("write", "/a") })
    assert.same({ nil, "Permission required for write on '/a': Save notes", "ASK" },
      { c:authorize("write", "/a", "Save notes") })
    local d = checker(P.DEFAULT, { ask_fallback = "deny" })
    assert.same({ nil, "Permission denied for write on '/a' (approval required)", "DENIED" },
      { d:authorize("write", "/a") })
    local nodesc = checker { read = { rules = { { pattern = "/x", action = "deny" } } } }
    assert.same({ nil, "Permission denied for read on '/x'", "DENIED" }, { nodesc:authorize("read", "/x") })
  end)

  it("asks the callback for ask, with operation, target and reason", function()
    local seen
    local c = checker(P.DEFAULT, { ask = function(op, target, reason)
      seen = { op, target, reason }
      return target == "/yes"
    end })
    assert.is_true(c:authorize("write", "/yes", "why"))
    assert.same({ "write", "/yes", "why" }, seen)
    assert.same({ nil, "Permission denied for write on '/no'", "DENIED" }, { c:authorize("write", "/no") })
    seen = nil
    assert.is_nil((c:authorize("read", "/a/.env"))) -- deny never asks
    assert.is_nil(seen)
    assert.is_true(c:authorize("read", "/a")) -- allow never asks
    assert.is_nil(seen)
    local s = checker(P.DEFAULT, { ask = function() return "allow" end })
    assert.is_true(s:authorize("execute", "make"))
    s = checker(P.DEFAULT, { ask = function() return "deny" end })
    assert.is_nil((s:authorize("execute", "make")))
  end)

  it("treats an ask callback that raises as a denial naming the error", function()
    local c = checker(P.DEFAULT, { ask = function() error("no terminal", 0) end })
    assert.same({ nil, "Permission denied for write on '/a': ask callback failed: no terminal", "DENIED" },
      { c:authorize("write", "/a") })
  end)

  it("lets the ask callback yield inside a coroutine", function()
    local c = checker(P.DEFAULT, { ask = function(_, target) return coroutine.yield(target) end })
    local co = coroutine.wrap(function() return c:authorize("write", "/w") end)
    assert.equal("/w", co())
    assert.is_true(co(true))
  end)

  it("raises on misuse", function()
    local c = checker(P.DEFAULT)
    assert.has_error(function() c:check("delete", "/a") end,
      "permissions: unknown operation 'delete' (expected read, write, edit, execute, glob, grep, ls)")
    assert.has_error(function() c:check("read", 42) end,
      "permissions: the target of read must be a string, got number")
    assert.has_error(function() perms.checker(P.DEFAULT, { asks = print }) end,
      "permissions: unknown checker option 'asks' (expected ask, ask_fallback)")
    assert.has_error(function() perms.checker(P.DEFAULT, { ask_fallback = "allow" }) end,
      "permissions: ask_fallback must be 'error' or 'deny', got allow")
    assert.has_error(function() perms.checker(P.DEFAULT, { ask = "yes" }) end,
      "permissions: ask must be a function, got string")
  end)

  it("snapshots the ruleset: later edits to the data do not change a checker", function()
    local data = { read = { default = "allow", rules = {} } }
    local c = checker(data)
    data.read.default = "deny"
    assert.equal("allow", c:check("read", "/a"))
  end)
end)

describe("permission precedence in compound commands", function()
  local c = checker(P.DEFAULT)

  it("denies a dangerous command anywhere in the line", function()
    for _, cmd in ipairs {
      "sudo rm -rf /", "echo x; rm -rf /", "echo x && rm -rf /", "false || rm -rf /", "ls | rm -rf /",
      "sleep 1 & rm -rf /", "echo x\nrm -rf /", "echo $(rm -rf /)", "echo `rm -rf /`",
      "echo \"$(rm -rf /)\"", "env FOO=1 rm -rf /", "nice -n 10 rm -rf /", "nohup rm -rf / &",
      "timeout 5 rm -rf /", "time rm -rf /", "echo / | xargs rm -rf /", "command rm -rf /",
      "exec rm -rf /", "sudo -u root env A=1 nice rm -rf /", "bash -c 'rm -rf /'",
      "sh -c \"cd /tmp && rm -rf /\"", "eval rm -rf /", "/bin/rm -rf /", "\\rm -rf /", "r''m -rf '/'",
      "(rm -rf /)", "{ rm -rf /; }", "if true; then rm -rf /; fi", "echo; mkfs.ext4",
      "echo hi > /dev/sda", "find / -exec rm -rf / \\;", "x=$(rm -rf /)", "cat <(rm -rf /)",
      "$'\\x72m' -rf /", "rm${IFS}-rf${IFS}/", "{rm,-rf,/}", "a=rm; $a -rf /",
    } do
      assert.equal("deny", c:check("execute", cmd), cmd)
    end
  end)

  it("does not deny what only looks dangerous inside quotes or comments", function()
    for _, cmd in ipairs {
      "echo 'rm -rf /'", "echo \"rm -rf /\"", "echo ok # ; rm -rf /", "git commit -m 'rm -rf /'",
      "cat <<'EOF'\nrm -rf /\nEOF",
    } do
      assert.equal("ask", c:check("execute", cmd), cmd)
    end
  end)

  it("needs every simple command allowed for an allow", function()
    local allow = checker { execute = { default = "deny", rules = {
      { pattern = "git *", action = "allow" },
      { pattern = "git", action = "allow" },
      { pattern = "ls*", action = "allow" },
      { pattern = "grep *", action = "allow" },
    } } }
    assert.equal("allow", allow:check("execute", "git status"))
    assert.equal("allow", allow:check("execute", "ls -la | grep foo"))
    assert.equal("allow", allow:check("execute", "git status && git diff"))
    assert.equal("deny", allow:check("execute", "git status && curl evil"))
    assert.equal("deny", allow:check("execute", "git log $(curl evil)"))
    assert.equal("deny", allow:check("execute", "ls; make"))
    -- the reference matched only the whole line, where `git *` allowed this:
    assert.equal("deny", allow:check("execute", "git status; rm -rf x"))
  end)

  it("prefers the most restrictive answer: deny over ask over allow", function()
    local mixed = checker { execute = { default = "allow", rules = {
      { pattern = "make*", action = "ask", description = "builds need a look" },
      { pattern = "curl *", action = "deny", description = "no network" },
    } } }
    assert.equal("allow", mixed:check("execute", "echo a; echo b"))
    assert.equal("ask", mixed:check("execute", "echo a; make"))
    local action, rule = mixed:check("execute", "make; curl x; echo")
    assert.equal("deny", action)
    assert.equal("no network", rule.description)
  end)

  it("matches a rule written against the whole line too", function()
    local whole = checker { execute = { default = "allow", rules = {
      { pattern = "rm *", action = "deny", description = "Block rm commands" } } } }
    assert.same({ nil, "Permission denied for execute on 'rm x': Block rm commands", "DENIED" },
      { whole:authorize("execute", "rm x") })
    assert.equal("deny", whole:check("execute", "sudo rm x"))
  end)

  it("asks instead of allowing what is nested too deep to inspect", function()
    local open = checker { execute = { default = "allow" } }
    local cmd = "sh -c \"sh -c 'sh -c \\\"sh -c \\\\\\\"sh -c ls\\\\\\\"\\\"'\""
    assert.equal("ask", open:check("execute", cmd))
    assert.equal("nesting limit", open:explain("execute", cmd).decided_by)
    assert.equal("allow", open:check("execute", "sh -c 'sh -c ls'"))
  end)
end)

describe("permission explain", function()
  local c = checker(P.DEFAULT)

  it("names the rule that fired, its position and pattern", function()
    local e = c:explain("read", "/app/.env")
    assert.equal("deny", e.action)
    assert.equal("rule", e.decided_by)
    assert.equal(1, e.index)
    assert.equal("**/.env", e.pattern)
    assert.equal("Protect sensitive files", e.description)
    assert.equal("allow", e.default)
    assert.equal("operation", e.default_source)
    assert.equal("deny: rule 1 of read (deny '**/.env', \"Protect sensitive files\")", e.summary)
  end)

  it("lists later rules the winner shadows", function()
    local e = c:explain("read", "/a/secrets/password.key")
    assert.equal(4, e.index) -- **/*.key comes before **/*password* and **/*secret*
    assert.same({ 9 }, e.shadowed)
  end)

  it("names the default that applied when no rule did", function()
    local e = c:explain("write", "/src/a.c")
    assert.equal("ask", e.action)
    assert.equal("operation default", e.decided_by)
    assert.is_nil(e.index)
    assert.equal("ask: no rule matched; the write default is ask", e.summary)
    local r = checker { default = "deny", read = { rules = {} } }:explain("read", "/x")
    assert.equal("ruleset default", r.decided_by)
    assert.equal("deny: no rule matched; read has no default of its own, the ruleset default is deny",
      r.summary)
  end)

  it("shows every command it matched for execute, and the one that decided", function()
    local e = c:explain("execute", "echo hi && sudo rm -rf /")
    assert.equal("deny", e.action)
    assert.equal("rm -rf /", e.matched)
    assert.equal("rm -rf /*", e.pattern)
    assert.equal(1, e.index)
    local texts = {}
    for _, cmd in ipairs(e.commands) do texts[#texts + 1] = cmd.text end
    assert.same({ "echo hi && sudo rm -rf /", "echo hi", "sudo rm -rf /", "rm -rf /" }, texts)
    assert.equal("ask", e.commands[2].action)
    assert.equal(2, e.commands[3].command)
    assert.equal("deny: rule 1 of execute (deny 'rm -rf /*', \"Block dangerous commands\") for "
      .. "'rm -rf /'", e.summary)
  end)
end)
