-- moonbox.shellsplit: the simple commands a shell line would run, for permission checks.
--
--   local split = require "moonbox.shellsplit"
--   local r = split.analyze("sudo rm -rf / && echo $(cat ~/.ssh/id_rsa)")
--   r.commands[i].words      dequoted words of one simple command, redirections removed
--   r.commands[i].redirects  { {op = ">", target = "/dev/sda"}, ... }
--   r.commands[i].candidates the strings execute rules are matched against (see below)
--   r.words                  every word of every command (for the path guard)
--   r.too_complex            nesting deeper than MAX_DEPTH (sh -c in sh -c in ...), or variable
--                            values that would outgrow the line more than fourfold
--   r.incomplete             an unterminated quote or substitution
--
-- Splits on ; && || | |& & newlines and ( ), and descends into $(...), `...`, <(...), >(...),
-- ${...}, arithmetic $((...)) (its inner substitutions only), unquoted here-document bodies,
-- sh/bash -c STRING, eval ARGS, env -S STRING and find -exec ... ;. Quoting follows the shell:
-- '...' is literal, "..." keeps $(...) and `...` live, a backslash escapes one character, a
-- word starting with # starts a comment; $'...' escapes are decoded, $"..." is "...", an unquoted
-- $IFS splits words, a whole unquoted {a,b,c} word is the words a b c, and a variable assigned
-- earlier in the line with a literal value (a=rm; $a -rf /) is substituted into later commands,
-- which are analyzed again. A command's candidates are its words joined by single
-- spaces, then again after each leading wrapper (sudo, doas, env, nice, nohup, timeout N, time,
-- xargs, command, exec, builtin, setsid, stdbuf, ionice, busybox, with their options), leading
-- assignments (A=1) and reserved words (! { } if then else elif fi do done while until esac) are
-- stripped (a command of nothing else runs nothing and has no candidates), the
-- last one again with a path-named command reduced to its basename (/bin/rm -> rm), and each
-- output redirection as "> TARGET".
--
-- One forward pass over the text with string.find on fixed character sets: no backtracking, no
-- recursion on the C stack; nesting of sh -c / eval / here-documents is capped at MAX_DEPTH.
local M = {}

local find, sub, byte, concat = string.find, string.sub, string.byte, table.concat

M.MAX_DEPTH = 4 -- sh -c / eval / env -S / here-document levels looked into
M.MAX_NEST = 64 -- $(...) / `...` levels kept verbatim in the enclosing word

local ELIDED = { subst = "$(...)", backtick = "`...`", arith = "$((...))" }

local B_SQ, B_DQ, B_BS, B_BQ, B_DOLLAR = byte("'"), byte('"'), byte("\\"), byte("`"), byte("$")
local B_LP, B_RP, B_LB, B_RB, B_NL = byte("("), byte(")"), byte("{"), byte("}"), byte("\n")
local B_AMP, B_BAR, B_LT, B_GT, B_SEMI = byte("&"), byte("|"), byte("<"), byte(">"), byte(";")
local B_HASH, B_SP, B_TAB, B_DASH = byte("#"), byte(" "), byte("\t"), byte("-")

local PLAIN_SPECIAL = "[ \t\n;&|()<>'\"\\`$#}]"
local DQ_SPECIAL = "[\"\\`$}]"
local BODY_SPECIAL = "[\\`$}]"

local function new_frame(kind, start, parent_depth)
  return {
    kind = kind, start = start, depth = 0, level = 0, emit = true, held = {},
    words = {}, redirects = {}, buf = {}, nb = 0, has_word = false, quoted = false, dq = false,
    brace = 0, pending = nil, heredocs = {}, nest = parent_depth,
  }
end

