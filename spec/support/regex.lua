-- A small backtracking regex engine in plain Lua, for the pure-Lua test backend's grep.
--
-- It takes PCRE syntax for the common subset: literals and escapes (\d \w \s \D \W \S \b \B \A
-- \z \Z \t \n \r \f \v \e \xHH \x{H...} and escaped punctuation), `.`, classes `[...]` with
-- ranges, negation and escapes, groups `(...)` and `(?:...)`, alternation, the quantifiers
-- `* + ? {n} {n,} {n,m}` and their lazy forms, anchors `^ $`, lookahead `(?=...)` `(?!...)`,
-- backreferences \1-\9 and a leading `(?i)`. Lookbehind, named groups, possessive quantifiers,
-- Unicode properties and the other PCRE extensions are refused with an "unsupported" error,
-- so a caller can tell "not implemented here" from a syntax error. `.` and negated classes
-- consume one UTF-8 character. Errors read like PCRE2's: "<what> at offset N" (0-based).
--
--   local re, err, offset = regex.compile(pattern [, { ignore_case = true }])
--   re:find(subject) --> start, stop (or nil)
local M = {}

local function err(msg, pos) error({ regex_error = msg .. " at offset " .. (pos - 1), offset = pos - 1 }, 0) end

local function is_word(c) return c and (c:match("^[%w_]$") ~= nil) end

local CLASS = {
  d = function(c) return c:match("^%d$") ~= nil end,
  w = function(c) return is_word(c) end,
  s = function(c) return c:match("^[ \t\n\r\f\v]$") ~= nil end,
}
CLASS.D = function(c) return not CLASS.d(c) end
CLASS.W = function(c) return not CLASS.w(c) end
CLASS.S = function(c) return not CLASS.s(c) end

local SIMPLE_ESCAPES = { t = "\t", n = "\n", r = "\r", f = "\f", v = "\v", e = "\27", a = "\7" }

-- One UTF-8 character at byte position i (or one byte if the text is not UTF-8 there).
local function char_at(s, i)
  local c = s:match("^[\0-\x7F\xC2-\xFD][\x80-\xBF]*", i)
  return c or s:sub(i, i)
end

local Parser = {}
Parser.__index = Parser

function Parser:peek(n) return self.src:sub(self.pos, self.pos + (n or 1) - 1) end

function Parser:escape_char(in_class)
  -- at the character after the backslash
  local p = self.pos
  local c = self.src:sub(p, p)
  if c == "" then err("\\ at end of pattern", p - 1) end
  self.pos = p + 1
  if CLASS[c] then return { t = "class", f = CLASS[c] } end
  if SIMPLE_ESCAPES[c] then return { t = "lit", s = SIMPLE_ESCAPES[c] } end
  if c == "x" then
    local hex, stop = self.src:match("^{(%x+)}()", self.pos)
    if not hex then hex, stop = self.src:match("^(%x%x?)()", self.pos) end
    if not hex then return { t = "lit", s = "\0" } end
    self.pos = stop
    local n = tonumber(hex, 16)
    if n > 0x10FFFF then err("character code point value in \\x{} is too large", p) end
    return { t = "lit", s = utf8.char(n) }
  end
  if c == "0" then return { t = "lit", s = "\0" } end
  if not in_class then
    if c == "b" then return { t = "wordb" } end
    if c == "B" then return { t = "nwordb" } end
    if c == "A" then return { t = "bos" } end
    if c == "z" then return { t = "eos" } end
    if c == "Z" then return { t = "eosnl" } end
    if c:match("%d") then
      self.groups_referenced = math.max(self.groups_referenced, tonumber(c))
      return { t = "backref", n = tonumber(c), at = p }
    end
  elseif c == "b" then
    return { t = "lit", s = "\b" }
  end
  if c:match("%w") then err("unrecognized character follows \\", p) end
  return { t = "lit", s = char_at(self.src, p) }
end

