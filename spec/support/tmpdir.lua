-- Temporary directories for specs that need a real file tree: make() returns the directory's
-- absolute path and a function that removes it with everything inside.
local M = {}

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

function M.make()
  local p = assert(io.popen("mktemp -d /tmp/moonbox-spec.XXXXXX"))
  local dir = p:read("l")
  p:close()
  assert(dir and dir:match("^/tmp/moonbox%-spec%."), "mktemp -d failed")
  return dir, function()
    os.execute("chmod -R u+rwx " .. sh_quote(dir) .. " 2>/dev/null; rm -rf " .. sh_quote(dir))
  end
end

M.sh_quote = sh_quote

return M
