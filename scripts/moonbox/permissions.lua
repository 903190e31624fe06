-- moonbox.permissions: rulesets, presets and the checker (reference §8.1–8.4).
--
--   local perms = require "moonbox.permissions"
--   local rs = perms.ruleset{ default = "ask", read = { default = "allow", rules = {
--     { pattern = "**/.env", action = "deny", description = "Protect env files" } } } }
--   local c = perms.checker(rs, { ask = function(op, target, reason) ... end,
--                                 ask_fallback = "error" })      -- or "deny"
--   c:check("read", "/app/.env")      --> "deny", rule
--   c:authorize("write", "/a.c")      --> true | nil, message, "DENIED" | "ASK"
--   c:explain("execute", "sudo rm -rf /")   --> which rule fired, where, and why
--
-- Matching: for one operation, its rules in order, first match wins (moonbox.permglob globs,
-- whole target, case-sensitive); no match -> the operation's default, or the ruleset's default
-- when the operation or its default is absent; the ruleset's default is "ask" when absent.
-- execute is checked against the whole line and against every simple command in it
-- (moonbox.shellsplit), and the most restrictive answer wins (deny > ask > allow).
--
-- Misuse raises (unknown operation, action or field; wrong types). authorize returns the
-- reference's messages: "Permission denied for <op> on '<target>': <description>" (DENIED) and
-- "Permission required for <op> on '<target>'" (ASK).
local permglob = require "moonbox.permglob"
local shellsplit = require "moonbox.shellsplit"

local M = {}

M.operations = { "read", "write", "edit", "execute", "glob", "grep", "ls" }
M.actions = { "allow", "deny", "ask" }

local OPERATION = {}
for _, op in ipairs(M.operations) do OPERATION[op] = true end
local SEVERITY = { allow = 1, ask = 2, deny = 3 }
local RULESET_FIELDS = { default = true }
local OPERATION_FIELDS = { default = true, rules = true }
local RULE_FIELDS = { pattern = true, action = true, description = true }

local RULESET_MT = { __name = "moonbox.permissions.Ruleset" }

local function fail(level, fmt, ...)
  error("permissions: " .. string.format(fmt, ...), level + 1)
end

local function check_action(value, where, level)
  if SEVERITY[value] == nil then
    fail(level + 1, "invalid action %s for %s (expected allow, deny or ask)",
      type(value) == "string" and ("'" .. value .. "'") or ("of type " .. type(value)), where)
  end
  return value
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

