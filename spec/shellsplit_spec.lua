-- moonbox.shellsplit: the simple commands of a shell line, for execute rules.
local split = require "moonbox.shellsplit"

-- The last (most stripped) candidate of each simple command.
local function cmds(line)
  return (split.split(line))
end

local function candidates(line)
  local r = split.analyze(line)
  local all = {}
  for _, c in ipairs(r.commands) do all[#all + 1] = c.candidates end
  return all, r
end

describe("shellsplit", function()
  it("splits on every list and pipeline operator and on newlines", function()
    assert.same({ "a", "b", "c", "d", "e", "f", "g" }, cmds("a; b && c || d | e |& f & g"))
    assert.same({ "a", "b" }, cmds("a\nb"))
    assert.same({ "a\r", "b" }, cmds("a\r\nb")) -- \r stays part of the word, as in sh
    assert.same({ "echo x", "rm -rf /" }, cmds("echo x;rm -rf /"))
    assert.same({ "cd /tmp", "rm -rf /" }, cmds("(cd /tmp && rm -rf /)"))
    assert.same({}, cmds(""))
    assert.same({}, cmds("   ;; ; \n"))
  end)

  it("respects single quotes, double quotes and backslashes", function()
    assert.same({ "echo a; rm -rf /" }, cmds("echo 'a; rm -rf /'"))
    assert.same({ "echo a && b" }, cmds('echo "a && b"'))
    assert.same({ "echo a; b" }, cmds("echo a\\; b"))
    assert.same({ "echo it's" }, cmds([[echo "it's"]]))
    assert.same({ "rm -rf /" }, cmds("r''m -rf \"/\""))
    assert.same({ "rm -rf /" }, cmds("\\rm -rf /"))
    assert.same({ "rm -rf /" }, cmds("rm\\\n -rf /")) -- line continuation
    assert.same({ 'echo a"b' }, cmds([[echo 'a"b']]))
    assert.same({ "echo \\x" }, cmds([[echo "\x"]])) -- a backslash in "..." before x stays
    assert.same({ "echo $" }, cmds([[echo "\$"]]))
  end)

  it("descends into $(...), backticks and process substitution, nested", function()
    assert.same({ "rm -rf /", "echo $(rm -rf /)" }, cmds("echo $(rm -rf /)"))
    assert.same({ "rm -rf /", "echo `rm -rf /`" }, cmds("echo `rm -rf /`"))
    assert.same({ "rm -rf /", "echo $(rm -rf /)" }, cmds('echo "$(rm -rf /)"'))
    assert.same({ "c", "b $(c)", "a $(b $(c))" }, cmds("a $(b $(c))"))
    assert.same({ "ls /", "cat", "diff <(ls /) >(cat)" }, cmds("diff <(ls /) >(cat)"))
    assert.same({ "b", "echo x$(b)y" }, cmds("echo x$(b)y")) -- one word around the substitution
    assert.same({ "c", "d", "a $(c; d)" }, cmds("a $(c; d)"))
    assert.same({ "rm -rf /", "echo \\`rm -rf /\\`", "echo `echo \\`rm -rf /\\``" },
      cmds("echo `echo \\`rm -rf /\\``"))
    assert.same({ "echo `x`" }, cmds("echo \\`x\\`")) -- escaped backticks are plain text
    assert.same({ "echo $(x)" }, cmds("echo '$(x)'"))
  end)

  it("keeps arithmetic out but still sees substitutions inside it", function()
    assert.same({ "echo $((1 + (2 * 3)))" }, cmds("echo $((1 + (2 * 3)))"))
    assert.same({ "rm -rf /", "echo $(( $(rm -rf /) + 1 ))" }, cmds("echo $(( $(rm -rf /) + 1 ))"))
    -- `$((` not closed by `))` is a command substitution holding a subshell, as bash reads it
    assert.same({ "echo hi", "echo $((echo hi) )" }, cmds("echo $((echo hi) )"))
  end)

  it("sees substitutions in ${...} and assignments", function()
    assert.same({ "rm -rf /", "echo ${x:-$(rm -rf /)}" }, cmds("echo ${x:-$(rm -rf /)}"))
    assert.same({ "rm -rf /" }, cmds("x=$(rm -rf /)")) -- the assignment itself runs nothing
    assert.same({ "id", "make" }, cmds("A=$(id) B=2 make"))
  end)

  it("decodes $'...' and $\"...\", splits on unquoted $IFS and expands {a,b} words", function()
    assert.same({ "rm -rf /" }, cmds("$'\\x72m' -rf $'\\57'"))
    assert.same({ "rm -rf /" }, cmds("$'\\u0072\\155' -rf /"))
    assert.same({ "echo a\tb'c" }, cmds("echo $'a\\tb\\'c'"))
    assert.same({ "echo a b" }, cmds("echo $\"a b\""))
    assert.same({ "rm -rf /" }, cmds("rm${IFS}-rf$IFS/"))
    assert.same({ "echo $IFSX" }, cmds("echo $IFSX"))
    assert.same({ "echo $IFS" }, cmds("echo \"$IFS\""))
    assert.same({ "rm -rf /" }, cmds("{rm,-rf,/}"))
    assert.same({ "echo {a,b}" }, cmds("echo '{a,b}'"))
    assert.is_true(select(2, split.split("echo $'open")).incomplete)
  end)

  it("substitutes variables assigned earlier in the line", function()
    assert.same({ "$a -rf /", "rm -rf /" }, cmds("a=rm; $a -rf /"))
    assert.same({ "$c", "rm -rf /" }, cmds("c='rm -rf /'; $c"))
    assert.same({ "export X=rm", "${X} -rf /", "rm -rf /" }, cmds("export X=rm && ${X} -rf /"))
    assert.same({ "x", "$a" }, cmds("a=$(x); $a")) -- not a literal: not substituted
    assert.same({ "b", "$a" }, cmds("a=1 b; $a")) -- a prefix assignment does not persist
    local t0 = os.clock()
    local _, r = split.split("a=" .. ("x"):rep(20000) .. "; " .. ("$a "):rep(5000))
    assert.is_true(r.too_complex)
    _, r = split.split("a='$a $a $a $a'; $a $a $a $a")
    assert.is_true(r.too_complex)
    assert.is_true(os.clock() - t0 < 1)
  end)

  it("strips leading wrappers, one layer at a time", function()
    assert.same({ { "sudo rm -rf /", "rm -rf /" } }, candidates("sudo rm -rf /"))
    assert.same({ { "sudo -u root -- rm x", "rm x" } }, candidates("sudo -u root -- rm x"))
    assert.same({ { "env -i A=1 B=2 nice -n 5 timeout -s KILL 10 rm x",
      "nice -n 5 timeout -s KILL 10 rm x", "timeout -s KILL 10 rm x", "rm x" } },
      candidates("env -i A=1 B=2 nice -n 5 timeout -s KILL 10 rm x"))
    for _, line in ipairs { "nohup rm x", "time -p rm x", "xargs -0 -n 1 rm x", "command rm x",
      "exec -a name rm x", "doas -u root rm x", "setsid rm x", "stdbuf -oL rm x", "ionice -c 3 rm x",
      "nice -10 rm x", "timeout --signal=KILL 5s rm x", "builtin rm x", "busybox rm x",
      "! rm x", "A=1 rm x", "if rm x", "while rm x", "then rm x" } do
      assert.same({ "rm x" }, cmds(line), line)
    end
    assert.same({ "rm x" }, cmds("sudo env nohup nice rm x"))
    assert.same({ "sudo" }, cmds("sudo")) -- a wrapper alone is itself
    assert.same({ "timeout 5" }, cmds("timeout 5"))
  end)

  it("reduces a path-named command to its name as a further candidate", function()
    assert.same({ { "/bin/rm -rf /", "rm -rf /" } }, candidates("/bin/rm -rf /"))
    assert.same({ { "/usr/bin/sudo /bin/rm x", "/bin/rm x", "rm x" } }, candidates("/usr/bin/sudo /bin/rm x"))
  end)

  it("follows sh -c, eval, env -S and find -exec", function()
    assert.same({ "bash -c rm -rf /", "rm -rf /" }, cmds("bash -c 'rm -rf /'"))
    assert.same({ "sh -lc echo hi; rm x", "echo hi", "rm x" }, cmds("sh -lc 'echo hi; rm x'"))
    assert.same({ "bash -o pipefail -e -c rm x", "rm x" }, cmds("bash -o pipefail -e -c 'rm x'"))
    assert.same({ "bash script.sh" }, cmds("bash script.sh"))
    assert.same({ "eval rm -rf /", "rm -rf /" }, cmds("eval 'rm -rf /'"))
    assert.same({ "env -S rm -rf /", "rm -rf /" }, cmds("env -S 'rm -rf /'"))
    assert.same({ "find . -exec rm {} ;", "rm {}" }, cmds("find . -exec rm {} \\;"))
    assert.same({ "find . -execdir sh -c x {} +", "sh -c x {}", "x" }, cmds("find . -execdir sh -c x {} +"))
    assert.same({ "sh -c rm x", "rm x" }, cmds("xargs sh -c 'rm x'"))
  end)

  it("treats redirections apart, and output targets as '> TARGET'", function()
    local all = candidates("echo hi > /dev/sda")
    assert.same({ { "echo hi", "> /dev/sda" } }, all)
    assert.same({ { "ls", "> /dev/null" } }, candidates("ls 2>&1 >/dev/null"))
    assert.same({ { "cat", "> out" } }, candidates("cat < in >> out"))
    assert.same({ { "x", "> f" } }, candidates("x &> f"))
    assert.same({ { "x" } }, candidates("x 2>&- <&3"))
    local _, r = candidates("echo>x")
    assert.same({ "echo" }, r.commands[1].words)
    assert.same({ { op = ">", target = "x" } }, r.commands[1].redirects)
    _, r = candidates("cmd 2>err.log")
    assert.same({ { op = "2>", target = "err.log" } }, r.commands[1].redirects)
    _, r = candidates("echo a2>x")
    assert.same({ "echo", "a2" }, r.commands[1].words)
  end)

  it("skips here-document bodies but looks into unquoted ones' substitutions", function()
    assert.same({ "cat", "echo done" }, cmds("cat <<EOF\nrm -rf /\nEOF\necho done"))
    assert.same({ "cat", "rm x", "echo done" }, cmds("cat <<EOF\nrm -rf /\n$(rm x)\nEOF\necho done"))
    assert.same({ "cat" }, cmds("cat <<'EOF'\n$(rm x)\nEOF"))
    assert.same({ "cat", "next" }, cmds("cat <<-EOF\n\trm x\n\tEOF\nnext"))
    assert.same({ "cat", "x" }, cmds("cat <<A <<B\n1\nA\n2\nB\nx"))
    assert.same({ "cat", "> f.py" }, candidates("cat > f.py <<'EOF'\nimport os; os.system('x')\nEOF")[1])
  end)

  it("ignores comments but not a # inside a word", function()
    assert.same({ "echo a" }, cmds("echo a # ; rm -rf /"))
    assert.same({ "echo a", "b" }, cmds("echo a # c\nb"))
    assert.same({ "echo a#b" }, cmds("echo a#b"))
    assert.same({ "echo #" }, cmds("echo '#'"))
  end)

  it("drops commands made of reserved words and assignments only", function()
    assert.same({ "rm -rf /" }, cmds("{ rm -rf /; }"))
    assert.same({ "true", "rm x" }, cmds("if true; then rm x; fi"))
    assert.same({ "true", "x" }, cmds("while true; do x; done"))
    assert.same({}, cmds("A=1 B=2"))
  end)

  it("marks unterminated quotes and substitutions but still reports what it saw", function()
    local list, r = split.split("echo ok; echo 'unterminated; rm -rf /")
    assert.same({ "echo ok", "echo unterminated; rm -rf /" }, list)
    assert.is_true(r.incomplete)
    list, r = split.split("echo $(rm -rf /")
    assert.same({ "rm -rf /", "echo $(rm -rf /" }, list)
    assert.is_true(r.incomplete)
    assert.is_true(select(2, split.split('echo "x')).incomplete)
    assert.is_false(select(2, split.split("echo x")).incomplete)
  end)

  it("collects every word for the path guard", function()
    local r = split.analyze("cat a b > c; grep --file=d e $(cat f)")
    local set = {}
    for _, w in ipairs(r.words) do set[w] = true end
    for _, w in ipairs { "cat", "a", "b", "c", "grep", "--file=d", "e", "f", "$(cat f)" } do
      assert.is_true(set[w], w)
    end
  end)

  it("caps nesting and flags it", function()
    local deep = "ls"
    for _ = 1, split.MAX_DEPTH + 1 do deep = "sh -c " .. string.format("%q", deep) end
    local _, r = split.split(deep)
    assert.is_true(r.too_complex)
    local _, ok = split.split("sh -c 'sh -c ls'")
    assert.is_false(ok.too_complex)
  end)

  it("stays linear on hostile input", function()
    -- each input at n and 8n: a linear splitter takes about 8x as long, a quadratic one 64x
    -- (a ratio, so line hooks such as luacov's or a busy machine do not fail it)
    local inputs = {
      function(n) return ("$("):rep(n) end,
      function(n) return ("`"):rep(n + 1) end,
      function(n) return ("'a' \"b\" "):rep(n) end,
      function(n) return ("a;"):rep(n) end,
      function(n) return ("\\"):rep(2 * n + 1) end,
      function(n) return ("${"):rep(n) end,
      function(n) return ("$(("):rep(n) end,
      function(n) return ("cat <<E\n"):rep(n) end,
      function(n) return ("sh -c "):rep(n) .. "x" end,
      function(n) return "a=" .. ("x"):rep(n) .. "; " .. ("$a "):rep(n) end,
    }
    local function cost(make, n)
      local text = make(n)
      local t0 = os.clock()
      split.analyze(text)
      return os.clock() - t0
    end
    local factor = require("spec.support.luacov").time_factor() -- line hooks slow Lua down
    for k, make in ipairs(inputs) do
      local small = cost(make, 250) + cost(make, 250)
      local big = cost(make, 2000) + cost(make, 2000)
      assert.is_true(big < 0.05 * factor or big / math.max(small, 1e-4) < 24,
        string.format("input %d: %.4fs at 250, %.4fs at 2000", k, small / 2, big / 2))
    end
  end)

  it("raises on a non-string", function()
    assert.has_error(function() split.analyze(nil) end, "shellsplit.analyze: command must be a string, got nil")
  end)
end)
