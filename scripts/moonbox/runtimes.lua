-- moonbox.runtimes: what a container sandbox holds, as Lua data (presets/runtimes.lua).
--
--   runtimes.get(name)            --> runtime | raises "Unknown runtime '<name>'. Available: ..."
--   runtimes.names()              --> sorted names
--   runtimes.validate(rt)         --> rt (normalised copy) | nil, msg, "INVALID"
--   runtimes.register(rt)         --> rt (validated; replaces a runtime of the same name)
--   runtimes.load(path)           --> number of runtimes registered from a file returning a list
--   runtimes.dockerfile(rt [, { cache_mounts = bool }]) --> text | nil, msg, "INVALID"
--   runtimes.image_tag(rt)        --> "moonbox-runtime:<name>-<12 hex of sha256(config)>"
--   runtimes.build_context(rt)    --> a tar archive holding only the Dockerfile (POST /build)
--
-- Files named in MOONBOX_RUNTIMES (colon-separated) are loaded after the built-in catalogue.
-- Validation follows the reference: package names, env names and values, setup commands without
-- newlines, no shell metacharacters in work_dir; every hostile value is refused, never escaped.
local M = {}

local MANAGERS = { pip = true, npm = true, apt = true, cargo = true }
local FIELDS = { name = "string", description = "string", image = "string", base_image = "string",
  packages = "table", package_manager = "string", setup_commands = "table", env_vars = "table",
  work_dir = "string", cache_image = "boolean", run_as_uid = "number" }
local PACKAGE_CACHES = { pip = { "/root/.cache/pip" }, npm = { "/root/.npm" },
  apt = { "/var/cache/apt", "/var/lib/apt/lists" }, cargo = { "/usr/local/cargo/registry" } }
local METACHARS = { ";", "&", "|", "`", "$", "(", ")", "<", ">", "\n", "\r" }

local catalogue, order = {}, {}

local function invalid(msg) return nil, msg, "INVALID" end

-- A package name: letters/digits/@ first, then the characters pip extras and specifiers and npm
-- scopes use ("pkg[extra]>=1", "@scope/name"); nothing a shell would interpret.
local function valid_package(p)
  return type(p) == "string" and p:match("^[A-Za-z0-9@][A-Za-z0-9._@/+=<>~!%[%]%-]*$") ~= nil
end

local function repr(c)
  if c == "\n" then return "'\\n'" elseif c == "\r" then return "'\\r'" end
  return "'" .. c .. "'"
end

