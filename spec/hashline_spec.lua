-- moonbox.hashline: hashes, the N:HH|text format, single and batched edits (reference §7.4, §9.9).
local hashline = require "moonbox.hashline"
local moonbox = require "moonbox"

local H = hashline.hash

-- An edit anchored on the current text of its lines.
local function at(content, start_line, new_content, opts)
  local lines = {}
  for piece in (content .. "\n"):gmatch("(.-)\r?\n") do lines[#lines + 1] = piece end
  local e = { start_line = start_line, start_hash = H(lines[start_line] or ""), new_content = new_content }
  for k, v in pairs(opts or {}) do e[k] = v end
  if e.end_line and e.end_hash == true then e.end_hash = H(lines[e.end_line] or "") end
  return e
end

describe("hashline.hash", function()
  it("is the first 2 lowercase hex digits of MD5 by default", function()
    assert.equal("5d", H("hello")) -- md5("hello") = 5d41402a...
    assert.equal("d4", H(""))      -- md5("") = d41d8cd9...
    assert.matches("^%x%x$", H("x"))
  end)

  it("takes a length of 2 to 8 digits", function()
    assert.equal("5d41402a", H("hello", 8))
    assert.equal("5d41", H("hello", 4))
    assert.equal(8, #H("", 8))
  end)

  it("is whitespace- and content-sensitive and deterministic", function()
    assert.not_equal(H("a"), H("a ")) -- not guaranteed in general, true for these
    assert.equal(H("same"), H("same"))
    assert.equal(H("same", 8), H("same", 8))
    assert.not_equal(H("same", 8), H("same ", 8))
  end)

  it("raises on a bad length or type", function()
    assert.has_error(function() H("x", 1) end)
    assert.has_error(function() H("x", 9) end)
    assert.has_error(function() H("x", 2.5) end)
    assert.has_error(function() H(nil) end)
    assert.has_error(function() H({}) end)
  end)

  it("is registered as moonbox.hashline", function()
    assert.equal(hashline, moonbox.hashline)
  end)
end)

describe("hashline.format", function()
  local cases = {
    { "three lines", "aaa\nbbb\nccc\n", {}, ("1:%s|aaa\n2:%s|bbb\n3:%s|ccc"):format(H "aaa", H "bbb", H "ccc") },
    { "no final newline", "aaa\nbbb", {}, ("1:%s|aaa\n2:%s|bbb"):format(H "aaa", H "bbb") },
    { "empty file", "", {}, ("1:%s|"):format(H "") },
    { "only a newline", "\n", {}, ("1:%s|"):format(H "") },
    { "one line", "x", {}, ("1:%s|x"):format(H "x") },
    { "blank middle line", "a\n\nb\n", {}, ("1:%s|a\n2:%s|\n3:%s|b"):format(H "a", H "", H "b") },
    { "CRLF shows and hashes the text only", "a\r\nb\r\n", {}, ("1:%s|a\n2:%s|b"):format(H "a", H "b") },
    { "lone CR stays text", "a\rb", {}, ("1:%s|a\rb"):format(H "a\rb") },
    { "offset", "a\nb\nc\nd\ne\n", { 2 }, ("3:%s|c\n4:%s|d\n5:%s|e"):format(H "c", H "d", H "e") },
    { "limit with more lines", "a\nb\nc\nd\ne\n", { 0, 2 },
      ("1:%s|a\n2:%s|b\n\n... (3 more lines)"):format(H "a", H "b") },
    { "offset and limit", "a\nb\nc\nd", { 1, 1 }, ("2:%s|b\n\n... (2 more lines)"):format(H "b") },
    { "limit exactly to the end", "a\nb\n", { 0, 2 }, ("1:%s|a\n2:%s|b"):format(H "a", H "b") },
    { "hash length 6", "a\nb", { 0, 10, 6 }, ("1:%s|a\n2:%s|b"):format(H("a", 6), H("b", 6)) },
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      local out = assert(hashline.format(c[2], table.unpack(c[3], 1, 3)))
      assert.equal(c[4], out)
    end)
  end

  it("refuses an offset past the end with INVALID", function()
    local out, msg, code = hashline.format("a\nb\n", 2)
    assert.is_nil(out)
    assert.equal("Offset 2 exceeds file length (2 lines)", msg)
    assert.equal("INVALID", code)
    assert.equal("Offset 1 exceeds file length (1 lines)", select(2, hashline.format("", 1)))
  end)

  it("raises on bad arguments", function()
    assert.has_error(function() hashline.format(nil) end)
    assert.has_error(function() hashline.format("a", -1) end)
    assert.has_error(function() hashline.format("a", 0, 0) end)
    assert.has_error(function() hashline.format("a", 0, 10, 12) end)
  end)

  it("formats a 10,000-line file with every hash matching hash()", function()
    local lines = {}
    for i = 1, 10000 do lines[i] = ("line %d %s"):format(i, ("x"):rep(i % 70)) end
    local out = hashline.format(table.concat(lines, "\n") .. "\n", 0, 10000)
    local n = 0
    for num, hh, text in out:gmatch("(%d+):(%x+)|([^\n]*)") do
      n = n + 1
      assert(tonumber(num) == n and text == lines[n] and hh == H(text), "line " .. n)
    end
    assert.equal(10000, n)
  end)
end)

describe("hashline.apply", function()
  local ok_cases = {
    -- label, content, start, new, opts, expected, summary
    { "replace one line", "aaa\nbbb\nccc\n", 2, "BBB", nil, "aaa\nBBB\nccc\n", "Replaced 1 line(s) at line 2" },
    { "replace a range", "aaa\nbbb\nccc\nddd\n", 2, "XXX\nYYY", { end_line = 3, end_hash = true },
      "aaa\nXXX\nYYY\nddd\n", "Replaced 2 line(s) at line 2" },
    { "range without end_hash", "aaa\nbbb\nccc\nddd\n", 2, "X", { end_line = 3 }, "aaa\nX\nddd\n",
      "Replaced 2 line(s) with 1 line(s) at line 2" },
    { "grow a line", "a\nb\nc\n", 2, "x\ny\nz", nil, "a\nx\ny\nz\nc\n", "Replaced 1 line(s) with 3 line(s) at line 2" },
    { "insert after", "aaa\nbbb\nccc\n", 2, "NEW", { insert_after = true }, "aaa\nbbb\nNEW\nccc\n",
      "Inserted 1 line(s) after line 2" },
    { "insert several after the last", "a\nb\n", 2, "c\nd", { insert_after = true }, "a\nb\nc\nd\n",
      "Inserted 2 line(s) after line 2" },
    { "insert after last, no final newline", "a\nb", 2, "c", { insert_after = true }, "a\nb\nc",
      "Inserted 1 line(s) after line 2" },
    { "delete a line", "aaa\nbbb\nccc\n", 2, "", nil, "aaa\nccc\n", "Deleted 1 line(s) at line 2" },
    { "delete a range", "aaa\nbbb\nccc\nddd\n", 2, "", { end_line = 3, end_hash = true }, "aaa\nddd\n",
      "Deleted 2 line(s) at line 2" },
    { "delete the last line, no final newline", "a\nb\nc", 3, "", nil, "a\nb", "Deleted 1 line(s) at line 3" },
    { "delete the last line, final newline", "a\nb\nc\n", 3, "", nil, "a\nb\n", "Deleted 1 line(s) at line 3" },
    { "delete everything", "a\nb\n", 1, "", { end_line = 2 }, "", "Deleted 2 line(s) at line 1" },
    { "replace first line", "a\nb\n", 1, "A", nil, "A\nb\n", "Replaced 1 line(s) at line 1" },
    { "replace last line", "a\nb\n", 2, "B", nil, "a\nB\n", "Replaced 1 line(s) at line 2" },
    { "replace all lines", "a\nb\nc\n", 1, "new", { end_line = 3, end_hash = true }, "new\n",
      "Replaced 3 line(s) with 1 line(s) at line 1" },
    { "keeps a missing final newline", "a\nb", 2, "B", nil, "a\nB", "Replaced 1 line(s) at line 2" },
    { "one trailing newline in new_content ends the line", "a\nb\n", 1, "A\n", nil, "A\nb\n",
      "Replaced 1 line(s) at line 1" },
    { "new_content of one newline is an empty line", "a\nb\n", 1, "\n", nil, "\nb\n", "Replaced 1 line(s) at line 1" },
    { "empty file", "", 1, "x", nil, "x", "Replaced 1 line(s) at line 1" },
    { "empty file, insert", "", 1, "x", { insert_after = true }, "\nx", "Inserted 1 line(s) after line 1" },
    { "newline-only file", "\n", 1, "x", nil, "x\n", "Replaced 1 line(s) at line 1" },
    { "one-line file", "only", 1, "one\ntwo", nil, "one\ntwo", "Replaced 1 line(s) with 2 line(s) at line 1" },
    { "CRLF replace keeps CRLF", "a\r\nb\r\nc\r\n", 2, "X\nY", nil, "a\r\nX\r\nY\r\nc\r\n",
      "Replaced 1 line(s) with 2 line(s) at line 2" },
    { "CRLF with CRLF new_content", "a\r\nb\r\n", 1, "X\r\nY\r\n", nil, "X\r\nY\r\nb\r\n",
      "Replaced 1 line(s) with 2 line(s) at line 1" },
    { "CRLF insert after an unterminated last line", "a\r\nb", 2, "c", { insert_after = true }, "a\r\nb\r\nc",
      "Inserted 1 line(s) after line 2" },
    { "CRLF delete to the end, no final newline", "a\r\nb\r\nc", 2, "", { end_line = 3 }, "a",
      "Deleted 2 line(s) at line 2" },
    { "upper-case hash accepted", "a\nb\n", 1, "A", { start_hash = H("a"):upper() }, "A\nb\n",
      "Replaced 1 line(s) at line 1" },
  }
  for _, c in ipairs(ok_cases) do
    it(c[1], function()
      local new, summary = hashline.apply(c[2], at(c[2], c[3], c[4], c[5]))
      assert.equal(c[6], new)
      assert.equal(c[7], summary)
    end)
  end

  local err_cases = {
    { "start 0", "a\nb\n", { start_line = 0, start_hash = "00", new_content = "x" }, "INVALID",
      "Line 0 out of range (file has 2 lines)" },
    { "start past the end", "a\nb\n", { start_line = 3, start_hash = "00", new_content = "x" }, "INVALID",
      "Line 3 out of range (file has 2 lines)" },
    { "start negative", "a", { start_line = -1, start_hash = "00", new_content = "x" }, "INVALID",
      "Line 0 out of range (file has 1 lines)" },
    { "insert_after with end_line", "a\nb\n",
      { start_line = 1, start_hash = H "a", new_content = "x", insert_after = true, end_line = 2 }, "INVALID",
      "end_line/end_hash cannot be combined with insert_after" },
    { "insert_after with end_hash", "a\nb\n",
      { start_line = 1, start_hash = H "a", new_content = "x", insert_after = true, end_hash = H "b" }, "INVALID",
      "end_line/end_hash cannot be combined with insert_after" },
    { "range is checked before the hash", "a\n", { start_line = 5, start_hash = "zz", new_content = "x",
      insert_after = true, end_line = 9 }, "INVALID", "Line 5 out of range (file has 1 lines)" },
    { "start hash mismatch", "aaa\nbbb\n", { start_line = 2, start_hash = "zz", new_content = "x" }, "CONFLICT",
      ("Hash mismatch at line 2: expected 'zz', got '%s'. File may have changed — re-read it first."):format(H "bbb") },
    { "end before start", "a\nb\nc\n", { start_line = 2, start_hash = H "b", new_content = "x", end_line = 1 },
      "INVALID", "end_line (1) must be >= start_line (2)" },
    { "end past the end", "a\nb\nc\n", { start_line = 2, start_hash = H "b", new_content = "x", end_line = 4 },
      "INVALID", "End line 4 out of range (file has 3 lines)" },
    { "end hash mismatch", "a\nb\nc\n",
      { start_line = 1, start_hash = H "a", new_content = "x", end_line = 3, end_hash = "zz" }, "CONFLICT",
      ("Hash mismatch at line 3: expected 'zz', got '%s'. File may have changed — re-read it first."):format(H "c") },
    { "end_hash without end_line", "a\nb\n",
      { start_line = 1, start_hash = H "a", new_content = "x", end_hash = H "b" },
      "INVALID", "end_hash needs end_line (the line it anchors)" },
    { "empty insert", "a\n", { start_line = 1, start_hash = H "a", new_content = "", insert_after = true },
      "INVALID", "new_content is empty: there is nothing to insert" },
    { "hash of another length", "a\n", { start_line = 1, start_hash = H("a", 4), new_content = "x" }, "CONFLICT",
      ("Hash mismatch at line 1: expected '%s', got '%s'. File may have changed — re-read it first.")
        :format(H("a", 4), H "a") },
  }
  for _, c in ipairs(err_cases) do
    it("refuses: " .. c[1], function()
      local new, msg, code = hashline.apply(c[2], c[3])
      assert.is_nil(new)
      assert.equal(c[5], msg)
      assert.equal(c[4], code)
    end)
  end

  it("uses the given hash length", function()
    local e = { start_line = 1, start_hash = H("a", 8), new_content = "A" }
    assert.equal("A\n", (hashline.apply("a\n", e, 8)))
    assert.equal("CONFLICT", select(3, hashline.apply("a\n", e)))
  end)

  it("raises on malformed edits", function()
    assert.has_error(function() hashline.apply("a", nil) end)
    assert.has_error(function() hashline.apply("a", { start_hash = "00", new_content = "" }) end)
    assert.has_error(function() hashline.apply("a", { start_line = "1", start_hash = "00", new_content = "" }) end)
    assert.has_error(function() hashline.apply("a", { start_line = 1.5, start_hash = "00", new_content = "" }) end)
    assert.has_error(function() hashline.apply("a", { start_line = 1, new_content = "" }) end)
    assert.has_error(function() hashline.apply("a", { start_line = 1, start_hash = "00" }) end)
    assert.has_error(function()
      hashline.apply("a", { start_line = 1, start_hash = "00", new_content = "", insert_after = "yes" })
    end)
    assert.has_error(function() hashline.apply("a", { start_line = 1, start_hash = H "a", new_content = "" }, 1) end)
  end)

  it("accepts a float line number with an integer value", function()
    assert.equal("A", (hashline.apply("a", { start_line = 1.0, start_hash = H "a", new_content = "A" })))
  end)

  it("keeps binary bytes and NULs intact", function()
    local content = "a\0b\n\255\254\n"
    local new = hashline.apply(content, at(content, 2, "x"))
    assert.equal("a\0b\nx\n", new)
  end)
end)

describe("hashline.apply_many", function()
  local base = "l1\nl2\nl3\nl4\nl5\nl6\n"

  it("applies edits validated against the original, in any order", function()
    local new, summary = hashline.apply_many(base, {
      at(base, 5, "L5"),
      at(base, 1, "L1a\nL1b"),
      at(base, 3, "", { end_line = 4, end_hash = true }),
      at(base, 6, "L7", { insert_after = true }),
    })
    assert.equal("L1a\nL1b\nl2\nL5\nl6\nL7\n", new)
    assert.equal("Replaced 1 line(s) at line 5; Replaced 1 line(s) with 2 line(s) at line 1; "
      .. "Deleted 2 line(s) at line 3; Inserted 1 line(s) after line 6", summary)
  end)

  it("allows an insert right before a replaced line", function()
    local new = hashline.apply_many(base, { at(base, 2, "X", { insert_after = true }), at(base, 3, "Y") })
    assert.equal("l1\nl2\nX\nY\nl4\nl5\nl6\n", new)
  end)

  it("handles deleting the tail of a file without a final newline after another edit", function()
    local c = "a\nb\nc"
    local new = hashline.apply_many(c, { at(c, 1, "A"), at(c, 2, "", { end_line = 3 }) })
    assert.equal("A", new)
  end)

  it("refuses overlapping edits", function()
    local cases = {
      { at(base, 2, "x", { end_line = 4 }), at(base, 4, "y") },
      { at(base, 2, "x"), at(base, 2, "y", { insert_after = true }) },
      { at(base, 2, "x", { insert_after = true }), at(base, 2, "y", { insert_after = true }) },
      { at(base, 3, "x"), at(base, 1, "y", { end_line = 5 }) },
    }
    for _, edits in ipairs(cases) do
      local new, msg, code = hashline.apply_many(base, edits)
      assert.is_nil(new)
      assert.equal("INVALID", code)
      assert.matches("^edits 1 and 2 overlap %(lines", msg)
    end
  end)

  it("is all or nothing and names the failing edit", function()
    local new, msg, code = hashline.apply_many(base, { at(base, 1, "x"), { start_line = 2, start_hash = "zz",
      new_content = "y" } })
    assert.is_nil(new)
    assert.equal("CONFLICT", code)
    assert.matches("^edit 2: Hash mismatch at line 2", msg)
    assert.equal("INVALID", select(3, hashline.apply_many(base, {})))
  end)

  it("raises on a non-table edit", function()
    assert.has_error(function() hashline.apply_many(base, { 1 }) end)
    assert.has_error(function() hashline.apply_many(base, "x") end)
  end)

  it("matches a sequence of single edits applied bottom-up", function()
    local lines = {}
    for i = 1, 200 do lines[i] = "row " .. i end
    local content = table.concat(lines, "\n") .. "\n"
    local edits, expect = {}, content
    for ln = 190, 10, -20 do
      edits[#edits + 1] = at(content, ln, "changed " .. ln .. "\nextra")
      expect = assert(hashline.apply(expect, at(expect, ln, "changed " .. ln .. "\nextra")))
    end
    assert.equal(expect, (hashline.apply_many(content, edits)))
  end)
end)

describe("hashline chained edits", function()
  -- A model of the semantics in plain Lua: lines, their ending, and the final-newline state.
  local function model_apply(m, e)
    local new = {}
    if e.new_content ~= "" then
      local text = e.new_content:gsub("\n$", "")
      for piece in (text .. "\n"):gmatch("(.-)\n") do new[#new + 1] = piece end
    end
    local out = {}
    for i = 1, e.start_line - 1 do out[#out + 1] = m.lines[i] end
    local last = e.insert_after and e.start_line or (e.end_line or e.start_line)
    if e.insert_after then out[#out + 1] = m.lines[e.start_line] end
    for _, l in ipairs(new) do out[#out + 1] = l end
    for i = last + 1, #m.lines do out[#out + 1] = m.lines[i] end
    m.lines = out
  end
  local function model_text(m)
    if #m.lines == 0 then return "" end
    return table.concat(m.lines, m.eol) .. (m.trailing and m.eol or "")
  end
  local function model_format(m, offset, limit)
    local out = {}
    for i = offset + 1, math.min(#m.lines, offset + limit) do out[#out + 1] = ("%d:%s|%s"):format(i, H(m.lines[i]),
      m.lines[i]) end
    local text = table.concat(out, "\n")
    local rest = #m.lines - (offset + limit)
    if rest > 0 then text = text .. ("\n\n... (%d more lines)"):format(rest) end
    return text
  end

  for _, shape in ipairs({ { "\n", true }, { "\n", false }, { "\r\n", true }, { "\r\n", false } }) do
    local eol, trailing = shape[1], shape[2]
    for _, first_seed in ipairs({ 7, 1234, 99991 }) do
      it(("match a model over 400 random edits (%q, final newline %s, seed %d)"):format(eol, tostring(trailing),
        first_seed), function()
        local seed = first_seed
        local function rand(n)
          seed = (seed * 1103515245 + 12345) % 2147483648
          return seed % n + 1
        end
        local m = { lines = {}, eol = eol, trailing = trailing }
        for i = 1, 40 do m.lines[i] = ("line %d %s"):format(i, ("x"):rep(i % 7)) end
        local cur = model_text(m)
        for step = 1, 400 do
          local n = #m.lines
          local s = rand(n)
          -- read around the line first (as a model does): exercises the position and count memory
          local offset = rand(n) - 1
          assert.equal(model_format(m, offset, 3), hashline.format(cur, offset, 3))
          assert.equal(model_format(m, s - 1, 2), hashline.format(cur, s - 1, 2))
          local e = { start_line = s, start_hash = H(m.lines[s]) }
          local kind = rand(4)
          if kind == 1 then
            e.insert_after, e.new_content = true, ("ins %d\nins %d b"):format(step, step)
          elseif kind == 2 and n > 2 then
            e.end_line = math.min(n, s + rand(3) - 1)
            -- keep two lines: a lone unterminated line carries no line ending to copy
            if n - (e.end_line - s + 1) < 2 then e.end_line = s end
            e.end_hash, e.new_content = H(m.lines[e.end_line]), ""
          elseif kind == 3 then
            e.new_content = ("rep %d"):format(step)
          else
            e.end_line = math.min(n, s + 1)
            e.new_content = ("two %d\nthree %d\n"):format(step, step)
          end
          local new, summary = hashline.apply(cur, e)
          assert(new, summary)
          model_apply(m, e)
          assert.equal(model_text(m), new)
          cur = new
        end
      end)
    end
  end

  it("gives the same result for the last result and for an equal string that is another object", function()
    local base = ("row\n"):rep(100)
    local r1 = hashline.apply(base, { start_line = 1, start_hash = H "row", new_content = "first" })
    local copy = r1:sub(1, -2) .. "\n" -- equal bytes, a different string object
    local via_cache = hashline.apply(r1, { start_line = 100, start_hash = H "row", new_content = "" })
    local fresh = hashline.apply(copy, { start_line = 100, start_hash = H "row", new_content = "" })
    assert.equal(fresh, via_cache)
    assert.equal("first\n" .. ("row\n"):rep(98), fresh)
  end)
end)