local function validate_rule(rule, where, level)
  if type(rule) ~= "table" then fail(level + 1, "%s must be a table, got %s", where, type(rule)) end
  for _, k in ipairs(sorted_keys(rule)) do
    if not RULE_FIELDS[k] then
      fail(level + 1, "unknown field '%s' in %s (expected pattern, action, description)",
        tostring(k), where)
    end
  end
  local pattern, description = rule.pattern, rule.description
  if type(pattern) ~= "string" then
    fail(level + 1, "%s needs a pattern string, got %s", where, type(pattern))
  end
  if #pattern > permglob.max_pattern then
    fail(level + 1, "%s: pattern is %d bytes; the limit is %d", where, #pattern, permglob.max_pattern)
  end
  if description ~= nil and type(description) ~= "string" then
    fail(level + 1, "%s: description must be a string, got %s", where, type(description))
  end
  return {
    pattern = pattern,
    action = check_action(rule.action, where, level + 1),
    description = description or "",
  }
end

local function validate_operation(op, data, level)
  if type(data) ~= "table" then
    fail(level + 1, "operation '%s' must be a table, got %s", op, type(data))
  end
  for _, k in ipairs(sorted_keys(data)) do
    if not OPERATION_FIELDS[k] then
      fail(level + 1, "unknown field '%s' in %s (expected default, rules)", tostring(k), op)
    end
  end
  local out = { rules = {} }
  if data.default ~= nil then out.default = check_action(data.default, op .. " default", level + 1) end
  local rules = data.rules
  if rules ~= nil then
    if type(rules) ~= "table" then fail(level + 1, "%s rules must be a list, got %s", op, type(rules)) end
    local n = #rules
    for k in pairs(rules) do
      if math.type(k) ~= "integer" or k < 1 or k > n then
        fail(level + 1, "%s rules must be a list; found key '%s'", op, tostring(k))
      end
    end
    for i = 1, n do
      out.rules[i] = validate_rule(rules[i], string.format("%s rule %d", op, i), level + 1)
    end
  end
  return out
end

-- Validates ruleset data and returns a fresh, normalized copy (rule descriptions default to "";
-- absent operations stay absent). Raises naming the first unknown operation, field or action.
function M.ruleset(data)
  if type(data) ~= "table" then fail(2, "a ruleset must be a table, got %s", type(data)) end
  for _, k in ipairs(sorted_keys(data)) do
    if not RULESET_FIELDS[k] and not OPERATION[k] then
      fail(2, "unknown operation '%s' in ruleset (expected default, %s)", tostring(k),
        table.concat(M.operations, ", "))
    end
  end
  local out = { default = data.default ~= nil and check_action(data.default, "ruleset default", 2) or "ask" }
  for _, op in ipairs(M.operations) do
    if data[op] ~= nil then out[op] = validate_operation(op, data[op], 2) end
  end
  return setmetatable(out, RULESET_MT)
end

function M.is_ruleset(value)
  return getmetatable(value) == RULESET_MT
end

-- Presets ------------------------------------------------------------------------------------

local function presets_file()
  local paths = package.loaded["moonbox.paths"] or require("moonbox").paths
  if not (paths and paths.presets) then
    error("permissions: the presets folder is unknown (moonbox.paths.presets is not set)", 0)
  end
  return paths.presets .. "/permissions.lua"
end

local function load_presets()
  local file = presets_file()
  local chunk, err = loadfile(file, "t", {
    ipairs = ipairs, pairs = pairs, table = { concat = table.concat, insert = table.insert },
  })
  if not chunk then error("permissions: cannot load presets: " .. err, 0) end
  local data = chunk()
  local presets = {
    SECRETS_PATTERNS = data.SECRETS_PATTERNS,
    SYSTEM_PATTERNS = data.SYSTEM_PATTERNS,
    DANGEROUS_COMMANDS = data.DANGEROUS_COMMANDS,
  }
  for _, name in ipairs({ "DEFAULT", "PERMISSIVE", "READONLY", "STRICT" }) do
    presets[name] = M.ruleset(data[name])
  end
  return presets
end

M.presets = load_presets()

local CREATE_FLAGS = {
  default = "ask", allow_read = true, allow_write = false, allow_edit = false,
  allow_execute = false, allow_glob = true, allow_grep = true, allow_ls = true, deny_secrets = true,
}

-- The reference's create_ruleset: each operation's default is allow when its flag is set, else
-- ask; deny_secrets adds the SECRETS deny rules to read, write and edit.
function M.create_ruleset(opts)
  opts = opts or {}
  if type(opts) ~= "table" then fail(2, "create_ruleset takes a table of flags, got %s", type(opts)) end
  for _, k in ipairs(sorted_keys(opts)) do
    if CREATE_FLAGS[k] == nil then fail(2, "create_ruleset: unknown flag '%s'", tostring(k)) end
    if k ~= "default" and type(opts[k]) ~= "boolean" then
      fail(2, "create_ruleset: %s must be a boolean, got %s", k, type(opts[k]))
    end
  end
  local function flag(name)
    if opts[name] == nil then return CREATE_FLAGS[name] end
    return opts[name]
  end
  local function secrets()
    local rules = {}
    if flag("deny_secrets") then
      for i, p in ipairs(M.presets.SECRETS_PATTERNS) do
        rules[i] = { pattern = p, action = "deny", description = "Protect sensitive files" }
      end
    end
    return rules
  end
  local data = { default = flag("default") }
  for _, op in ipairs(M.operations) do
    local with_secrets = op == "read" or op == "write" or op == "edit"
    data[op] = {
      default = flag("allow_" .. op) and "allow" or "ask",
      rules = with_secrets and secrets() or {},
    }
  end
  return M.ruleset(data)
end
M.presets.create_ruleset = M.create_ruleset

-- Checker ------------------------------------------------------------------------------------

local pattern_cache = setmetatable({}, { __mode = "v" })

local function compiled(pattern)
  local p = pattern_cache[pattern]
  if not p then
    p = permglob.compile(pattern)
    pattern_cache[pattern] = p
  end
  return p
end

local Checker = {}
Checker.__index = Checker
Checker.__name = "moonbox.permissions.Checker"

local CHECKER_OPTIONS = { ask = true, ask_fallback = true }

function M.checker(ruleset, opts)
  if not M.is_ruleset(ruleset) then ruleset = M.ruleset(ruleset) end
  opts = opts or {}
  if type(opts) ~= "table" then fail(2, "checker options must be a table, got %s", type(opts)) end
  for _, k in ipairs(sorted_keys(opts)) do
    if not CHECKER_OPTIONS[k] then
      fail(2, "unknown checker option '%s' (expected ask, ask_fallback)", tostring(k))
    end
  end
  if opts.ask ~= nil and type(opts.ask) ~= "function" then
    local mt = getmetatable(opts.ask)
    if not (mt and mt.__call) then fail(2, "ask must be a function, got %s", type(opts.ask)) end
  end
  local fallback = opts.ask_fallback or "error"
  if fallback ~= "error" and fallback ~= "deny" then
    fail(2, "ask_fallback must be 'error' or 'deny', got %s", tostring(fallback))
  end
  local self = setmetatable({ ruleset = ruleset, ask = opts.ask, ask_fallback = fallback, _ops = {} },
    Checker)
  for _, op in ipairs(M.operations) do
    local data = ruleset[op]
    local entry = { rules = {}, default = ruleset.default, default_source = "ruleset" }
    if data then
      if data.default then entry.default, entry.default_source = data.default, "operation" end
      local patterns = {}
      for i, r in ipairs(data.rules) do
        entry.rules[i] = { pattern = r.pattern, action = r.action, description = r.description }
        patterns[i] = compiled(r.pattern)
      end
      entry.set = permglob.set(patterns)
      entry.first = entry.set.first
    end
    entry.execute = op == "execute"
    self._ops[op] = entry
  end
  return self
end

local function operation(self, op, target, level)
  local entry = self._ops[op]
  if not entry then
    fail(level + 1, "unknown operation '%s' (expected %s)", tostring(op), table.concat(M.operations, ", "))
  end
  if type(target) ~= "string" then
    fail(level + 1, "the target of %s must be a string, got %s", op, type(target))
  end
  return entry
end

local function first_match(entry, target)
  local i = entry.set and entry.set:first(target)
  if i then return entry.rules[i].action, entry.rules[i], i end
  return entry.default, nil, nil
end

-- Every string an execute rule is matched against: the whole line, then each simple command's
-- candidates. Returns the list of { text, command = n } and the split.
local function command_candidates(target)
  local split = shellsplit.analyze(target)
  local list = { { text = target, command = 0 } }
  for n, cmd in ipairs(split.commands) do
    for _, text in ipairs(cmd.candidates) do
      if text ~= target then list[#list + 1] = { text = text, command = n } end
    end
  end
  return list, split
end

-- The most restrictive answer over every candidate; among equals, the first that a rule decided.
local function check_command(entry, target)
  local list, split = command_candidates(target)
  local best_action, best_rule, best_index, best
  for _, cand in ipairs(list) do
    local action, rule, index = first_match(entry, cand.text)
    cand.action, cand.rule, cand.index = action, rule, index
    local better = best_action == nil or SEVERITY[action] > SEVERITY[best_action] or
        (action == best_action and best_rule == nil and rule ~= nil)
    if better then best_action, best_rule, best_index, best = action, rule, index, cand end
  end
  -- deeper than MAX_DEPTH nesting was not looked into: never allow it outright
  if split.too_complex and best_action == "allow" then
    best_action, best_rule, best_index, best = "ask", nil, nil, nil
  end
  return best_action, best_rule, best_index, best, list, split
end

-- check(op, target) --> "allow" | "deny" | "ask", the rule that decided (nil for a default).
-- The hot path of every guarded call: one table lookup and one native call for a path.
function Checker:check(op, target)
  local entry = self._ops[op]
  if entry == nil or type(target) ~= "string" then operation(self, op, target, 2) end
  if entry.execute then
    local action, rule = check_command(entry, target)
    return action, rule
  end
  local first = entry.first
  if first then
    local i = first(entry.set, target)
    if i then
      local rule = entry.rules[i]
      return rule.action, rule
    end
  end
  return entry.default
end

function Checker:find_matching_rule(op, target)
  local _, rule = self:check(op, target)
  return rule
end

function Checker:is_allowed(op, target) return (self:check(op, target)) == "allow" end
function Checker:is_denied(op, target) return (self:check(op, target)) == "deny" end
function Checker:requires_approval(op, target) return (self:check(op, target)) == "ask" end

local function denied(op, target, detail)
  local msg = string.format("Permission denied for %s on '%s'", op, target)
  if detail and detail ~= "" then msg = msg .. ": " .. detail end
  return nil, msg, "DENIED"
end
M._denied = denied

-- authorize(op, target [, reason]) --> true, or nil, message, "DENIED" | "ASK".
-- An "ask" goes to the ask callback (it may yield inside a task); true or "allow" allows,
-- anything else denies (a string second result is put in the message as the reason), and an
-- error in it denies with the error in the message. With no
-- callback, ask_fallback decides: "error" -> ASK, "deny" -> DENIED "(approval required)".
function Checker:authorize(op, target, reason)
  local entry = operation(self, op, target, 2)
  if reason ~= nil and type(reason) ~= "string" then
    fail(2, "reason must be a string, got %s", type(reason))
  end
  local action, rule
  if op == "execute" then
    action, rule = check_command(entry, target)
  else
    action, rule = first_match(entry, target)
  end
  return self:_decide(op, target, action, rule, reason)
end

-- authorize's second half, for callers that already hold check()'s answer (the guard).
function Checker:_decide(op, target, action, rule, reason)
  if action == "allow" then return true end
  if action == "deny" then return denied(op, target, rule and rule.description) end
  if self.ask then
    local ok, answer, why = pcall(self.ask, op, target, reason or "")
    if not ok then return denied(op, target, "ask callback failed: " .. tostring(answer)) end
    if answer == true or answer == "allow" then return true end
    return denied(op, target, type(why) == "string" and why or nil)
  end
  if self.ask_fallback == "deny" then
    local _, msg = denied(op, target)
    return nil, msg .. " (approval required)", "DENIED"
  end
  local msg = string.format("Permission required for %s on '%s'", op, target)
  if reason and reason ~= "" then msg = msg .. ": " .. reason end
  return nil, msg, "ASK"
end

local function describe_rule(op, index, rule)
  local s = string.format("rule %d of %s (%s '%s'", index, op, rule.action, rule.pattern)
  if rule.description ~= "" then s = s .. string.format(", \"%s\"", rule.description) end
  return s .. ")"
end

local function describe_default(op, entry)
  if entry.default_source == "operation" then
    return string.format("no rule matched; the %s default is %s", op, entry.default)
  end
  return string.format("no rule matched; %s has no default of its own, the ruleset default is %s",
    op, entry.default)
end

-- explain(op, target) --> {
--   operation, target, action,                      the answer check() gives
--   decided_by = "rule" | "operation default" | "ruleset default" | "nesting limit",
--   index, pattern, description, rule               the rule that fired (nil for a default)
--   default, default_source = "operation" | "ruleset"   the default that applies when none does
--   shadowed = { index, ... }                      later rules that match too but never fire
--   commands = { {text, action, index, pattern, description, command}, ... }   execute only:
--                                                   each string matched (command 0 = the line)
--   matched = text                                 execute only: the string that decided
--   summary = "deny: rule 1 of read (deny '**/.env', \"Protect sensitive files\")"
-- }
function Checker:explain(op, target)
  local entry = operation(self, op, target, 2)
  local r = {
    operation = op, target = target, default = entry.default, default_source = entry.default_source,
  }
  local action, rule, index, best, list, split
  if op == "execute" then
    action, rule, index, best, list, split = check_command(entry, target)
    r.commands = {}
    for i, cand in ipairs(list) do
      r.commands[i] = {
        text = cand.text, action = cand.action, index = cand.index, command = cand.command,
        pattern = cand.rule and cand.rule.pattern, description = cand.rule and cand.rule.description,
      }
    end
    r.matched = best and best.text
    r.too_complex, r.incomplete = split.too_complex, split.incomplete
  else
    action, rule, index = first_match(entry, target)
  end
  r.action, r.rule, r.index = action, rule, index
  local probe = (op == "execute" and best) and best.text or target
  r.shadowed = {}
  if entry.set and index then
    for _, i in ipairs(entry.set:matches(probe)) do
      if i ~= index then r.shadowed[#r.shadowed + 1] = i end
    end
  end
  local why
  if rule then
    r.decided_by, r.pattern, r.description = "rule", rule.pattern, rule.description
    why = describe_rule(op, index, rule)
  elseif op == "execute" and split.too_complex and best == nil then
    r.decided_by = "nesting limit"
    why = string.format("nested deeper than %d levels (sh -c, eval, here-documents); not allowed "
      .. "without asking", shellsplit.MAX_DEPTH)
  else
    r.decided_by = entry.default_source == "operation" and "operation default" or "ruleset default"
    why = describe_default(op, entry)
  end
  if op == "execute" and best and best.text ~= target then
    why = why .. string.format(" for '%s'", best.text)
  end
  r.summary = action .. ": " .. why
  return r
end

return M
