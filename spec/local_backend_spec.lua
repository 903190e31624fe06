-- local_backend: what only a real, confined directory has (the shared protocol is in
-- local_backend_conformance_spec.lua). Every confinement case runs under both resolvers:
-- openat2(RESOLVE_BENEATH) and the O_NOFOLLOW component walk.
local moonbox = require "moonbox"
local tmp = require "spec.support.tmpdir"

local q = tmp.sh_quote
local exe = os.getenv("MOONBOX_EXE") or "build/moonbox"

local sh = tmp.run
local slurp = tmp.read
local spit = tmp.write

local function listing(dir)
  local p = assert(io.popen("ls -A " .. q(dir)))
  local s = p:read("a")
  p:close()
  return s
end

-- One field of stat(1) for path: "%a" the mode bits in octal, "%i" the inode number.
local function stat_of(format, path)
  local p = assert(io.popen("stat -c " .. format .. " " .. q(path)))
  local s = p:read("l")
  p:close()
  return s
end

local function mode_of(path) return stat_of("%a", path) end

local function fails(code, r, msg, got)
  assert.is_nil(r, "expected " .. code .. ", got a result")
  assert.is_string(msg)
  assert.equal(code, got, msg)
  return msg
end

local function paths(list)
  local out = {}
  for i, e in ipairs(list) do out[i] = e.path end
  return out
end

describe("local_backend constructor", function()
  local dir, remove
  before_each(function() dir, remove = tmp.make() end)
  after_each(function() remove() end)

  it("creates a missing root, nested", function()
    local b = assert(moonbox.local_backend{ root = dir .. "/a/b/c" })
    assert.equal(dir .. "/a/b/c", b:root())
    assert.equal("", listing(dir .. "/a/b/c"))
    assert.matches("^LocalBackend %(", tostring(b))
    b:close()
  end)

  it("cleans the root path and uses the first allowed directory when root is missing", function()
    local b = assert(moonbox.local_backend{ allowed = { dir .. "//x/./" } })
    assert.equal(dir .. "/x", b:root())
    b:close()
  end)

  it("creates allowed directories", function()
    local b = assert(moonbox.local_backend{ root = dir .. "/r", allowed = { dir .. "/s1", dir .. "/s2/deep" } })
    assert.equal("", listing(dir .. "/s2/deep"))
    b:close()
  end)

  it("fails with a code when the root cannot be made", function()
    spit(dir .. "/file", "x")
    local r, msg, code = moonbox.local_backend{ root = dir .. "/file/sub" }
    assert.is_nil(r)
    assert.equal("ENOTDIR", code)
    assert.matches("cannot open directory", msg, 1, true)
    r, msg, code = moonbox.local_backend{ root = dir .. "/r", allowed = { dir .. "/file" } }
    assert.is_nil(r)
    assert.is_string(msg)
    assert.is_string(code)
  end)

  it("raises on misuse", function()
    assert.has_error(function() moonbox.local_backend("dir") end)
    assert.has_error(function() moonbox.local_backend{ root = 42 } end)
    assert.has_error(function() moonbox.local_backend{ root = dir, bogus = true } end)
    assert.has_error(function() moonbox.local_backend{ root = dir, allowed = "x" } end)
    assert.has_error(function() moonbox.local_backend{ root = dir, allowed = { 1 } } end)
    assert.has_error(function() moonbox.local_backend{ root = dir, resolver = "magic" } end)
    assert.has_error(function() moonbox.local_backend{ root = dir, durable = "yes" } end)
    assert.has_error(function() moonbox.local_backend{ root = dir, [1] = true } end)
  end)

  it("reports its resolver and honours resolver = 'walk'", function()
    local a = assert(moonbox.local_backend{ root = dir })
    assert.is_truthy(({ openat2 = true, walk = true })[a:resolver()])
    local w = assert(moonbox.local_backend{ root = dir, resolver = "walk" })
    assert.equal("walk", w:resolver())
    a:close()
    w:close()
  end)

  it("closes once; a closed backend raises", function()
    local b = assert(moonbox.local_backend{ root = dir })
    b:close()
    b:close()
    assert.matches("closed", tostring(b))
    assert.has_error(function() b:read("/x") end, "attempt to use a closed LocalBackend")
    assert.has_error(function() b:root() end, "attempt to use a closed LocalBackend")
    local open = assert(moonbox.local_backend{ root = dir })
    assert.has_error(function() open.read({}, "/x") end)
    assert.has_error(function() open.glob("not a backend", "*") end)
    open:close()
    do
      local c <close> = assert(moonbox.local_backend{ root = dir }) -- luacheck: ignore 211
    end
  end)
end)