local function end_word(f)
  if not f.has_word then return end
  local nb = f.nb
  local word = nb == 1 and f.buf[1] or concat(f.buf, "", 1, nb)
  f.nb = 0
  f.has_word = false
  if f.pending then
    local op = f.pending
    f.pending = nil
    f.redirects[#f.redirects + 1] = { op = op, target = word }
    if op == "<<" or op == "<<-" then
      f.heredocs[#f.heredocs + 1] = { delim = word, quoted = f.quoted, tabs = op == "<<-" }
    end
  elseif not f.quoted and byte(word, 1) == B_LB and find(word, "^{[^{}]*,[^{}]*}$") then
    for part in sub(word, 2, -2):gmatch("[^,]*") do -- {rm,-rf,/} is three words to sh
      if part ~= "" then f.words[#f.words + 1] = part end
    end
  else
    f.words[#f.words + 1] = word
  end
  f.quoted = false
end

local function end_command(f, out)
  end_word(f)
  if f.pending then
    f.redirects[#f.redirects + 1] = { op = f.pending, target = "" }
    f.pending = nil
  end
  if #f.words > 0 or #f.redirects > 0 then
    local cmd = { words = f.words, redirects = f.redirects, depth = f.nest }
    if f.kind == "arith" then
      f.held[#f.held + 1] = cmd -- released only if this turns out to be $( (...) )
    elseif f.emit then
      out.commands[#out.commands + 1] = cmd
    end
  end
  f.words, f.redirects = {}, {}
end

local lex -- forward: here-document bodies are lexed on their own

-- Skips the bodies of the here-documents announced on the line that just ended (at the newline
-- at `nl`); unquoted bodies are lexed for substitutions. Returns where lexing resumes.
local function heredoc_bodies(s, nl, f, out)
  local p = nl + 1
  for _, h in ipairs(f.heredocs) do
    local body_start = p
    local body_end = #s
    while p <= #s do
      local e = find(s, "\n", p, true) or #s + 1
      local line = sub(s, p, e - 1)
      if h.tabs then line = line:gsub("^\t+", "") end
      if line == h.delim then
        body_end = p - 1
        p = e + 1
        break
      end
      p = e + 1
    end
    if not h.quoted and body_end >= body_start then
      if f.nest + 1 > M.MAX_DEPTH then
        out.too_complex = true
      else
        lex(sub(s, body_start, body_end), out, f.nest + 1, true)
      end
    end
  end
  f.heredocs = {}
  return p
end

local ANSI_ESCAPES = { n = "\n", t = "\t", r = "\r", a = "\a", b = "\b", e = "\27", E = "\27",
  f = "\f", v = "\v", ["\\"] = "\\", ["'"] = "'", ['"'] = '"', ["?"] = "?" }

-- Decodes the body of $'...' starting at p; returns the text, the index after the closing
-- quote and whether the quote was never closed. Each step consumes input: linear.
local function ansi_c(s, p)
  local out = {}
  while true do
    local q = find(s, "[\\']", p)
    if not q then
      out[#out + 1] = sub(s, p)
      return concat(out), #s + 1, true
    end
    out[#out + 1] = sub(s, p, q - 1)
    if byte(s, q) == B_SQ then return concat(out), q + 1, false end
    local e = sub(s, q + 1, q + 1)
    local digits
    if e == "x" then
      digits = s:match("^%x%x?", q + 2)
      if digits then
        out[#out + 1], p = string.char(tonumber(digits, 16)), q + 2 + #digits
      else
        out[#out + 1], p = "\\x", q + 2
      end
    elseif e == "u" or e == "U" then
      digits = s:match(e == "u" and "^%x%x?%x?%x?" or "^%x%x?%x?%x?%x?%x?%x?%x?", q + 2)
      local cp = digits and tonumber(digits, 16)
      if cp and cp <= 0x10FFFF then
        out[#out + 1], p = utf8.char(cp), q + 2 + #digits
      else
        out[#out + 1], p = "\\" .. e, q + 2
      end
    elseif e:match("^[0-7]$") then
      digits = s:match("^[0-7][0-7]?[0-7]?", q + 1)
      out[#out + 1], p = string.char(tonumber(digits, 8) % 256), q + 1 + #digits
    elseif e == "c" and q + 2 <= #s then
      out[#out + 1], p = string.char(byte(s, q + 2) & 31), q + 3
    elseif ANSI_ESCAPES[e] then
      out[#out + 1], p = ANSI_ESCAPES[e], q + 2
    elseif e == "" then
      out[#out + 1], p = "\\", q + 1
    else
      out[#out + 1], p = "\\" .. e, q + 2
    end
  end
end

local REDIRECT_OPS = { "<<<", "<<-", "<<", "<>", "<&", "<", ">>", ">|", ">&", ">" }

local function read_redirect(s, j)
  for _, op in ipairs(REDIRECT_OPS) do
    if sub(s, j, j + #op - 1) == op then return op end
  end
  return sub(s, j, j)
end

-- Lexes `s` into out.commands. `body` lexes a here-document body: only substitutions count.
function lex(s, out, nest, body)
  local top = new_frame("top", 1, nest)
  local stack = { top }
  local f = top
  if body then
    f.dq, f.body, f.emit = true, true, false
  end
  local i, n = 1, #s
  local nbq = 0 -- open backtick substitutions

  local function open(kind, start)
    if #stack >= M.MAX_NEST then out.too_complex = true end
    if kind == "backtick" then nbq = nbq + 1 end
    local child = new_frame(kind, start, nest)
    stack[#stack + 1] = child
    f.has_word = true -- the substitution is part of the enclosing word
    f = child
  end

  -- An arithmetic frame that was really `$( (...) ...)`: its commands count after all.
  local function release(frame)
    frame.kind = "subst"
    for _, cmd in ipairs(frame.held) do out.commands[#out.commands + 1] = cmd end
    frame.held = {}
  end

  local function close(stop)
    end_command(f, out)
    if f.kind == "backtick" then nbq = nbq - 1 end
    -- below MAX_NEST levels the text is elided, so nesting cannot make the copying quadratic
    local raw = #stack > M.MAX_NEST and ELIDED[f.kind] or sub(s, f.start, stop)
    stack[#stack] = nil
    f = stack[#stack]
    f.nb = f.nb + 1; f.buf[f.nb] = raw
    f.has_word = true
  end

  -- k backslashes then a backtick at j: open or close a `...` substitution (nested ones are
  -- written with escaped backticks inside an outer one).
  local function backtick(j, k)
    if f.kind == "backtick" and k <= f.level then
      close(j + k)
    else
      open("backtick", j)
      f.level = k
    end
    return j + k + 1
  end

  while i <= n do
    local pattern = f.body and BODY_SPECIAL or (f.dq and DQ_SPECIAL or PLAIN_SPECIAL)
    local j = find(s, pattern, i)
    if not j then
      f.nb = f.nb + 1; f.buf[f.nb] = sub(s, i)
      f.has_word = true
      break
    end
    if j > i then
      f.nb = f.nb + 1; f.buf[f.nb] = sub(s, i, j - 1)
      f.has_word = true
    end
    local c = byte(s, j)
    local nx = byte(s, j + 1)
    i = j + 1
    if c == B_BS then
      local e = find(s, "[^\\]", j) or n + 1 -- the whole run of backslashes at once
      local k = e - j
      if byte(s, e) == B_BQ and nbq > 0 then
        i = backtick(j, k)
      else
        if k >= 2 then
          f.nb = f.nb + 1; f.buf[f.nb] = string.rep("\\", k // 2)
          f.has_word, f.quoted = true, true
        end
        i = e
        if k % 2 == 1 then -- the last one escapes the character after the run
          nx = byte(s, e)
          if nx == B_NL then
            i = e + 1 -- line continuation
          elseif nx == nil or ((f.dq or f.body) and
              not (nx == B_DOLLAR or nx == B_BQ or nx == B_DQ or nx == B_BS)) then
            f.nb = f.nb + 1; f.buf[f.nb] = "\\"
            f.has_word = true
          else
            local stop = e
            if nx >= 0xC0 then -- keep a UTF-8 sequence whole
              while stop < n and byte(s, stop + 1) >= 0x80 and byte(s, stop + 1) < 0xC0 do
                stop = stop + 1
              end
            end
            f.nb = f.nb + 1; f.buf[f.nb] = sub(s, e, stop)
            f.has_word, f.quoted = true, true
            i = stop + 1
          end
        end
      end
    elseif c == B_BQ then
      i = backtick(j, 0)
    elseif c == B_DOLLAR then
      if nx == B_LP then
        if byte(s, j + 2) == B_LP then
          open("arith", j)
          f.depth = 1
          i = j + 3
        else
          open("subst", j)
          i = j + 2
        end
      elseif nx == B_SQ and not f.dq then -- $'...': ANSI-C quoting, escapes decoded
        local text, after, open_end = ansi_c(s, j + 2)
        if open_end then out.incomplete = true end
        f.nb = f.nb + 1; f.buf[f.nb] = text
        f.has_word, f.quoted = true, true
        i = after
      elseif nx == B_DQ and not f.dq then -- $"...": a translated string, quoted as "..."
        i = j + 1
      elseif not f.dq and not f.body and (find(s, "^IFS[^%w_]", j + 1) or find(s, "^IFS$", j + 1)
          or find(s, "^{IFS}", j + 1)) then
        end_word(f) -- unquoted $IFS splits words like a blank
        i = j + (nx == B_LB and 6 or 4)
      elseif nx == B_LB then
        f.brace = f.brace + 1
        f.nb = f.nb + 1; f.buf[f.nb] = "${"
        f.has_word = true
        i = j + 2
      else
        f.nb = f.nb + 1; f.buf[f.nb] = "$"
        f.has_word = true
      end
    elseif c == B_RB then
      if f.brace > 0 then f.brace = f.brace - 1 end
      f.nb = f.nb + 1; f.buf[f.nb] = "}"
      f.has_word = true
    elseif f.dq then -- the closing double quote
      f.dq = false
    elseif c == B_SQ then
      local e = find(s, "'", j + 1, true)
      if not e then
        out.incomplete = true
        e = n + 1
      end
      f.nb = f.nb + 1; f.buf[f.nb] = sub(s, j + 1, e - 1)
      f.has_word, f.quoted = true, true
      i = e + 1
    elseif c == B_DQ then
      f.dq, f.has_word, f.quoted = true, true, true
    elseif c == B_SP or c == B_TAB then
      end_word(f)
    elseif c == B_NL then
      end_command(f, out)
      if #f.heredocs > 0 then i = heredoc_bodies(s, j, f, out) end
    elseif c == B_SEMI then
      end_command(f, out)
    elseif c == B_AMP then
      if nx == B_GT then
        end_word(f)
        f.pending = byte(s, j + 2) == B_GT and "&>>" or "&>"
        i = j + #f.pending
      else
        end_command(f, out)
        if nx == B_AMP then i = j + 2 end
      end
    elseif c == B_BAR then
      end_command(f, out)
      if nx == B_BAR or nx == B_AMP then i = j + 2 end
    elseif c == B_LP then
      end_command(f, out)
      f.depth = f.depth + 1
    elseif c == B_RP then
      if f.kind ~= "top" and f.depth == 0 then
        close(j)
      else
        end_command(f, out)
        if f.depth > 0 then f.depth = f.depth - 1 end
        if f.kind == "arith" and f.depth == 0 then
          if nx == B_RP then
            close(j + 1)
            i = j + 2
          else
            release(f)
          end
        end
      end
    elseif c == B_LT or c == B_GT then
      if nx == B_LP then
        open("subst", j)
        i = j + 2
      else
        local fd = concat(f.buf, "", 1, f.nb)
        if f.has_word and not f.quoted and fd:match("^%d+$") then
          f.nb, f.has_word = 0, false
        else
          fd = ""
          end_word(f)
        end
        local op = read_redirect(s, j)
        if f.pending then -- `> >x`: the first target is empty
          f.redirects[#f.redirects + 1] = { op = f.pending, target = "" }
        end
        f.pending = fd .. op
        i = j + #op
        if op == "<<" or op == "<<-" then f.pending = op end
      end
    elseif c == B_HASH then
      if f.has_word then
        f.nb = f.nb + 1; f.buf[f.nb] = "#"
      else
        local e = find(s, "\n", j, true)
        i = e or n + 1
      end
    end
  end
  if #stack > 1 or (f.dq and not f.body) then out.incomplete = true end
  while #stack > 1 do
    if f.kind == "arith" then release(f) end -- unterminated: count everything
    close(n)
  end
  end_command(top, out)
  if #top.heredocs > 0 then heredoc_bodies(s, n, top, out) end
end

-- Wrappers: name -> options that take a separate argument, and what else to skip.
local function set(list)
  local t = {}
  for w in list:gmatch("%S+") do t[w] = true end
  return t
end

local WRAPPERS = {
  sudo = { args = set("-u -g -C -D -h -p -r -t -U -T -R --user --group --chdir --prompt --role "
    .. "--type --other-user --host --close-from --command-timeout --chroot"), assignments = true },
  doas = { args = set("-u -C") },
  env = { args = set("-u -C -S --unset --chdir --split-string"), assignments = true,
    split = set("-S --split-string") },
  nice = { args = set("-n --adjustment") },
  nohup = {},
  timeout = { args = set("-s -k --signal --kill-after"), positional = 1 },
  time = { args = set("-f -o --format --output") },
  xargs = { args = set("-a -d -E -I -L -n -P -s --arg-file --delimiter --eof --replace "
    .. "--max-lines --max-args --max-procs --max-chars --process-slot-var") },
  command = {},
  exec = { args = set("-a") },
  builtin = {},
  setsid = {},
  stdbuf = { args = set("-i -o -e --input --output --error") },
  ionice = { args = set("-c -n -p -P -u --class --classdata --pid --pgid --uid") },
  busybox = {},
}

local RESERVED = set("! { } if then else elif fi do done while until esac")
local SHELLS = set("sh bash dash zsh ksh ash mksh")

local function basename(word)
  return word:match("([^/]*)$")
end

local function is_assignment(word)
  return find(word, "^[%a_][%w_]*=") ~= nil
end

-- Skips a wrapper's options (and its positional arguments) from words[k]; returns the index of
-- the wrapped command and, for env -S, the string to split.
local function skip_wrapper(spec, words, k)
  local split_string
  while words[k] do
    local w = words[k]
    if w == "--" then
      k = k + 1
      break
    end
    if byte(w, 1) ~= B_DASH or w == "-" then break end
    local name, value = w:match("^(%-%-[^=]+)=(.*)$")
    if spec.split and ((name and spec.split[name]) or spec.split[w]) then
      split_string = value or words[k + 1]
    end
    if not name and spec.args and spec.args[w] then k = k + 2 else k = k + 1 end
  end
  if spec.assignments then
    while words[k] and is_assignment(words[k]) do k = k + 1 end
  end
  for _ = 1, spec.positional or 0 do
    if words[k] then k = k + 1 end
  end
  return k, split_string
end

-- The string `sh -c STRING` runs, if the words from k are such a call.
local function shell_string(words, k)
  local has_c = false
  local j = k + 1
  while words[j] do
    local w = words[j]
    local first = byte(w, 1)
    if w == "--" then
      j = j + 1
      break
    end
    if first ~= B_DASH and first ~= byte("+") then break end
    if w == "-o" or w == "+o" or w == "-O" or w == "+O" or w == "--rcfile" or w == "--init-file" then
      j = j + 2
    else
      if find(w, "^%-%a*c") then has_c = true end
      j = j + 1
    end
  end
  if has_c then return words[j] end
  return nil
end

-- Fills cmd.candidates and queues what the command runs in turn (sh -c, eval, env -S, find
-- -exec) for analysis.
local function analyze_command(cmd, out)
  local words = cmd.words
  local cands, seen = {}, {}
  local function add(text)
    if not seen[text] then
      seen[text] = true
      cands[#cands + 1] = text
    end
  end
  local function nested(text)
    if cmd.depth + 1 > M.MAX_DEPTH then
      out.too_complex = true
    else
      lex(text, out, cmd.depth + 1, false)
    end
  end
  local k = 1
  while words[k] and (RESERVED[words[k]] or is_assignment(words[k])) do k = k + 1 end
  if words[k] then add(concat(words, " ")) end -- only reserved words and assignments: no command
  k = 1
  for _ = 1, #words do -- each round strips one layer; bounded by the word count
    local start = k
    while words[k] and (RESERVED[words[k]] or is_assignment(words[k])) do k = k + 1 end
    local name = words[k] and basename(words[k])
    local spec = name and WRAPPERS[name]
    if spec then
      local split_string
      k, split_string = skip_wrapper(spec, words, k + 1)
      if split_string then nested(split_string) end
    end
    if k > #words then break end
    if k ~= start then add(concat(words, " ", k)) end
    if not spec then break end
  end
  if words[k] then
    local name = basename(words[k])
    if name ~= words[k] and name ~= "" then
      add(name .. (k < #words and " " .. concat(words, " ", k + 1) or ""))
    end
    if SHELLS[name] then
      local str = shell_string(words, k)
      if str then nested(str) end
    elseif name == "eval" and words[k + 1] then
      nested(concat(words, " ", k + 1))
    elseif name == "find" then
      local j = k + 1
      while words[j] do
        local w = words[j]
        if w == "-exec" or w == "-execdir" or w == "-ok" or w == "-okdir" then
          local sub_words = {}
          j = j + 1
          while words[j] and words[j] ~= ";" and words[j] ~= "+" do
            sub_words[#sub_words + 1] = words[j]
            j = j + 1
          end
          if #sub_words > 0 then
            out.commands[#out.commands + 1] = { words = sub_words, redirects = {}, depth = cmd.depth }
          end
        end
        j = j + 1
      end
    end
  end
  for _, r in ipairs(cmd.redirects) do
    local op = r.op
    if op:find(">", 1, true) and not (op:sub(-2) == ">&" and r.target:match("^%d*%-?$")) then
      add("> " .. r.target)
    end
  end
  cmd.candidates = cands
end

local DECLARE = set("export declare typeset local readonly")

-- `a=rm` or `export a=rm` on its own: remember a (literal values only) for later commands.
local function record_assignments(cmd, vars)
  local words = cmd.words
  local k = 1
  if words[1] and DECLARE[words[1]] then
    k = 2
  elseif #cmd.candidates > 0 then
    return
  end
  for j = k, #words do
    local name, value = words[j]:match("^([%a_][%w_]*)=(.*)$")
    if name and not find(value, "$(", 1, true) and not find(value, "`", 1, true) then
      vars[name] = value
    end
  end
end

-- A command that uses a variable set earlier in the line (`a=rm; $a -rf /`) is analyzed again
-- with the values substituted.
local function expand_variables(cmd, vars, out)
  if #cmd.candidates == 0 or next(vars) == nil then return end
  local changed, over = false, false
  local function value(name)
    local v = vars[name]
    if v then
      out.budget = out.budget - #v -- values may hold $name themselves: bound the growth
      if out.budget < 0 then
        over = true
        return nil
      end
      changed = true
    end
    return v
  end
  local words = {}
  for j, w in ipairs(cmd.words) do
    if find(w, "$", 1, true) then
      w = w:gsub("%${([%a_][%w_]*)}", value):gsub("%$([%a_][%w_]*)", value)
    end
    words[j] = w
  end
  if over then out.too_complex = true end
  if changed and not over then
    local text = concat(words, " ")
    if cmd.depth + 1 > M.MAX_DEPTH then
      out.too_complex = true
    else
      lex(text, out, cmd.depth + 1, false)
    end
  end
end

-- Analyzes a command line; see the module comment for the result.
function M.analyze(command)
  if type(command) ~= "string" then
    error("shellsplit.analyze: command must be a string, got " .. type(command), 2)
  end
  local out = { commands = {}, words = {}, too_complex = false, incomplete = false,
    budget = 4 * #command + 4096 }
  lex(command, out, 0, false)
  local vars = {}
  local i = 1
  while out.commands[i] do -- analyze_command may append (find -exec, sh -c ...)
    local cmd = out.commands[i]
    analyze_command(cmd, out)
    for _, w in ipairs(cmd.words) do out.words[#out.words + 1] = w end
    for _, r in ipairs(cmd.redirects) do out.words[#out.words + 1] = r.target end
    expand_variables(cmd, vars, out)
    record_assignments(cmd, vars)
    i = i + 1
  end
  return out
end

-- The last (most stripped) candidate of each simple command that runs something, in order.
function M.split(command)
  local r = M.analyze(command)
  local list = {}
  for _, cmd in ipairs(r.commands) do
    local words = cmd.candidates
    if #words > 0 then list[#list + 1] = words[#words] end
  end
  return list, r
end

return M
