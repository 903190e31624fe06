-- moonbox.agent_cli: `moonbox agent [options] PROMPT` — the built-in agent loop on a terminal.
--
-- Streams the model's text to stdout; shows each tool call and a compact result on stderr;
-- asks on the terminal for "ask" permissions (y / n / a = always for this rule) and denies them
-- with a clear message when stdin is not a terminal; prints usage at the end.
-- Exit status: 0 answered, 1 failed (API or setup), 2 usage error, 3 stopped at --max-turns.
local M = {}

local USAGE = [[
usage: moonbox agent [options] PROMPT

options:
  --model M          openai:<model> | anthropic:<model> | openai-compatible:<model>@<base_url>
                     (default: $MOONBOX_MODEL, else openai:gpt-4.1 when OPENAI_API_KEY is set,
                     else anthropic:claude-sonnet-4-5 when ANTHROPIC_API_KEY is set)
  --root DIR         the workspace (default: the current directory)
  --preset NAME      permissions: default | readonly | permissive | strict (default: default)
  --policy FILE      a tenant policy script (moonbox.policy) instead of a preset
  --sandbox KIND     namespace | local | docker | none (default: namespace where the kernel
                     allows it, else local)
  --edit-format F    str_replace | hashline (default: str_replace)
  --max-turns N      stop after N model requests (default: 30)
  --no-stream        ask the API for whole replies instead of streaming
]]

local VALUE_FLAGS = { model = true, root = true, preset = true, policy = true, sandbox = true,
  ["edit-format"] = true, ["max-turns"] = true }

