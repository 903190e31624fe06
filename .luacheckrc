std = "lua54"
max_line_length = 120
exclude_files = { "build*/**", "node_modules/**", "spec/mcp/node_modules/**" }
files["spec/**"] = { std = "+busted" }
-- Tenant policies run in a restricted state whose globals add these two (README "Tenant policies").
files["presets/tenants/**"] = { read_globals = { "presets", "clone" } }
