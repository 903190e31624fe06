-- A small JSON Schema (draft 2020-12) checker for the specs: `check_schema` says whether a
-- schema is well formed under the draft's rules for the keywords tool schemas use, and
-- `validate` checks an instance against it. Lua tables stand for JSON: a table with t[1] is an
-- array, any other table an object; `cjson.null` (when loaded) is null.
local M = {}

local NULL
do
  local ok, cjson = pcall(require, "cjson")
  if ok then NULL = cjson.null end
end

local TYPES = { null = true, boolean = true, object = true, array = true, number = true, string = true, integer = true }

local function kind(v)
  local t = type(v)
  if v == nil or (NULL ~= nil and v == NULL) then return "null" end
  if t == "number" then return math.type(v) == "integer" and "integer" or "number" end
  if t == "table" then
    if v[1] ~= nil then return "array" end
    if getmetatable(v) and getmetatable(v).__jsontype == "array" then return "array" end
    return "object"
  end
  return t
end
M.kind = kind

local function is_type(v, ty)
  local k = kind(v)
  if ty == "number" then return k == "number" or k == "integer" end
  if ty == "integer" then return k == "integer" or (k == "number" and v == math.floor(v)) end
  if ty == "object" then return k == "object" end
  if ty == "array" then return k == "array" or (k == "object" and next(v) == nil) end
  return k == ty
end

local function deep_equal(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do
    if not deep_equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

-- Keywords a schema may use here, with the shape their value must have (draft 2020-12).
local KEYWORDS = {
  ["$schema"] = "string", ["$id"] = "string", title = "string", description = "string",
  type = "type", properties = "schema_map", required = "string_set", additionalProperties = "schema",
  enum = "nonempty_array", const = "any", default = "any", minimum = "number", maximum = "number",
  exclusiveMinimum = "number", exclusiveMaximum = "number", minLength = "count", maxLength = "count",
  pattern = "string", items = "schema", minItems = "count", maxItems = "count", examples = "array",
}

-- Returns true, or false and a list of problems found in the schema itself.
function M.check_schema(schema, path, problems)
  path = path or "#"
  problems = problems or {}
  local function bad(fmt, ...) problems[#problems + 1] = path .. ": " .. fmt:format(...) end
  if type(schema) == "boolean" then return #problems == 0, problems end
  if kind(schema) ~= "object" then
    bad("a schema must be an object or a boolean")
    return false, problems
  end
  for k, v in pairs(schema) do
    local shape = KEYWORDS[k]
    if not shape then
      bad("unknown keyword '%s'", tostring(k))
    elseif shape == "string" and type(v) ~= "string" then
      bad("'%s' must be a string", k)
    elseif shape == "number" and type(v) ~= "number" then
      bad("'%s' must be a number", k)
    elseif shape == "count" and (math.type(v) ~= "integer" or v < 0) then
      bad("'%s' must be a non-negative integer", k)
    elseif shape == "type" then
      local list = type(v) == "table" and v or { v }
      for _, t in ipairs(list) do
        if not TYPES[t] then bad("unknown type '%s'", tostring(t)) end
      end
    elseif shape == "schema_map" then
      if kind(v) ~= "object" then
        bad("'%s' must be an object", k)
      else
        for name, sub in pairs(v) do M.check_schema(sub, path .. "/" .. k .. "/" .. tostring(name), problems) end
      end
    elseif shape == "schema" then
      M.check_schema(v, path .. "/" .. k, problems)
    elseif shape == "string_set" then
      if kind(v) ~= "array" then
        bad("'%s' must be an array", k)
      else
        local seen = {}
        for _, s in ipairs(v) do
          if type(s) ~= "string" then bad("'%s' items must be strings", k) end
          if seen[s] then bad("'%s' has a duplicate '%s'", k, tostring(s)) end
          seen[s] = true
        end
      end
    elseif (shape == "nonempty_array" or shape == "array") and kind(v) ~= "array" then
      bad("'%s' must be a non-empty array", k)
    end
  end
  -- Tool-schema rules on top of the draft: every required name is a declared property.
  if kind(schema.required) == "array" then
    for _, name in ipairs(schema.required) do
      if not (schema.properties and schema.properties[name]) then bad("required '%s' is not a property", name) end
    end
  end
  if schema.default ~= nil then
    local ok, why = M.validate(schema, schema.default)
    if not ok then bad("default does not validate: %s", why[1]) end
  end
  return #problems == 0, problems
end

-- Returns true, or false and a list of reasons the instance does not validate.
function M.validate(schema, value, path, errors)
  path = path or "#"
  errors = errors or {}
  local function bad(fmt, ...) errors[#errors + 1] = path .. ": " .. fmt:format(...) end
  if schema == true then return true, errors end
  if schema == false then
    bad("no value is allowed here")
    return false, errors
  end
  if schema.type then
    local list = type(schema.type) == "table" and schema.type or { schema.type }
    local ok = false
    for _, t in ipairs(list) do ok = ok or is_type(value, t) end
    if not ok then
      bad("expected %s, got %s", table.concat(list, "|"), kind(value))
      return false, errors
    end
  end
  if schema.enum then
    local ok = false
    for _, e in ipairs(schema.enum) do ok = ok or deep_equal(e, value) end
    if not ok then bad("not one of the enum values") end
  end
  if schema.const ~= nil and not deep_equal(schema.const, value) then bad("not the const value") end
  if type(value) == "number" then
    if schema.minimum and value < schema.minimum then bad("below minimum %s", tostring(schema.minimum)) end
    if schema.maximum and value > schema.maximum then bad("above maximum %s", tostring(schema.maximum)) end
  end
  if type(value) == "string" then
    local n = utf8.len(value) or #value
    if schema.minLength and n < schema.minLength then bad("shorter than %d", schema.minLength) end
    if schema.maxLength and n > schema.maxLength then bad("longer than %d", schema.maxLength) end
  end
  if kind(value) == "object" then
    for _, name in ipairs(schema.required or {}) do
      if value[name] == nil then bad("missing required property '%s'", name) end
    end
    for k, v in pairs(value) do
      local sub = schema.properties and schema.properties[k]
      if sub ~= nil then
        M.validate(sub, v, path .. "/" .. tostring(k), errors)
      elseif schema.additionalProperties ~= nil then
        M.validate(schema.additionalProperties, v, path .. "/" .. tostring(k), errors)
      end
    end
  end
  if kind(value) == "array" and schema.items ~= nil then
    for i, v in ipairs(value) do M.validate(schema.items, v, path .. "/" .. (i - 1), errors) end
  end
  return #errors == 0, errors
end

return M
