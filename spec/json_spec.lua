-- moonbox.json: encoding that knows empty arrays, decoding that keeps integers.
local json = require "moonbox.json"

describe("moonbox.json", function()
  it("encodes scalars, strings with escapes and unicode", function()
    assert.equal('"a\\"b\\\\c\\n\\t\\u0001é😀"', json.encode("a\"b\\c\n\t\1é😀"))
    assert.equal("1", json.encode(1))
    assert.equal("1", json.encode(1.0))
    assert.equal("0.5", json.encode(0.5))
    assert.equal("9007199254740993", json.encode(9007199254740993))
    assert.equal("true", json.encode(true))
    assert.equal("null", json.encode(nil))
    assert.equal("null", json.encode(json.null))
  end)

  it("tells arrays from objects, with marks for the ambiguous cases", function()
    assert.equal("[1,2,3]", json.encode({ 1, 2, 3 }))
    assert.equal("{}", json.encode({}))
    assert.equal("[]", json.encode(json.array()))
    assert.equal("[]", json.encode(json.array({})))
    assert.equal('{"1":"a"}', json.encode(json.object({ "a" })))
    assert.equal('{"required":[],"type":"object"}',
      json.encode({ type = "object", required = json.array() }):gsub('"type":"object","required":%[%]',
        '"required":[],"type":"object"'))
    local mixed = json.encode({ 1, 2, x = 3 })
    assert.matches('"x":3', mixed, 1, true)
    assert.matches('"1":1', mixed, 1, true)
  end)

  it("raises on what JSON cannot hold", function()
    assert.has_error(function() json.encode(print) end, "json: cannot encode a function")
    local t = {}
    t.self = t
    assert.has_error(function() json.encode(t) end)
    assert.has_error(function() json.encode(0 / 0) end, "json: cannot encode NaN")
    assert.has_error(function() json.encode(math.huge) end, "json: cannot encode infinity")
    assert.has_error(function() json.encode({ [true] = 1 }) end)
  end)

  it("decodes with integers kept as integers", function()
    local v = json.decode('{"id":1,"f":1.5,"list":[1,2,{"n":3}],"big":12345678901}')
    assert.equal("integer", math.type(v.id))
    assert.equal("float", math.type(v.f))
    assert.equal("integer", math.type(v.list[3].n))
    assert.equal(12345678901, v.big)
    assert.equal("integer", math.type(json.decode("7")))
    assert.equal(json.null, json.decode('{"x":null}').x)
  end)

  it("fails on invalid JSON with INVALID", function()
    local v, msg, code = json.decode('{"a": ')
    assert.is_nil(v)
    assert.equal("INVALID", code)
    assert.matches("^json: ", msg)
    assert.has_error(function() json.decode(nil) end)
  end)

  it("reuses its buffer safely: after a raise, for big results, and from a finalizer", function()
    assert.has_error(function() json.encode({ "half", print }) end, "json: cannot encode a function")
    assert.equal('["after"]', json.encode({ "after" }))
    local big = string.rep("x", 400 * 1024)
    assert.equal('"' .. big .. '"', json.encode(big))
    assert.equal("[1]", json.encode({ 1 }))
    -- finalizers that encode while other encodes run: every result stays whole
    local seen = {}
    for _ = 1, 200 do
      setmetatable({}, { __gc = function() seen[#seen + 1] = json.encode({ k = "from gc" }) end })
    end
    for i = 1, 2000 do
      assert.equal('{"i":' .. i .. '}', json.encode({ i = i }))
    end
    collectgarbage()
    collectgarbage()
    assert.is_true(#seen > 0)
    for _, s in ipairs(seen) do assert.equal('{"k":"from gc"}', s) end
  end)

  it("round-trips", function()
    local doc = { name = "x", list = { 1, "two", false }, nested = { deep = { 1.25 } } }
    assert.same(doc, json.decode(json.encode(doc)))
  end)
end)