for _, resolver in ipairs({ "auto", "walk" }) do
  describe("local_backend confinement (" .. resolver .. ")", function()
    local root, outside, b, remove, remove_out
    before_each(function()
      root, remove = tmp.make()
      outside, remove_out = tmp.make()
      spit(outside .. "/secret.txt", "SECRET\n")
      b = assert(moonbox.local_backend{ root = root, resolver = resolver })
    end)
    after_each(function()
      b:close()
      remove()
      remove_out()
    end)

    local function outside_untouched()
      assert.equal("SECRET\n", slurp(outside .. "/secret.txt"))
      assert.equal("secret.txt\n", listing(outside))
    end

    it("refuses .. escapes with EACCES and says why", function()
      for _, p in ipairs({ "../x", "/../x", "a/../../x", "..", root .. "/../x" }) do
        local msg = fails("EACCES", b:write(p, "x"))
        assert.matches("outside the root", msg, 1, true)
        fails("EACCES", b:read(p))
        assert.is_false(b:exists(p))
      end
      outside_untouched()
    end)

    it("refuses a symlink to an outside file, existing and dangling, for every operation", function()
      sh("ln -s " .. q(outside .. "/secret.txt") .. " " .. q(root .. "/link"))
      sh("ln -s " .. q(outside .. "/nothing") .. " " .. q(root .. "/dangling"))
      sh("ln -s ../../../../../../../../" .. q(outside:sub(2) .. "/secret.txt") .. " " .. q(root .. "/rel"))
      for _, p in ipairs({ "/link", "/dangling", "/rel" }) do
        fails("EACCES", b:read(p))
        fails("EACCES", b:read_bytes(p))
        fails("EACCES", b:write(p, "PWNED"))
        fails("EACCES", b:edit(p, "SECRET", "PWNED"))
        fails("EACCES", b:grep("SECRET", { path = p }))
        assert.is_false(b:exists(p))
      end
      assert.same({}, b:ls("/"))
      assert.same({}, b:glob("**"))
      assert.same({}, b:grep("SECRET", { ignore_hidden = false }))
      outside_untouched()
    end)

    it("refuses a symlinked directory in the middle of a path, also for new files", function()
      sh("ln -s " .. q(outside) .. " " .. q(root .. "/out"))
      fails("EACCES", b:read("/out/secret.txt"))
      fails("EACCES", b:write("/out/new.txt", "x"))
      fails("EACCES", b:write("/out/deep/er/new.txt", "x"))
      fails("EACCES", b:ls("/out"))
      fails("EACCES", b:glob("*", "/out"))
      outside_untouched()
    end)

    it("refuses magic links and link loops without hanging", function()
      sh("ln -s /proc/self/root " .. q(root .. "/proc"))
      sh("ln -s loop2 " .. q(root .. "/loop1") .. " && ln -s loop1 " .. q(root .. "/loop2"))
      fails("EACCES", b:read("/proc/etc/passwd"))
      fails("EACCES", b:read("/loop1"))
      fails("EACCES", b:write("/loop1", "x"))
      assert.is_false(b:exists("/loop2"))
    end)

    it("follows symlinks that stay inside, relative or absolute, and writes through them", function()
      assert(b:write("/real/data.txt", "one\n"))
      sh("ln -s real " .. q(root .. "/rel"))
      sh("ln -s " .. q(root .. "/real") .. " " .. q(root .. "/abs"))
      sh("mkdir " .. q(root .. "/sub") .. " && ln -s ../real/data.txt " .. q(root .. "/sub/file-link"))
      assert.equal("one\n", b:read_bytes("/rel/data.txt"))
      assert.equal("one\n", b:read_bytes("/abs/data.txt"))
      assert(b:write("/sub/file-link", "two\n"))
      assert.equal("two\n", slurp(root .. "/real/data.txt"))
      local p = assert(io.popen("readlink " .. q(root .. "/sub/file-link")))
      assert.equal("../real/data.txt", p:read("l"))
      p:close()
      assert.same({ path = "/abs/data.txt", occurrences = 1 }, b:edit("/abs/data.txt", "two", "three"))
      assert.equal("three\n", slurp(root .. "/real/data.txt"))
      -- a dangling link inside the root: writing creates its target
      sh("ln -s made/later.txt " .. q(root .. "/pending"))
      assert(b:write("/pending", "now\n"))
      assert.equal("now\n", slurp(root .. "/made/later.txt"))
    end)

    it("lists and globs links to files inside, but does not walk into linked directories", function()
      assert(b:write("/d/a.txt", "hit\n"))
      sh("ln -s d/a.txt " .. q(root .. "/alias.txt"))
      sh("ln -s d " .. q(root .. "/dlink"))
      local ls = b:ls("/")
      assert.same({ "d", "dlink", "alias.txt" }, { ls[1].name, ls[2].name, ls[3].name })
      assert.is_true(ls[2].is_dir)
      assert.same({ "/alias.txt", "/d/a.txt" }, paths(b:glob("**/*.txt")))
      assert.same({ "/alias.txt", "/d/a.txt" }, paths(b:grep("hit")))
      assert.same({ "/dlink/a.txt" }, paths(b:grep("hit", { path = "/dlink" })))
    end)

    it("refuses a directory swapped for an outside symlink between calls", function()
      assert(b:write("/work/a.txt", "inside\n"))
      assert.equal("inside\n", b:read_bytes("/work/a.txt"))
      sh("mv " .. q(root .. "/work") .. " " .. q(root .. "/old"))
      sh("ln -s " .. q(outside) .. " " .. q(root .. "/work"))
      fails("EACCES", b:read("/work/secret.txt"))
      fails("EACCES", b:write("/work/a.txt", "x"))
      fails("EACCES", b:edit("/work/secret.txt", "SECRET", "x"))
      assert.same({}, b:grep("SECRET"))
      outside_untouched()
    end)

    it("resolves deep paths and links inside links", function()
      local deep = "/" .. string.rep("d/", 40) .. "f.txt"
      assert(b:write(deep, "deep\n"))
      sh("ln -s " .. q(string.rep("d/", 39) .. "d") .. " " .. q(root .. "/bottom"))
      sh("ln -s bottom " .. q(root .. "/via"))
      assert.equal("deep\n", b:read_bytes("/via/f.txt"))
      assert.equal("deep\n", b:read_bytes(deep))
      assert.same({ deep }, paths(b:glob("**/f.txt")))
    end)

    it("refuses NUL bytes and over-long names with INVALID", function()
      fails("INVALID", b:write("/a\0b", "x"))
      assert.is_false(b:exists("/a\0b"))
      fails("INVALID", b:write("/" .. string.rep("n", 4096), "x"))
      fails("INVALID", b:read(string.rep("n", 256)))
      assert.equal("", listing(root))
    end)

    it("takes absolute host paths inside the root and virtual paths for the rest", function()
      assert.same({ path = "/x/y.txt" }, b:write(root .. "/x/y.txt", "y\n"))
      assert.same({ "/x/y.txt" }, paths(b:glob("**", root .. "/x")))
      fails("ENOENT", b:read(outside .. "/secret.txt"))
      assert(b:write(outside .. "/secret.txt", "virtual\n"))
      assert.equal("virtual\n", slurp(root .. outside .. "/secret.txt"))
      outside_untouched()
    end)

    it("does not hang on a FIFO and skips it in searches", function()
      sh("mkfifo " .. q(root .. "/pipe"))
      assert(b:write("/f.txt", "pipe dream\n"))
      fails("INVALID", b:read("/pipe"))
      fails("INVALID", b:read_bytes("/pipe"))
      assert.is_false(b:exists("/pipe"))
      assert.same({ "/f.txt" }, paths(b:grep("pipe")))
      assert.same({ "/f.txt" }, paths(b:glob("*")))
    end)
  end)
