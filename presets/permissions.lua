-- Permission presets: the reference's data (pydantic-ai-backend presets.py, §8.2), exactly.
--
-- Data only. moonbox.permissions loads this file, validates every ruleset and exposes them as
-- perms.presets.DEFAULT, ...; create_ruleset{...} is in moonbox.permissions. A ruleset is
--   { default = action, <operation> = { default = action, rules = { {pattern, action,
--     description}, ... } }, ... }
-- with operations read, write, edit, execute, glob, grep, ls and actions allow, deny, ask.
-- Rules are tried in order and the first match wins; see README "Permissions".

local SECRETS_PATTERNS = {
  "**/.env", "**/.env.*", "**/*.pem", "**/*.key", "**/*.crt", "**/credentials*", "**/secrets*",
  "**/*secret*", "**/*password*", "**/.aws/**", "**/.ssh/**", "**/.gnupg/**",
}

local SYSTEM_PATTERNS = {
  "/etc/**", "/var/**", "/usr/**", "/bin/**", "/sbin/**", "/boot/**", "/sys/**", "/proc/**",
}

-- Globs matched against each simple command (and the whole line); `*` never crosses `/`.
local DANGEROUS_COMMANDS = {
  "rm -rf /*", "rm -rf /", ":(){:|:&};:", "dd if=*of=/dev/*", "mkfs*", "> /dev/sda",
  "chmod -R 777 /",
}

local SECRETS = "Protect sensitive files"
local SECRETS_SYSTEM = "Protect sensitive and system files"
local DANGEROUS = "Block dangerous commands"

local function deny_all(patterns, description, extra)
  local rules = {}
  for _, list in ipairs({ patterns, extra or {} }) do
    for _, p in ipairs(list) do
      rules[#rules + 1] = { pattern = p, action = "deny", description = description }
    end
  end
  return rules
end

return {
  SECRETS_PATTERNS = SECRETS_PATTERNS,
  SYSTEM_PATTERNS = SYSTEM_PATTERNS,
  DANGEROUS_COMMANDS = DANGEROUS_COMMANDS,

  -- Reads allowed; writes, edits and commands ask; secrets and dangerous commands denied.
  DEFAULT = {
    default = "ask",
    read = { default = "allow", rules = deny_all(SECRETS_PATTERNS, SECRETS) },
    write = { default = "ask", rules = deny_all(SECRETS_PATTERNS, SECRETS) },
    edit = { default = "ask", rules = deny_all(SECRETS_PATTERNS, SECRETS) },
    execute = { default = "ask", rules = deny_all(DANGEROUS_COMMANDS, DANGEROUS) },
    glob = { default = "allow", rules = {} },
    grep = { default = "allow", rules = {} },
    ls = { default = "allow", rules = {} },
  },

  -- Everything allowed except secrets, system files (for writes) and dangerous commands.
  PERMISSIVE = {
    default = "allow",
    read = { default = "allow", rules = deny_all(SECRETS_PATTERNS, SECRETS) },
    write = { default = "allow", rules = deny_all(SECRETS_PATTERNS, SECRETS_SYSTEM, SYSTEM_PATTERNS) },
    edit = { default = "allow", rules = deny_all(SECRETS_PATTERNS, SECRETS_SYSTEM, SYSTEM_PATTERNS) },
    execute = { default = "allow", rules = deny_all(DANGEROUS_COMMANDS, DANGEROUS) },
    glob = { default = "allow", rules = {} },
    grep = { default = "allow", rules = {} },
    ls = { default = "allow", rules = {} },
  },

  -- Look but do not touch: no writes, edits or commands; secrets unreadable.
  READONLY = {
    default = "deny",
    read = { default = "allow", rules = deny_all(SECRETS_PATTERNS, SECRETS) },
    write = { default = "deny", rules = {} },
    edit = { default = "deny", rules = {} },
    execute = { default = "deny", rules = {} },
    glob = { default = "allow", rules = {} },
    grep = { default = "allow", rules = {} },
    ls = { default = "allow", rules = {} },
  },

  -- Ask for everything; secrets and dangerous commands denied.
  STRICT = {
    default = "ask",
    read = { default = "ask", rules = deny_all(SECRETS_PATTERNS, SECRETS) },
    write = { default = "ask", rules = deny_all(SECRETS_PATTERNS, SECRETS) },
    edit = { default = "ask", rules = deny_all(SECRETS_PATTERNS, SECRETS) },
    execute = { default = "ask", rules = deny_all(DANGEROUS_COMMANDS, DANGEROUS) },
    glob = { default = "ask", rules = {} },
    grep = { default = "ask", rules = {} },
    ls = { default = "ask", rules = {} },
  },
}