function M.parse_args(argv)
  local opts, words = {}, {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local name, value = a:match("^%-%-([%w%-]+)=(.*)$")
    name = name or a:match("^%-%-([%w%-]+)$")
    if a == "--" then
      for j = i + 1, #argv do words[#words + 1] = argv[j] end
      break
    elseif name == "help" or a == "-h" then
      opts.help = true
    elseif name == "no-stream" then
      opts.stream = false
    elseif name and VALUE_FLAGS[name] then
      if value == nil then
        i = i + 1
        value = argv[i]
        if value == nil then return nil, "--" .. name .. " needs a value" end
      end
      opts[name:gsub("%-", "_")] = value
    elseif name then
      return nil, "unknown option --" .. name
    else
      words[#words + 1] = a
    end
    i = i + 1
  end
  opts.prompt = table.concat(words, " ")
  if opts.max_turns then
    local n = math.tointeger(tonumber(opts.max_turns))
    if not n or n < 1 then return nil, "--max-turns needs a whole number >= 1" end
    opts.max_turns = n
  end
  return opts
end

function M.default_model()
  local env = os.getenv("MOONBOX_MODEL")
  if env and env ~= "" then return env end
  if (os.getenv("OPENAI_API_KEY") or "") ~= "" then return "openai:gpt-4.1" end
  if (os.getenv("ANTHROPIC_API_KEY") or "") ~= "" then return "anthropic:claude-sonnet-4-5" end
  return nil, "moonbox agent: no model configured. Set OPENAI_API_KEY (uses openai:gpt-4.1), or "
    .. "ANTHROPIC_API_KEY (uses anthropic:claude-sonnet-4-5), or MOONBOX_MODEL, or pass "
    .. "--model openai-compatible:<model>@http://127.0.0.1:11434/v1 for a local OpenAI-compatible server."
end

local function compact(result)
  if type(result) == "table" then
    local kinds = {}
    for _, p in ipairs(result) do kinds[#kinds + 1] = tostring(p.type) .. " " .. tostring(p.media_type or "") end
    return "[" .. table.concat(kinds, ", ") .. "]"
  end
  local s = tostring(result or "")
  local first = s:match("^[^\n]*") or ""
  local lines = select(2, s:gsub("\n", "")) + (s:sub(-1) == "\n" and 0 or 1)
  if #first > 100 then first = first:sub(1, 97) .. "..." end
  if lines > 1 then first = first .. string.format("  (%d lines)", lines) end
  return first
end

-- The terminal ask: y / n / a (always for the rule that asked). Without a terminal: deny, saying why.
local function make_ask(err, state)
  local core = require "moonbox.core"
  local interactive = core.isatty(0)
  local always = {}
  return function(op, target, _reason)
    local rule_key = op
    if state.checker then
      local ex = state.checker:explain(op, target)
      rule_key = op .. "#" .. tostring(ex.index or ex.decided_by)
      if always[rule_key] then return true end
    end
    if not interactive then
      err(string.format("  ! %s on '%s' needs approval and stdin is not a terminal: denied "
        .. "(use --preset permissive, or a policy that allows it)\n", op, target))
      return false
    end
    err(string.format("  ? allow %s on '%s'? [y]es / [n]o / [a]lways for this rule: ", op, target))
    local reader = require("moonbox.task").io.reader(0)
    local line = reader:read_line()
    reader:close()
    local answer = (line or ""):lower():match("^%s*(%a)")
    if answer == "a" then
      always[rule_key] = true
      return true
    end
    return answer == "y"
  end
end

function M.main(...)
  local out = function(s) io.stdout:write(s); io.stdout:flush() end
  local err = function(s) io.stderr:write(s); io.stderr:flush() end
  local opts, perr = M.parse_args { ... }
  if not opts then
    err("moonbox agent: " .. perr .. "\n" .. USAGE)
    return 2
  end
  if opts.help then out(USAGE) return 0 end
  if opts.prompt == "" then
    err("moonbox agent: give a prompt\n" .. USAGE)
    return 2
  end
  local model = opts.model
  if not model then
    local m, msg = M.default_model()
    if not m then err(msg .. "\n") return 1 end
    model = m
  end
  local moonbox = require "moonbox"
  local workspace = require "moonbox.workspace"
  local state = {}
  local ws, msg = workspace.open {
    root = opts.root, preset = opts.preset, policy = opts.policy, sandbox = opts.sandbox,
    edit_format = opts.edit_format, ask = make_ask(err, state), ask_fallback = "deny",
    log = function(line) err("moonbox agent: " .. line .. "\n") end,
  }
  if not ws then
    err("moonbox agent: " .. tostring(msg) .. "\n")
    return 1
  end
  state.checker = ws.capability.checker
  local at_line_start = true
  local agent, amsg = moonbox.agent {
    model = model, capability = ws.capability, max_turns = opts.max_turns, stream = opts.stream,
    on_event = function(ev)
      if ev.type == "text" then
        out(ev.text)
        at_line_start = ev.text:sub(-1) == "\n"
      elseif ev.type == "tool_start" then
        if not at_line_start then out("\n") at_line_start = true end
        local args = tostring(ev.args or "")
        if #args > 120 then args = args:sub(1, 117) .. "..." end
        err(string.format("→ %s %s\n", ev.name, args))
      elseif ev.type == "tool_end" then
        err(string.format("  %s %s\n", ev.is_error and "✗" or "✓", compact(ev.result)))
      elseif ev.type == "retry" then
        err(string.format("  (retrying in %.1f s: %s)\n", ev.wait, ev.message))
      end
    end,
  }
  if not agent then
    err("moonbox agent: " .. tostring(amsg) .. "\n")
    ws.close()
    return 1
  end
  local result, rmsg, code = agent:run(opts.prompt)
  ws.close()
  if not at_line_start then out("\n") end
  if not result then
    err(string.format("moonbox agent: %s (%s)\n", tostring(rmsg), tostring(code)))
    return 1
  end
  if opts.stream == false and result.output ~= "" then out(result.output .. "\n") end
  err(string.format("usage: %d turns, %d requests, %d input tokens, %d output tokens%s\n", result.turns,
    result.usage.requests, result.usage.input_tokens, result.usage.output_tokens,
    result.stopped == "max_turns" and " (stopped at --max-turns)" or ""))
  return result.stopped == "max_turns" and 3 or 0
end

return M