function M.validate(rt)
  if type(rt) ~= "table" then return invalid("runtime must be a table") end
  for k, v in pairs(rt) do
    local ty = FIELDS[k]
    if not ty then return invalid("runtime: unknown field '" .. tostring(k) .. "'") end
    if type(v) ~= ty then return invalid(string.format("runtime: %s must be a %s, got %s", k, ty, type(v))) end
  end
  if type(rt.name) ~= "string" or rt.name == "" or not rt.name:match("^[a-z0-9][a-z0-9._%-]*$") then
    return invalid("runtime: name must be lowercase letters, digits, '.', '_' or '-', got '"
      .. tostring(rt.name) .. "'")
  end
  local out = {
    name = rt.name, description = rt.description or "", image = rt.image, base_image = rt.base_image,
    packages = {}, package_manager = rt.package_manager or "pip", setup_commands = {}, env_vars = {},
    work_dir = rt.work_dir or "/workspace", cache_image = rt.cache_image ~= false, run_as_uid = rt.run_as_uid,
  }
  if not MANAGERS[out.package_manager] then
    return invalid("runtime " .. rt.name .. ": package_manager must be pip, npm, apt or cargo, got '"
      .. out.package_manager .. "'")
  end
  for i, p in ipairs(rt.packages or {}) do
    if not valid_package(p) then return invalid("Invalid package name: '" .. tostring(p) .. "'") end
    out.packages[i] = p
  end
  for i, c in ipairs(rt.setup_commands or {}) do
    if type(c) ~= "string" then return invalid("runtime " .. rt.name .. ": setup commands must be strings") end
    if c:find("[\r\n]") then return invalid("setup command contains a newline") end
    out.setup_commands[i] = c
  end
  for k, v in pairs(rt.env_vars or {}) do
    if type(k) ~= "string" or not k:match("^[A-Za-z_][A-Za-z0-9_]*$") then
      return invalid("Invalid environment variable name: '" .. tostring(k) .. "'")
    end
    if type(v) ~= "string" then return invalid("Environment variable '" .. k .. "' value must be a string") end
    if v:find("[\r\n]") then return invalid("Environment variable '" .. k .. "' value contains a newline") end
    out.env_vars[k] = v
  end
  local bad = {}
  for _, c in ipairs(METACHARS) do
    if out.work_dir:find(c, 1, true) then bad[#bad + 1] = repr(c) end
  end
  if #bad > 0 then
    table.sort(bad)
    return invalid("work_dir contains disallowed shell metacharacters: " .. table.concat(bad, ", "))
  end
  if out.work_dir:sub(1, 1) ~= "/" then return invalid("work_dir must be an absolute path") end
  if out.run_as_uid ~= nil and (math.type(out.run_as_uid) ~= "integer" or out.run_as_uid < 1) then
    return invalid("run_as_uid must be an integer >= 1")
  end
  if out.run_as_uid and not out.base_image then return invalid("run_as_uid needs base_image (the image is built)") end
  return out
end

function M.register(rt)
  local v, msg = M.validate(rt)
  if not v then error(msg, 2) end
  if not catalogue[v.name] then order[#order + 1] = v.name end
  catalogue[v.name] = v
  return v
end

function M.load(path)
  local chunk, err = loadfile(path, "t", {})
  if not chunk then error("runtimes: cannot load " .. path .. ": " .. err, 2) end
  local list = chunk()
  if type(list) ~= "table" then error("runtimes: " .. path .. " must return a list of runtimes", 2) end
  for _, rt in ipairs(list) do
    local v, msg = M.validate(rt)
    if not v then error("runtimes: " .. path .. ": " .. msg, 2) end
    if not catalogue[v.name] then order[#order + 1] = v.name end
    catalogue[v.name] = v
  end
  return #list
end

local function load_builtin()
  local paths = package.loaded["moonbox.paths"]
  if not (paths and paths.presets) then error("runtimes: the presets folder is unknown", 0) end
  M.load(paths.presets .. "/runtimes.lua")
  for file in (os.getenv("MOONBOX_RUNTIMES") or ""):gmatch("[^:]+") do M.load(file) end
end

function M.names()
  local names = {}
  for _, n in ipairs(order) do names[#names + 1] = n end
  table.sort(names)
  return names
end

function M.get(name)
  local rt = catalogue[name]
  if rt then return rt end
  error("Unknown runtime '" .. tostring(name) .. "'. Available: " .. table.concat(M.names(), ", "), 2)
end

-- shlex.quote: bare when safe, else single quotes with ' written as '"'"'
local function quote(s)
  if s ~= "" and not s:find("[^%w@%%+=:,./%-_]") then return s end
  return "'" .. s:gsub("'", "'\"'\"'") .. "'"
end
M._quote = quote

function M.dockerfile(rt, opts)
  local v, msg, code = M.validate(rt)
  if not v then return nil, msg, code end
  if not v.base_image then
    return nil, "runtime " .. v.name .. " has no base_image to build on (it uses image " .. tostring(v.image) .. ")",
      "INVALID"
  end
  local cache = opts and opts.cache_mounts
  local lines = {}
  local function add(l) lines[#lines + 1] = l end
  if cache then add("# syntax=docker/dockerfile:1") end
  add("FROM " .. v.base_image)
  if v.run_as_uid then
    add(string.format("RUN useradd --create-home --uid %d moonbox && python3 -m venv /opt/venv "
      .. "&& chown -R %d /opt/venv", v.run_as_uid, v.run_as_uid))
    add("ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH")
  end
  for _, c in ipairs(v.setup_commands) do add("RUN " .. c) end
  if #v.packages > 0 then
    local pkgs = table.concat(v.packages, " ")
    local mounts = ""
    if cache then
      local m = {}
      for _, t in ipairs(PACKAGE_CACHES[v.package_manager]) do
        m[#m + 1] = "--mount=type=cache,target=" .. t .. ",sharing=locked"
      end
      mounts = table.concat(m, " ") .. " "
    end
    if v.package_manager == "pip" then
      add("RUN " .. mounts .. "pip install " .. (cache and "" or "--no-cache-dir ") .. pkgs)
    elseif v.package_manager == "npm" then
      add("WORKDIR " .. quote(v.work_dir))
      add("RUN " .. mounts .. "npm install " .. pkgs)
    elseif v.package_manager == "apt" then
      if cache then add("RUN rm -f /etc/apt/apt.conf.d/docker-clean") end
      add("RUN " .. mounts .. "apt-get update && apt-get install -y " .. (cache and "--no-install-recommends " or "")
        .. pkgs)
    else
      add("RUN " .. mounts .. "cargo install " .. pkgs)
    end
  end
  local keys = {}
  for k in pairs(v.env_vars) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do add("ENV " .. k .. "=" .. quote(v.env_vars[k])) end
  if v.run_as_uid then add("USER " .. v.run_as_uid) end
  add("WORKDIR " .. quote(v.work_dir))
  return table.concat(lines, "\n") .. "\n"
end

-- A canonical text of the config (sorted keys), so equal configs hash equally.
local function canonical(v)
  if type(v) ~= "table" then return string.format("%q", v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = string.format("%q", tostring(k)) .. "=" .. canonical(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

function M.image_tag(rt)
  local v, msg = M.validate(rt)
  if not v then error(msg, 2) end
  local digest = require("moonbox.codec").sha256(canonical(v))
  return "moonbox-runtime:" .. v.name .. "-" .. digest:sub(1, 12)
end

-- ustar: one 512-byte header and the padded content, then two zero blocks.
local function tar_file(name, content, mode)
  local function octal(n, width) return string.format("%0" .. (width - 1) .. "o", n) .. "\0" end
  local header = name .. string.rep("\0", 100 - #name) .. octal(mode or 420, 8) .. octal(0, 8) .. octal(0, 8)
    .. octal(#content, 12) .. octal(os.time(), 12) .. "        " .. "0" .. string.rep("\0", 100)
    .. "ustar\0" .. "00" .. string.rep("\0", 32) .. string.rep("\0", 32) .. octal(0, 8) .. octal(0, 8)
    .. string.rep("\0", 155)
  header = header .. string.rep("\0", 512 - #header)
  local sum = 0
  for i = 1, 512 do sum = sum + header:byte(i) end
  header = header:sub(1, 148) .. string.format("%06o\0 ", sum) .. header:sub(157)
  local pad = (512 - #content % 512) % 512
  return header .. content .. string.rep("\0", pad)
end
M._tar_file = tar_file

function M.build_context(rt)
  local text, msg, code = M.dockerfile(rt)
  if not text then return nil, msg, code end
  return tar_file("Dockerfile", text) .. string.rep("\0", 1024)
end

load_builtin()

return M