function Parser:class()
  -- at the character after "["
  local start = self.pos - 1
  local node = { t = "set", neg = false, items = {} }
  if self:peek() == "^" then
    node.neg = true
    self.pos = self.pos + 1
  end
  local first = true
  while true do
    local c = self:peek()
    if c == "" then err("missing terminating ] for character class", #self.src + 1) end
    if c == "]" and not first then
      self.pos = self.pos + 1
      break
    end
    first = false
    local lo
    if c == "[" and self.src:match("^%[:(%a+):%]", self.pos) then
      local name, stop = self.src:match("^%[:(%a+):%]()", self.pos)
      local map = { digit = "d", alpha = "%a", alnum = "%w", space = "s", upper = "%u", lower = "%l",
        punct = "%p", xdigit = "%x", word = "w" }
      local m = map[name]
      if not m then err("unknown POSIX class name", self.pos) end
      self.pos = stop
      if CLASS[m] then
        node.items[#node.items + 1] = { f = CLASS[m] }
      else
        node.items[#node.items + 1] = { f = function(ch) return ch:match("^" .. m .. "$") ~= nil end }
      end
    else
      if c == "\\" then
        self.pos = self.pos + 1
        local e = self:escape_char(true)
        if e.t == "class" then
          node.items[#node.items + 1] = { f = e.f }
        else
          lo = e.s
        end
      else
        lo = char_at(self.src, self.pos)
        self.pos = self.pos + #lo
      end
      if lo then
        if self:peek() == "-" and self.src:sub(self.pos + 1, self.pos + 1) ~= "]" and self.pos + 1 <= #self.src then
          self.pos = self.pos + 1
          local hi
          if self:peek() == "\\" then
            self.pos = self.pos + 1
            local e = self:escape_char(true)
            if e.t ~= "lit" then err("invalid range in character class", self.pos - 1) end
            hi = e.s
          else
            hi = char_at(self.src, self.pos)
            self.pos = self.pos + #hi
          end
          local a, b = utf8.codepoint(lo, 1, 1, true), utf8.codepoint(hi, 1, 1, true)
          if not (a and b) then a, b = lo:byte(), hi:byte() end
          if a > b then err("range out of order in character class", self.pos - 1) end
          node.items[#node.items + 1] = { lo = a, hi = b }
        else
          node.items[#node.items + 1] = { s = lo }
        end
      end
    end
  end
  node.at = start
  return node
end

function Parser:atom()
  local p = self.pos
  local c = self:peek()
  if c == "(" then
    self.pos = p + 1
    local cap
    if self:peek() == "?" then
      local kind = self.src:sub(p + 2, p + 2)
      if kind == ":" then
        self.pos = p + 3
      elseif kind == "=" or kind == "!" then
        self.pos = p + 3
        local inner = self:alternation()
        if self:peek() ~= ")" then err("missing closing parenthesis", #self.src + 1) end
        self.pos = self.pos + 1
        return { t = "look", neg = kind == "!", node = inner }
      else
        err("unsupported group syntax (?" .. kind .. " (lookbehind, named groups and inline options are not " ..
          "supported by this engine)", p)
      end
    else
      self.ncap = self.ncap + 1
      cap = self.ncap
    end
    local inner = self:alternation()
    if self:peek() ~= ")" then err("missing closing parenthesis", #self.src + 1) end
    self.pos = self.pos + 1
    return { t = "group", node = inner, cap = cap }
  elseif c == "[" then
    self.pos = p + 1
    return self:class()
  elseif c == "." then
    self.pos = p + 1
    return { t = "any" }
  elseif c == "^" then
    self.pos = p + 1
    return { t = "bol" }
  elseif c == "$" then
    self.pos = p + 1
    return { t = "eol" }
  elseif c == "\\" then
    self.pos = p + 1
    return self:escape_char(false)
  elseif c == "*" or c == "+" or c == "?" then
    err("quantifier does not follow a repeatable item", p)
  elseif c == ")" then
    err("unmatched closing parenthesis", p)
  end
  local ch = char_at(self.src, p)
  self.pos = p + #ch
  return { t = "lit", s = ch }
end

function Parser:quantified()
  local atom = self:atom()
  while true do
    local p = self.pos
    local c = self:peek()
    local min, max
    if c == "*" then
      min, max = 0, math.huge
      self.pos = p + 1
    elseif c == "+" then
      min, max = 1, math.huge
      self.pos = p + 1
    elseif c == "?" then
      min, max = 0, 1
      self.pos = p + 1
    elseif c == "{" then
      local a, comma, b, stop = self.src:match("^{(%d+)(,?)(%d*)}()", p)
      if not a then return atom end
      min = tonumber(a)
      max = comma == "" and min or (b == "" and math.huge or tonumber(b))
      if max < min then err("numbers out of order in {} quantifier", stop - 2) end
      if min > 65535 or (max ~= math.huge and max > 65535) then err("number too big in {} quantifier", p + 1) end
      self.pos = stop
    else
      return atom
    end
    local t = atom.t
    if t == "bol" or t == "eol" or t == "wordb" or t == "nwordb" or t == "bos" or t == "eos" or t == "eosnl" then
      -- PCRE accepts quantified assertions; repeating a zero-width test changes nothing
      if self:peek() == "?" or self:peek() == "+" then self.pos = self.pos + 1 end
      if min == 0 then atom = { t = "empty" } end
    else
      local lazy = false
      if self:peek() == "?" then
        lazy = true
        self.pos = self.pos + 1
      elseif self:peek() == "+" then
        err("unsupported possessive quantifier", self.pos)
      end
      atom = { t = "rep", node = atom, min = min, max = max, lazy = lazy }
    end
  end
end

function Parser:sequence()
  local items = {}
  while true do
    local c = self:peek()
    if c == "" or c == "|" or c == ")" then break end
    items[#items + 1] = self:quantified()
  end
  return { t = "seq", items = items }
end

function Parser:alternation()
  local alts = { self:sequence() }
  while self:peek() == "|" do
    self.pos = self.pos + 1
    alts[#alts + 1] = self:sequence()
  end
  if #alts == 1 then return alts[1] end
  return { t = "alt", alts = alts }
end

-- Compilation into continuation-passing matchers: m(i, caps, k) returns the end of the whole
-- match (k's result) or nil. Single-character repeats are iterative, so long lines do not nest
-- one call per character.

local compile

local function single_char_test(node, ic)
  local t = node.t
  if t == "any" then
    return function(s, i)
      if i > #s or s:byte(i) == 10 then return nil end
      return i + #char_at(s, i)
    end
  elseif t == "class" then
    local f = node.f
    return function(s, i)
      if i > #s then return nil end
      local ch = char_at(s, i)
      if f(ch) then return i + #ch end
      return nil
    end
  elseif t == "set" then
    local items, neg = node.items, node.neg
    local function member(ch)
      local cp = utf8.codepoint(ch, 1, 1, true) or ch:byte()
      for _, it in ipairs(items) do
        if it.f then
          if it.f(ch) then return true end
        elseif it.s then
          if it.s == ch then return true end
        elseif cp >= it.lo and cp <= it.hi then
          return true
        end
      end
      return false
    end
    return function(s, i)
      if i > #s then return nil end
      local ch = char_at(s, i)
      local hit = member(ch)
      if not hit and ic then
        local lo, up = ch:lower(), ch:upper()
        hit = (lo ~= ch and member(lo)) or (up ~= ch and member(up))
      end
      if hit ~= neg then return i + #ch end
      return nil
    end
  elseif t == "lit" then
    local lit = node.s
    if ic then
      lit = lit:lower()
      return function(s, i)
        if s:sub(i, i + #lit - 1):lower() == lit then return i + #lit end
        return nil
      end
    end
    return function(s, i)
      if s:sub(i, i + #lit - 1) == lit then return i + #lit end
      return nil
    end
  end
  return nil
end

local function is_word_at(s, i) return i >= 1 and i <= #s and is_word(s:sub(i, i)) end

compile = function(node, ic)
  local t = node.t
  local single = single_char_test(node, ic)
  if single then
    return function(s, i, caps, k)
      local j = single(s, i)
      if j then return k(j, caps) end
      return nil
    end
  elseif t == "empty" then
    return function(_, i, caps, k) return k(i, caps) end
  elseif t == "seq" then
    local ms = {}
    for n, item in ipairs(node.items) do ms[n] = compile(item, ic) end
    local function step(n, s, i, caps, k)
      local m = ms[n]
      if not m then return k(i, caps) end
      return m(s, i, caps, function(j, c2) return step(n + 1, s, j, c2, k) end)
    end
    return function(s, i, caps, k) return step(1, s, i, caps, k) end
  elseif t == "alt" then
    local ms = {}
    for n, a in ipairs(node.alts) do ms[n] = compile(a, ic) end
    return function(s, i, caps, k)
      for _, m in ipairs(ms) do
        local r = m(s, i, caps, k)
        if r then return r end
      end
      return nil
    end
  elseif t == "group" then
    local m, cap = compile(node.node, ic), node.cap
    if not cap then return m end
    return function(s, i, caps, k)
      return m(s, i, caps, function(j, c2)
        local c3 = setmetatable({ [cap] = { i, j - 1 } }, { __index = c2 })
        return k(j, c3)
      end)
    end
  elseif t == "look" then
    local m, neg = compile(node.node, ic), node.neg
    return function(s, i, caps, k)
      local hit = m(s, i, caps, function(j) return j end)
      if (hit ~= nil) ~= neg then return k(i, caps) end
      return nil
    end
  elseif t == "backref" then
    local n = node.n
    return function(s, i, caps, k)
      local c = caps[n]
      if not c then return nil end
      local text = s:sub(c[1], c[2])
      local here = s:sub(i, i + #text - 1)
      if here == text or (ic and here:lower() == text:lower()) then return k(i + #text, caps) end
      return nil
    end
  elseif t == "bol" then
    return function(s, i, caps, k)
      if i == 1 or s:byte(i - 1) == 10 then return k(i, caps) end
      return nil
    end
  elseif t == "eol" then
    return function(s, i, caps, k)
      if i == #s + 1 or (i == #s and s:byte(i) == 10) then return k(i, caps) end
      return nil
    end
  elseif t == "bos" then
    return function(_, i, caps, k) if i == 1 then return k(i, caps) end return nil end
  elseif t == "eos" then
    return function(s, i, caps, k) if i == #s + 1 then return k(i, caps) end return nil end
  elseif t == "eosnl" then
    return function(s, i, caps, k)
      if i == #s + 1 or (i == #s and s:byte(i) == 10) then return k(i, caps) end
      return nil
    end
  elseif t == "wordb" or t == "nwordb" then
    local want = t == "wordb"
    return function(s, i, caps, k)
      if (is_word_at(s, i - 1) ~= is_word_at(s, i)) == want then return k(i, caps) end
      return nil
    end
  elseif t == "rep" then
    local min, max, lazy = node.min, node.max, node.lazy
    local single_inner = single_char_test(node.node, ic)
    if single_inner then
      return function(s, i, caps, k)
        local ends = { [0] = i }
        local n, j = 0, i
        while n < max do
          local nj = single_inner(s, j)
          if not nj then break end
          n = n + 1
          ends[n] = nj
          j = nj
          if lazy and n >= min then break end
        end
        if n < min then return nil end
        if lazy then
          -- extend one at a time only as far as needed
          local cnt, pos = min, ends[min]
          while true do
            local r = k(pos, caps)
            if r then return r end
            if cnt >= max then return nil end
            local nj = single_inner(s, pos)
            if not nj then return nil end
            cnt, pos = cnt + 1, nj
          end
        end
        for c = n, min, -1 do
          local r = k(ends[c], caps)
          if r then return r end
        end
        return nil
      end
    end
    local m = compile(node.node, ic)
    local function try(s, i, caps, k, count)
      if lazy then
        if count >= min then
          local r = k(i, caps)
          if r then return r end
        end
        if count < max then
          return m(s, i, caps, function(j, c2)
            if j == i and count >= min then return nil end
            return try(s, j, c2, k, count + 1)
          end)
        end
        return nil
      end
      if count < max then
        local r = m(s, i, caps, function(j, c2)
          if j == i and count >= min then return nil end
          return try(s, j, c2, k, count + 1)
        end)
        if r then return r end
      end
      if count >= min then return k(i, caps) end
      return nil
    end
    return function(s, i, caps, k) return try(s, i, caps, k, 0) end
  end
  error("regex: unknown node " .. tostring(t))
end

local Regex = {}
Regex.__index = Regex

-- First match in subject: start, stop (inclusive), or nil.
function Regex:find(subject)
  local m = self.m
  local done = function(j) return j end
  for start = 1, #subject + 1 do
    local stop = m(subject, start, {}, done)
    if stop then return start, stop - 1 end
    if self.anchored then break end
  end
  return nil
end

function M.compile(pattern, opts)
  opts = opts or {}
  local ic = opts.ignore_case and true or false
  local src = pattern
  if src:sub(1, 4) == "(?i)" then
    ic = true
    src = src:sub(5)
  end
  local parser = setmetatable({ src = src, pos = 1, ncap = 0, groups_referenced = 0 }, Parser)
  local ok, tree = pcall(function()
    local t = parser:alternation()
    if parser.pos <= #src then err("unmatched closing parenthesis", parser.pos) end
    if parser.groups_referenced > parser.ncap then err("reference to non-existent subpattern", #src) end
    return t
  end)
  if not ok then
    if type(tree) == "table" and tree.regex_error then return nil, tree.regex_error, tree.offset end
    error(tree, 0)
  end
  local anchored = tree.t == "seq" and tree.items[1] and (tree.items[1].t == "bos")
  return setmetatable({ m = compile(tree, ic), anchored = anchored }, Regex)
end

return M
