-- moonbox.codec: base64 for content parts, SHA-256 for read fingerprints.
local codec = require "moonbox.codec"

describe("codec.base64", function()
  it("encodes the RFC 4648 vectors", function()
    local vectors = { [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==", fooba = "Zm9vYmE=",
      foobar = "Zm9vYmFy" }
    for plain, enc in pairs(vectors) do
      assert.equal(enc, codec.base64_encode(plain))
      assert.equal(plain, codec.base64_decode(enc))
    end
  end)

  it("round-trips every byte value", function()
    local t = {}
    for i = 0, 255 do t[#t + 1] = string.char(i) end
    local all = table.concat(t):rep(3)
    assert.equal(all, codec.base64_decode(codec.base64_encode(all)))
  end)

  it("skips whitespace and accepts the URL-safe alphabet", function()
    assert.equal("foobar", codec.base64_decode("Zm9v\nYmFy\r\n"))
    assert.equal("\251\255", codec.base64_decode("-_8="))
  end)

  it("refuses malformed input with INVALID", function()
    local v, msg, code = codec.base64_decode("Zm9v!")
    assert.is_nil(v)
    assert.equal("INVALID", code)
    assert.matches("byte 5", msg)
    assert.equal("INVALID", select(3, codec.base64_decode("Z")))
    assert.equal("INVALID", select(3, codec.base64_decode("Zg==Zg==")))
  end)

  it("raises on a non-string", function()
    assert.has_error(function() codec.base64_encode(nil) end)
    assert.has_error(function() codec.base64_decode({}) end)
  end)
end)

describe("codec.sha256", function()
  it("gives lowercase hex digests", function()
    assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", codec.sha256(""))
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", codec.sha256("abc"))
  end)

  it("raises on a non-string", function()
    assert.has_error(function() codec.sha256(nil) end)
  end)
end)
