-- moonbox.permglob: the permission glob matcher (reference §8.3, cases of §9.10).
local g = require "moonbox.permglob"

local function m(pattern, subject)
  return g.compile(pattern):match(subject)
end

describe("moonbox.permglob", function()
  it("matches * within one segment only", function()
    assert.is_true(m("*.txt", "file.txt"))
    assert.is_false(m("*.txt", "dir/file.txt"))
    assert.is_true(m("*", ""))
    assert.is_false(m("*", "/"))
  end)

  it("matches **/ as zero or more directories and other ** as anything", function()
    assert.is_true(m("**/*.txt", "file.txt"))
    assert.is_true(m("**/*.txt", "a/b/c/file.txt"))
    assert.is_true(m("**/*.txt", "/abs/file.txt"))
    assert.is_true(m("/etc/**", "/etc/passwd"))
    assert.is_true(m("/etc/**", "/etc/ssl/certs/x.pem"))
    assert.is_false(m("/etc/**", "/etc"))
    assert.is_true(m("a**b", "a/x/y/b"))
    assert.is_true(m("a/**/b", "a/b"))
    assert.is_true(m("a/**/b", "a/x/y/b"))
    assert.is_false(m("a/**/b", "ab"))
  end)

  it("matches ? as one character other than /", function()
    assert.is_true(m("file?.txt", "file1.txt"))
    assert.is_true(m("file?.txt", "fileA.txt"))
    assert.is_false(m("file?.txt", "file12.txt"))
    assert.is_false(m("a?b", "a/b"))
    assert.is_true(m("a?b", "aéb")) -- one code point, not one byte
  end)

  it("is exact for literals, whole-string and case-sensitive", function()
    assert.is_true(m(".env", ".env"))
    assert.is_false(m(".env", ".env.local"))
    assert.is_false(m(".env", "x.env"))
    assert.is_false(m("**/*secret*", "/p/Secret.txt"))
    assert.is_true(m("**/*secret*", "/p/my_secret.txt"))
  end)

  it("supports classes, negation with ! or ^, ] first and ranges", function()
    assert.is_true(m("file[123].txt", "file2.txt"))
    assert.is_false(m("file[123].txt", "file4.txt"))
    for _, p in ipairs { "file[!123].txt", "file[^123].txt" } do
      assert.is_true(m(p, "file4.txt"))
      assert.is_false(m(p, "file1.txt"))
    end
    assert.is_true(m("file[a!].txt", "file!.txt")) -- ! not first is a member
    assert.is_true(m("file[]a].txt", "file].txt"))
    assert.is_true(m("file[]a].txt", "filea.txt"))
    assert.is_false(m("file[]a].txt", "fileb.txt"))
    assert.is_true(m("[a-c]x", "bx"))
    assert.is_false(m("[a-c]x", "dx"))
    assert.is_true(m("[a-]x", "-x"))
    assert.is_true(m("a[!b]c", "a/c")) -- a negated class is a regex class: it matches /
  end)

  it("treats an unclosed [ as a literal", function()
    assert.is_true(m("file[.txt", "file[.txt"))
    assert.is_false(m("file[.txt", "filex.txt"))
    assert.is_true(m("[!]", "[!]"))
  end)

  it("makes an unrenderable class inert instead of raising", function()
    for _, p in ipairs { "[\\]", "a[z-a]", "[\\d]" } do
      local c = g.compile(p)
      assert.is_true(c:inert(), p)
      assert.is_false(c:match("a"))
      assert.is_false(c:match(p))
    end
    assert.is_false(g.compile("[a]"):inert())
    assert.is_true(m("[a\\-z]", "-")) -- an escaped member is that character, not a range
    assert.is_false(m("[a\\-z]", "b"))
    assert.is_true(g.compile("[\\]]x"):inert()) -- the class ends at the first ]
  end)

  it("matches the reference's **/.env family", function()
    for _, s in ipairs { "/home/user/.env", ".env", "project/config/.env", "/.env" } do
      assert.is_true(m("**/.env", s), s)
    end
    assert.is_false(m("**/.env", "/a/.env.local"))
    assert.is_true(m("**/.env.*", "/a/.env.local"))
    assert.is_true(m("**/secrets/**", "/a/secrets/b/c"))
    assert.is_true(m("**/secrets/**", "secrets/x"))
    assert.is_false(m("**/secrets/**", "/a/secrets"))
    assert.is_false(m("**/secrets/**", "/a/mysecrets/x"))
  end)

  it("lets ** cross newlines and anchors at the true end", function()
    assert.is_true(m("/etc/**", "/etc/a\nb"))
    assert.is_false(m("/etc/passwd", "/etc/passwd\n"))
    assert.is_true(m("a*b", "a\nb"))
  end)

  it("handles bytes that are not UTF-8 as single characters", function()
    assert.is_true(m("a?b", "a\255b"))
    assert.is_true(m("a\255*", "a\255xyz"))
    assert.is_false(m("a\195", "a\195\169"))
  end)

  it("works for long patterns and subjects without blowing up", function()
    local long = ("ab/"):rep(200)
    assert.is_true(m(long .. "*", long .. "zz"))
    assert.is_false(m(long .. "*", long .. "z/z"))
    local hostile = ("*a"):rep(100) .. "b"
    local t0 = os.clock()
    assert.is_false(m(hostile, ("a"):rep(20000)))
    assert.is_false(m(("**/"):rep(300) .. "x", ("a/"):rep(5000)))
    assert.is_true(os.clock() - t0 < 1)
  end)

  it("keeps the source and prints it", function()
    local c = g.compile("**/*.pem")
    assert.equal("**/*.pem", c:source())
    assert.equal("moonbox.permglob.Pattern: **/*.pem", tostring(c))
  end)

  it("finds the first match in a set", function()
    local s = g.set { "**/.env", g.compile("/etc/**"), "**" }
    assert.equal(3, #s)
    assert.equal(1, s:first("/x/.env"))
    assert.equal(2, s:first("/etc/hosts"))
    assert.equal(3, s:first("/tmp/x"))
    assert.same({ 1, 3 }, s:matches("/x/.env"))
    assert.equal("/etc/**", s:pattern(2):source())
    assert.is_nil(g.set({ "a" }):first("b"))
    assert.equal(0, #g.set {})
  end)

  it("raises on misuse", function()
    assert.has_error(function() g.compile(42) end)
    assert.has_error(function() g.compile(("x"):rep(g.max_pattern + 1)) end)
    assert.has_error(function() g.set { "a", {} } end,
      "permglob.set: item 2 is a table; expected a pattern string or Pattern")
    assert.has_error(function() g.compile("a"):match(nil) end)
    assert.has_error(function() g.set({}):pattern(1) end)
  end)
end)
