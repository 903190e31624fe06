-- moonbox.runtimes: the catalogue, validation and Dockerfile generation (reference §5).
local runtimes = require "moonbox.runtimes"

describe("moonbox.runtimes", function()
  it("has the reference catalogue", function()
    assert.same({ "bun", "coding", "deno", "go", "node-minimal", "node-react", "node-typescript", "polyglot",
      "python-analytics", "python-datascience", "python-documents", "python-minimal", "python-scraping",
      "python-web", "rust" }, runtimes.names())
    local ds = runtimes.get("python-datascience")
    assert.equal("python:3.12-slim", ds.base_image)
    assert.same({ "pandas", "numpy", "matplotlib", "scikit-learn", "seaborn" }, ds.packages)
    assert.equal("/app", runtimes.get("node-minimal").work_dir)
    assert.equal("node:20-slim", runtimes.get("node-minimal").image)
    assert.equal("/src", runtimes.get("go").work_dir)
  end)

  it("names the available runtimes when one is unknown", function()
    local ok, err = pcall(runtimes.get, "cobol")
    assert.is_false(ok)
    assert.matches("^.-Unknown runtime 'cobol'%. Available: bun, coding, deno, go, ", err)
  end)

  it("generates Dockerfiles per package manager", function()
    assert.equal("FROM python:3.12-slim\nRUN pip install --no-cache-dir pandas numpy matplotlib scikit-learn "
      .. "seaborn\nWORKDIR /workspace\n", runtimes.dockerfile(runtimes.get("python-datascience")))
    assert.equal("FROM node:20-slim\nWORKDIR /app\nRUN npm install typescript tsx vitest\nWORKDIR /app\n",
      runtimes.dockerfile(runtimes.get("node-typescript")))
    local apt = runtimes.dockerfile { name = "t", base_image = "debian:12", packages = { "jq" },
      package_manager = "apt", env_vars = { B = "two words", A = "x'y" }, setup_commands = { "echo hi" } }
    assert.equal("FROM debian:12\nRUN echo hi\nRUN apt-get update && apt-get install -y jq\nENV A='x'\"'\"'y'\n"
      .. "ENV B='two words'\nWORKDIR /workspace\n", apt)
    local cargo = runtimes.dockerfile({ name = "c", base_image = "rust:1", packages = { "ripgrep" },
      package_manager = "cargo" }, { cache_mounts = true })
    assert.matches("^# syntax=docker/dockerfile:1\n", cargo)
    assert.matches("RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked cargo install ripgrep",
      cargo, 1, true)
    local pipc = runtimes.dockerfile({ name = "p", base_image = "python:3", packages = { "httpx" } },
      { cache_mounts = true })
    assert.matches("RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked pip install httpx", pipc, 1, true)
    local nothing, msg, code = runtimes.dockerfile(runtimes.get("python-minimal"))
    assert.is_nil(nothing)
    assert.equal("INVALID", code)
    assert.matches("no base_image", msg, 1, true)
  end)

  it("refuses every hostile value with the reference's messages", function()
    local base = { name = "h", base_image = "debian:12" }
    local function try(extra)
      local rt = {}
      for k, v in pairs(base) do rt[k] = v end
      for k, v in pairs(extra) do rt[k] = v end
      local text, msg, code = runtimes.dockerfile(rt)
      assert.is_nil(text)
      assert.equal("INVALID", code)
      return msg
    end
    assert.equal("Invalid package name: 'x; rm -rf /'", try { packages = { "x; rm -rf /" } })
    assert.equal("Invalid package name: ''", try { packages = { "" } })
    assert.equal("Invalid package name: '$(id)'", try { packages = { "$(id)" } })
    assert.equal("Invalid package name: '-e'", try { packages = { "-e" } })
    assert.equal("Invalid environment variable name: 'A-B'", try { env_vars = { ["A-B"] = "1" } })
    assert.equal("Environment variable 'A' value contains a newline", try { env_vars = { A = "1\nRUN evil" } })
    assert.equal("setup command contains a newline", try { setup_commands = { "echo\nRUN evil" } })
    assert.equal("work_dir contains disallowed shell metacharacters: '$', '(', ')'",
      try { work_dir = "/w$(x)" })
    assert.equal("work_dir contains disallowed shell metacharacters: '\\n'", try { work_dir = "/w\nx" })
    assert.matches("package_manager must be pip, npm, apt or cargo", try { package_manager = "gem" })
    assert.matches("unknown field 'bogus'", try { bogus = 1 })
    -- allowed: pip extras and specifiers, npm scopes
    assert.truthy(runtimes.dockerfile { name = "ok", base_image = "python:3",
      packages = { "pkg[extra]>=1.0", "a==2" } })
    assert.truthy(runtimes.dockerfile { name = "ok2", base_image = "node:20", package_manager = "npm",
      packages = { "@types/react", "react@18" } })
  end)

  it("tags images by a hash of the config", function()
    local function tag(pkg)
      return runtimes.image_tag { name = "x", base_image = "debian:12", packages = { pkg }, package_manager = "apt" }
    end
    local a, b, c = tag("jq"), tag("jq"), tag("curl")
    assert.matches("^moonbox%-runtime:x%-%x%x%x%x%x%x%x%x%x%x%x%x$", a)
    assert.equal(a, b)
    assert.is_not.equal(a, c)
  end)

  it("builds a tar context holding the Dockerfile", function()
    local tar = assert(runtimes.build_context(runtimes.get("python-web")))
    assert.equal(0, #tar % 512)
    assert.equal("Dockerfile", tar:sub(1, 10))
    assert.equal("ustar", tar:sub(258, 262))
    local text = runtimes.dockerfile(runtimes.get("python-web"))
    assert.equal(text, tar:sub(513, 512 + #text))
    -- checksum field is right: sum of header bytes with the field as spaces
    local header = tar:sub(1, 148) .. "        " .. tar:sub(157, 512)
    local sum = 0
    for i = 1, 512 do sum = sum + header:byte(i) end
    assert.equal(sum, tonumber(tar:sub(149, 154), 8))
    -- tar itself can read it
    local f = io.open(os.tmpname(), "rb")
    if f then f:close() end
    local path = os.tmpname()
    local out = assert(io.open(path, "wb"))
    out:write(tar)
    out:close()
    local p = io.popen("tar -xOf " .. path .. " Dockerfile 2>&1")
    local extracted = p:read("a")
    p:close()
    os.remove(path)
    assert.equal(text, extracted)
  end)

  it("registers runtimes from a user file", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write('return { { name = "mine", base_image = "debian:12", packages = { "jq" }, package_manager = "apt" } }')
    f:close()
    assert.equal(1, runtimes.load(path))
    assert.equal("debian:12", runtimes.get("mine").base_image)
    f = assert(io.open(path, "w"))
    f:write('return { { name = "bad", base_image = "x", packages = { "a b" } } }')
    f:close()
    assert.has_error(function() runtimes.load(path) end)
    f = assert(io.open(path, "w"))
    f:write('os.exit(1)')
    f:close()
    assert.has_error(function() runtimes.load(path) end) -- no globals in a runtime file
    os.remove(path)
  end)
end)