end

describe("local_backend on a kernel without openat2", function()
  -- An LD_PRELOAD shim makes syscall(SYS_openat2, ...) fail with ENOSYS, as on Linux < 5.6:
  -- the backend must notice, switch to the walk and stay confined.
  local dir, remove
  before_each(function() dir, remove = tmp.make() end)
  after_each(function() remove() end)

  it("falls back to the O_NOFOLLOW walk and still refuses escapes", function()
    spit(dir .. "/shim.c", [[
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/syscall.h>
long syscall(long n, ...) {
  va_list ap; va_start(ap, n);
  long a[6]; for (int i = 0; i < 6; i++) a[i] = va_arg(ap, long);
  va_end(ap);
  if (n == SYS_openat2) { errno = ENOSYS; return -1; }
  long (*real)(long, ...) = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
  return real(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}
]])
    sh("cc -shared -fPIC -o " .. q(dir .. "/shim.so") .. " " .. q(dir .. "/shim.c") .. " -ldl")
    sh("mkdir -p " .. q(dir .. "/root/real") .. " " .. q(dir .. "/out"))
    spit(dir .. "/out/secret.txt", "SECRET\n")
    sh("ln -s ../out " .. q(dir .. "/root/up") .. " && ln -s real " .. q(dir .. "/root/alias"))
    spit(dir .. "/check.lua", [[
      local b = assert(require("moonbox").local_backend{ root = ... })
      local before = b:resolver()
      assert(b:write("/alias/f.txt", "inside\n"))
      local _, _, code = b:read("/up/secret.txt")
      io.write(before, " ", b:resolver(), " ", b:read_bytes("/real/f.txt"), code, "\n")
    ]])
    local env = "ASAN_OPTIONS=verify_asan_link_order=0 LD_PRELOAD=" .. q(dir .. "/shim.so")
    local p = assert(io.popen(env .. " " .. exe .. " run " .. q(dir .. "/check.lua") .. " "
      .. q(dir .. "/root") .. " 2>&1"))
    local out = p:read("a")
    p:close()
    assert.equal("openat2 walk inside\nEACCES\n", out)
    assert.equal("SECRET\n", slurp(dir .. "/out/secret.txt"))
  end)
end)

describe("local_backend allowed directories", function()
  local dir, remove, b
  before_each(function()
    dir, remove = tmp.make()
    b = assert(moonbox.local_backend{ root = dir .. "/root", allowed = { dir .. "/shared" } })
  end)
  after_each(function()
    b:close()
    remove()
  end)

  it("reads and writes an allowed directory by its host path; results carry host paths", function()
    local shared = dir .. "/shared"
    assert.same({ path = shared .. "/notes.md" }, b:write(shared .. "/notes.md", "note\n"))
    assert.equal("note\n", slurp(shared .. "/notes.md"))
    assert.equal("     1\tnote", b:read(shared .. "/notes.md"))
    assert.same({ shared .. "/notes.md" }, paths(b:ls(shared)))
    assert.same({ shared .. "/notes.md" }, paths(b:glob("*.md", shared)))
    assert.same({ shared .. "/notes.md" }, paths(b:grep("note", { path = shared })))
    -- the root's own listing and searches stay virtual and do not include the allowed dir
    assert.same({}, b:ls("/"))
    assert.same({}, b:grep("note"))
  end)

  it("confines an allowed directory like the root", function()
    local shared = dir .. "/shared"
    fails("EACCES", b:read(shared .. "/../root/x"))
    sh("ln -s .. " .. q(shared .. "/up"))
    fails("EACCES", b:read(shared .. "/up/root/x"))
    fails("EACCES", b:write(shared .. "/up/escape.txt", "x"))
  end)
end)

describe("local_backend writes", function()
  local root, remove, b
  before_each(function()
    root, remove = tmp.make()
    b = assert(moonbox.local_backend{ root = root })
  end)
  after_each(function()
    b:close()
    remove()
  end)

  it("stores bytes exactly and leaves no temp files", function()
    local cases = { "a\r\nb\r\n", "nul\0byte", "no final newline", "", "\xff\xfe\x00\x01" }
    for i, s in ipairs(cases) do
      local p = "/f" .. i
      assert(b:write(p, s))
      assert.equal(s, slurp(root .. p))
      assert.equal(s, b:read_bytes(p))
      assert(b:write(p, s .. "!"))
      assert.equal(s .. "!", slurp(root .. p))
    end
    -- the spare inode of the burst never shows in the backend's own listing, which removes it
    assert.same({ "/f1", "/f2", "/f3", "/f4", "/f5" }, paths(b:ls("/")))
    assert.equal("f1\nf2\nf3\nf4\nf5\n", listing(root))
  end)

  describe("edit bursts", function()
    local function ino(path) return stat_of("%i", path) end
    local function spare_name(dir)
      return listing(dir):match("(%.mb%-%x+%.tmp)\n")
    end

    it("reuse the inode replaced one write earlier, and leave whole files only", function()
      assert(b:write("/big.txt", "v1\n"))
      local first = ino(root .. "/big.txt")
      assert(b:write("/big.txt", string.rep("v2\n", 5000)))
      local t = moonbox.now()
      assert(b:write("/big.txt", "v3\n")) -- shorter than what the reused inode held
      local quick = moonbox.now() - t < 0.04
      assert.equal("v3\n", slurp(root .. "/big.txt"))
      assert.equal("v3\n", b:read_bytes("/big.txt"))
      if quick then -- within the burst window the spare (version 1's inode) took version 3
        assert.equal(first, ino(root .. "/big.txt"))
      end
      -- until the burst is over the spare is a hidden file holding the version replaced last
      local spare = assert(spare_name(root))
      assert.equal(string.rep("v2\n", 5000), slurp(root .. "/" .. spare))
      b:flush()
      assert.equal("big.txt\n", listing(root))
      assert(b:edit("/big.txt", "v3", "v4"))
      assert.equal("v4\n", slurp(root .. "/big.txt"))
    end)

    it("shrink and grow files exactly when edits reuse a bigger or smaller spare", function()
      local body = "head\n" .. string.rep("x\n", 3000) .. "tail\n"
      assert(b:write("/e.txt", body))
      assert(b:write("/e.txt", body))
      assert.same({ path = "/e.txt", occurrences = 1 }, b:edit("/e.txt", string.rep("x\n", 3000), ""))
      assert.equal("head\ntail\n", slurp(root .. "/e.txt"))
      assert(b:edit("/e.txt", "head", string.rep("h", 10000)))
      assert.equal(string.rep("h", 10000) .. "\ntail\n", slurp(root .. "/e.txt"))
      assert(b:edit("/e.txt", "\ntail\n", ""))
      assert.equal(string.rep("h", 10000), slurp(root .. "/e.txt"))
      assert(b:edit("/e.txt", "hh", "H", true))
      assert.equal(string.rep("H", 5000), slurp(root .. "/e.txt"))
      b:flush()
      assert.equal("e.txt\n", listing(root))
    end)

    it("end by themselves when the writes stop", function()
      assert(b:write("/a.txt", "1"))
      assert(b:write("/a.txt", "2"))
      moonbox.sleep(0.2)
      assert.equal("a.txt\n", listing(root))
      local first = ino(root .. "/a.txt")
      assert(b:write("/a.txt", "3")) -- a new burst: a fresh inode, not the old spare
      assert.are_not.equal(first, ino(root .. "/a.txt"))
      assert.equal("3", slurp(root .. "/a.txt"))
    end)

    it("never write into a spare someone linked", function()
      assert(b:write("/f.txt", "v1\n"))
      assert(b:write("/f.txt", "v2\n"))
      local spare = assert(spare_name(root))
      sh("ln " .. q(root .. "/" .. spare) .. " " .. q(root .. "/linked.txt"))
      assert(b:write("/f.txt", "v3\n"))
      assert.equal("v1\n", slurp(root .. "/linked.txt"))
      assert.equal("v3\n", slurp(root .. "/f.txt"))
      b:flush()
      assert.equal("f.txt\nlinked.txt\n", listing(root))
    end)

    it("never write through a symlink swapped in for the spare", function()
      local outside, remove_outside = tmp.make()
      spit(outside .. "/victim", "victim\n")
      assert(b:write("/f.txt", "v1\n"))
      assert(b:write("/f.txt", "v2\n"))
      local spare = assert(spare_name(root))
      sh("rm " .. q(root .. "/" .. spare) .. " && ln -s " .. q(outside .. "/victim") .. " "
        .. q(root .. "/" .. spare))
      assert(b:write("/f.txt", "v3\n"))
      assert.equal("victim\n", slurp(outside .. "/victim"))
      assert.equal("v3\n", slurp(root .. "/f.txt"))
      b:flush()
      -- a name that no longer holds our file is not ours to remove
      assert.equal(spare .. "\nf.txt\n", listing(root))
      remove_outside()
    end)

    it("give each write the target's current mode", function()
      assert(b:write("/m.sh", "1"))
      assert(b:write("/m.sh", "2"))
      sh("chmod 700 " .. q(root .. "/m.sh"))
      assert(b:write("/m.sh", "3"))
      assert.equal("700", mode_of(root .. "/m.sh"))
      sh("chmod 640 " .. q(root .. "/m.sh"))
      assert(b:edit("/m.sh", "3", "4"))
      assert.equal("640", mode_of(root .. "/m.sh"))
      assert.equal("4", slurp(root .. "/m.sh"))
    end)

    it("across directories keep every file whole and leave nothing behind", function()
      for i = 1, 4 do
        assert(b:write("/a/x.txt", "a" .. i))
        assert(b:write("/b/y.txt", "b" .. i))
        assert(b:write("/a/x.txt", "A" .. i))
      end
      assert.equal("A4", slurp(root .. "/a/x.txt"))
      assert.equal("b4", slurp(root .. "/b/y.txt"))
      assert.same({ "/a/x.txt", "/b/y.txt" }, paths(b:glob("**/*.txt")))
      assert.equal("x.txt\n", listing(root .. "/a"))
      assert.equal("y.txt\n", listing(root .. "/b"))
    end)

    it("leave nothing behind when the process exits without closing the state", function()
      local script = os.tmpname()
      spit(script, [[
        local b = assert(require("moonbox").local_backend{ root = ... })
        for i = 1, 3 do assert(b:write("/x.txt", ("x"):rep(i))) end
        os.exit(0)
      ]])
      sh(exe .. " run " .. q(script) .. " " .. q(root))
      os.remove(script)
      assert.equal("x.txt\n", listing(root))
      assert.equal("xxx", slurp(root .. "/x.txt"))
    end)
  end)

  it("edits byte-exactly and keeps CRLF, a late NUL and a missing final newline", function()
    local pad = string.rep("p", 9000) -- a NUL past the first 8 KiB does not make a file binary
    assert(b:write("/w.txt", "one\r\ntwo\r\n" .. pad .. "\0three"))
    assert.same({ path = "/w.txt", occurrences = 1 }, b:edit("/w.txt", "two", "2"))
    assert.equal("one\r\n2\r\n" .. pad .. "\0three", slurp(root .. "/w.txt"))
    assert(b:write("/bin", "\0two"))
    fails("BINARY", b:edit("/bin", "two", "2"))
    assert.equal("\0two", slurp(root .. "/bin"))
  end)

  it("gives new files the umask's mode and keeps an existing file's mode", function()
    assert(b:write("/new.txt", "x"))
    local p = assert(io.popen("umask"))
    local umask = tonumber(p:read("l"), 8)
    p:close()
    assert.equal(string.format("%o", 438 & ~umask), mode_of(root .. "/new.txt"))
    sh("chmod 600 " .. q(root .. "/new.txt"))
    assert(b:write("/new.txt", "y"))
    assert.equal("600", mode_of(root .. "/new.txt"))
    sh("chmod 4755 " .. q(root .. "/new.txt"))
    assert(b:edit("/new.txt", "y", "z"))
    assert.equal("4755", mode_of(root .. "/new.txt"))
  end)

  local id = assert(io.popen("id -u"))
  local as_root = id:read("l") == "0"
  id:close()
  ;(as_root and it or pending)("keeps an existing file's owner (as root)", function()
    assert(b:write("/owned.txt", "a"))
    sh("chown 65534:65534 " .. q(root .. "/owned.txt"))
    assert(b:edit("/owned.txt", "a", "b"))
    local p = assert(io.popen("stat -c %u:%g " .. q(root .. "/owned.txt")))
    assert.equal("65534:65534", p:read("l"))
    p:close()
  end)

  it("writes durably when asked", function()
    local d = assert(moonbox.local_backend{ root = root, durable = true })
    assert(d:write("/dur/a.txt", "1"))
    assert(d:write("/dur/a.txt", "2"))
    assert.equal("2", slurp(root .. "/dur/a.txt"))
    assert.equal("a.txt\n", listing(root .. "/dur"))
    d:close()
  end)

  it("refuses to write over a directory, under a file, or the root", function()
    assert(b:write("/d/x", "x"))
    assert(b:write("/file", "f"))
    fails("EISDIR", b:write("/d", "x"))
    fails("ENOTDIR", b:write("/file/x", "x"))
    fails("EISDIR", b:write("/", "x"))
    assert.equal("x", slurp(root .. "/d/x"))
    assert.equal("d\nfile\n", listing(root))
  end)

  it("leaves the old content and no temp file when a write fails midway", function()
    assert(b:write("/keep.txt", "old content\n"))
    local script = os.tmpname()
    spit(script, [[
      local b = assert(require("moonbox").local_backend{ root = ...})
      local r, msg, code = b:write("/keep.txt", string.rep("x", 1024 * 1024))
      io.write(tostring(r), " ", tostring(code), "\n")
    ]])
    -- A 64 KiB file-size limit makes write(2) fail with EFBIG after the temp file is made.
    local p = assert(io.popen("sh -c " .. q("trap '' XFSZ; ulimit -f 128; exec " .. exe .. " run "
      .. q(script) .. " " .. q(root)) .. " 2>&1"))
    local out = p:read("a")
    p:close()
    os.remove(script)
    assert.equal("nil EIO\n", out)
    assert.equal("old content\n", slurp(root .. "/keep.txt"))
    assert.equal("keep.txt\n", listing(root))
  end)
end)

describe("local_backend searches on the worker pool", function()
  local root, remove, b
  local FILES, LINES = 24, 20000
  setup(function()
    root, remove = tmp.make()
    local line = "some ordinary text of a line, with a few words to search through\n"
    local body = string.rep(line, LINES - 1) .. "needle at the end\n"
    for i = 1, FILES do spit(string.format("%s/f%02d.txt", root, i), body) end
  end)
  teardown(function() remove() end)
  before_each(function() b = assert(moonbox.local_backend{ root = root }) end)
  after_each(function() b:close() end)

  it("let other tasks run while grep and glob walk a big tree", function()
    local ticks = 0
    local ticker = moonbox.spawn(function()
      while true do
        moonbox.sleep(0.001)
        ticks = ticks + 1
      end
    end)
    local grep = moonbox.spawn(function() return b:grep("n[e]+dle at", { ignore_case = true }) end)
    local hits = grep:join()
    local during = ticks
    local files = moonbox.spawn(function() return b:glob("**/*.txt") end):join()
    ticker:cancel()
    assert.equal(FILES, #hits)
    assert.same({ path = "/f01.txt", line_number = LINES, line = "needle at the end" }, hits[1])
    assert.equal(FILES, #files)
    assert.is_true(during >= 2, "the ticker ran " .. during .. " times during the grep")
  end)

  it("survive a cancelled search and a backend closed while a worker reads it", function()
    local tasks = {}
    for i = 1, 3 do tasks[i] = moonbox.spawn(function() return b:grep("needle") end) end
    moonbox.sleep(0)
    assert.is_true(tasks[1]:cancel())
    local late = moonbox.spawn(function() return b:glob("*.txt") end)
    moonbox.sleep(0)
    b:close() -- the searches under way keep their own handle on the directory
    assert.equal(FILES, #tasks[2]:join())
    assert.equal(FILES, #tasks[3]:join())
    local ok, files = pcall(late.join, late)
    if ok then assert.equal(FILES, #files) end -- it may also have started after the close
    b = assert(moonbox.local_backend{ root = root })
    assert.equal(FILES, #b:grep("needle", { fixed = true }))
  end)
end)

describe("local_backend methods", function()
  local root, remove, b
  before_each(function()
    root, remove = tmp.make()
    b = assert(moonbox.local_backend{ root = root })
  end)
  after_each(function()
    b:close()
    remove()
  end)

  it("ls: directories first, then names; sizes and ISO times; a file lists itself", function()
    assert(b:write("/b.txt", "bb"))
    assert(b:write("/a.txt", "a"))
    assert(b:write("/z/x", ""))
    local ls = b:ls()
    assert.same({ "/z", "/a.txt", "/b.txt" }, paths(ls))
    assert.is_nil(ls[1].size)
    assert.equal(1, ls[2].size)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT[%d:.]+Z$", ls[2].modified_at)
    assert.same({ "/b.txt" }, paths(b:ls("b.txt")))
    fails("ENOENT", b:ls("/missing"))
    assert.has_error(function() b:ls({}) end)
  end)

  it("read: directories, missing files and bad offsets fail with codes", function()
    assert(b:write("/t.txt", "a\nb\n"))
    fails("EISDIR", b:read("/"))
    fails("ENOENT", b:read("/nope"))
    fails("INVALID", b:read("/t.txt", -1))
    fails("INVALID", b:read("/t.txt", 0, 0))
    fails("INVALID", b:read("/t.txt", 5))
    assert.equal("     2\tb", b:read("/t.txt", 1, 1))
    assert.has_error(function() b:read("/t.txt", "x") end)
  end)

  it("refuses to load a file over 256 MiB, and grep skips it", function()
    sh("truncate -s 300M " .. q(root .. "/huge.bin"))
    assert(b:write("/small.txt", "needle\n"))
    local msg = fails("INVALID", b:read("/huge.bin"))
    assert.matches("too large", msg, 1, true)
    fails("INVALID", b:read_bytes("/huge.bin"))
    fails("INVALID", b:edit("/huge.bin", "a", "b"))
    assert.same({ "/small.txt" }, paths(b:grep("needle|\\x00")))
    assert.same({}, b:grep("x", { path = "/huge.bin" }))
    assert.equal(300 * 1024 * 1024, b:ls("/huge.bin")[1].size)
  end)

  it("edit: argument checks and failure codes", function()
    assert(b:write("/e.txt", "x x\n"))
    fails("NOT_UNIQUE", b:edit("/e.txt", "x", "y"))
    fails("NOT_FOUND", b:edit("/e.txt", "q", "y"))
    fails("ENOENT", b:edit("/none.txt", "q", "y"))
    fails("EISDIR", b:edit("/", "q", "y"))
    assert.same({ path = "/e.txt", occurrences = 2 }, b:edit("/e.txt", "x", "y", true))
    assert.has_error(function() b:edit("/e.txt", "x") end)
    assert.has_error(function() b:edit("/e.txt", "x", "y", "yes") end)
  end)

  it("glob: missing or file bases give {}, a bad pattern fails", function()
    assert(b:write("/f.txt", "x"))
    assert.same({}, b:glob("*", "/missing"))
    assert.same({}, b:glob("*", "/f.txt"))
    fails("INVALID", b:glob("a\0b"))
    assert.has_error(function() b:glob(nil) end)
  end)

  it("grep: a missing path is ENOENT, max stops early in path order, skip dirs are skipped", function()
    for i = 1, 5 do assert(b:write(string.format("/d%d/f.txt", i), "hit\nhit\n")) end
    assert(b:write("/node_modules/m.js", "hit\n"))
    assert(b:write("/.hidden/h.txt", "hit\n"))
    fails("ENOENT", b:grep("hit", { path = "/missing" }))
    local r = b:grep("hit", { max = 3 })
    assert.same({ "/d1/f.txt", "/d1/f.txt", "/d2/f.txt" }, paths(r))
    assert.equal(10, #b:grep("hit"))
    assert.equal(11, #b:grep("hit", { ignore_hidden = false }))
    assert.same({ "/.hidden/h.txt" }, paths(b:grep("hit", { path = "/.hidden/h.txt" })))
    fails("INVALID", b:grep("hit", { max = 0 }))
    fails("INVALID", b:grep("(", {}))
  end)
end)

describe("local_backend resolvers agree", function()
  -- openat2 and the walk must give the same answer for every path over a tree full of links:
  -- relative, absolute, into and out of the root, dangling, looping, through "..".
  local dir, remove
  before_each(function() dir, remove = tmp.make() end)
  after_each(function() remove() end)

  local function make_tree(root)
    sh("mkdir -p " .. q(root .. "/a/b") .. " " .. q(root .. "/c"))
    spit(root .. "/a/b/f.txt", "ab-f\n")
    spit(root .. "/c/f.txt", "c-f\n")
    spit(root .. "/g.txt", "g\n")
    local links = {
      { "s1", "a" }, { "s2", "../outside" }, { "s3", root .. "/c" }, { "s4", "/etc" },
      { "s5", "nonexistent" }, { "s6", "a/b/../../c" }, { "s7", "s8" }, { "s8", "s7" },
      { "a/b/s9", "../../c/f.txt" }, { "a/s10", "../.." }, { "s11", root .. "/a/b/f.txt" },
      { "c/s12", "../s1/b" },
    }
    for _, l in ipairs(links) do sh("ln -s " .. q(l[2]) .. " " .. q(root .. "/" .. l[1])) end
  end

  local function outcome(...)
    local r, _, code = ...
    if r == nil then return "fail:" .. tostring(code) end
    if type(r) == "table" then
      local t = {}
      for i, e in ipairs(r) do t[i] = e.path or e.name end
      return "list:" .. table.concat(t, ",")
    end
    return "ok:" .. tostring(r)
  end

  it("on reads, listings and writes over random paths", function()
    local roots = { dir .. "/one", dir .. "/two" }
    sh("mkdir -p " .. q(dir .. "/outside"))
    spit(dir .. "/outside/secret.txt", "SECRET\n")
    for _, r in ipairs(roots) do make_tree(r) end
    local auto = assert(moonbox.local_backend{ root = roots[1] })
    local walk = assert(moonbox.local_backend{ root = roots[2], resolver = "walk" })
    local parts = { "a", "b", "c", "f.txt", "g.txt", "x", "s1", "s2", "s3", "s4", "s5", "s6", "s7",
      "s9", "s10", "s11", "s12", "secret.txt", "passwd" }
    local seed = 7
    local function rnd(n)
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n + 1
    end
    for _ = 1, 400 do
      local segs = {}
      for i = 1, rnd(4) do segs[i] = parts[rnd(#parts)] end
      local p = "/" .. table.concat(segs, "/")
      assert.equal(outcome(auto:read_bytes(p)), outcome(walk:read_bytes(p)), "read_bytes " .. p)
      assert.equal(outcome(auto:exists(p)), outcome(walk:exists(p)), "exists " .. p)
      local la, lw = outcome(auto:ls(p)), outcome(walk:ls(p))
      assert.equal(la:gsub("%d%d%d%d%-[%d%-T:.]+Z", ""), lw:gsub("%d%d%d%d%-[%d%-T:.]+Z", ""), "ls " .. p)
      assert.equal(outcome(auto:write(p, p)), outcome(walk:write(p, p)), "write " .. p)
    end
    auto:close()
    walk:close()
    local function tree(root)
      local f = assert(io.popen("cd " .. q(root) .. " && find . -printf '%p %y %l\\n' | sort"))
      local s = f:read("a"):gsub(root:gsub("%p", "%%%0"), "ROOT")
      f:close()
      return s
    end
    assert.equal(tree(roots[1]), tree(roots[2]))
    assert.equal("SECRET\n", slurp(dir .. "/outside/secret.txt"))
    assert.equal("secret.txt\n", listing(dir .. "/outside"))
  end)
end)
