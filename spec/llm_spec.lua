-- moonbox.llm providers against the loopback fake (spec/support/fake_llm.mjs): the real
-- OpenAI Chat Completions and Anthropic Messages wire formats, whole and streamed.
local llm = require "moonbox.llm"
local json = require "moonbox.json"
local fake_llm = require "spec.support.fake_llm"

local tools = {
  { name = "read_file", description = "Read a file",
    parameters = { type = "object", properties = { path = { type = "string" } }, required = json.array { "path" },
      additionalProperties = false } },
  { name = "list_shells", description = "List", parameters = { type = "object", properties = json.object(),
    required = json.array(), additionalProperties = false } },
}

describe("moonbox.llm", function()
  local srv
  setup(function() srv = fake_llm.start() end)
  teardown(function() srv:close() end)
  before_each(function() srv:reset() end)

  local function provider(kind, extra)
    local opts = { api_key = "sk-secret-123", retry_base = 0.01, retry_max = 5 }
    for k, v in pairs(extra or {}) do opts[k] = v end
    local spec = kind == "openai" and ("openai-compatible:gpt-test@" .. srv.url .. "/v1")
      or "anthropic:claude-test"
    if kind == "anthropic" then opts.base_url = srv.url .. "/v1" end
    return assert(llm.provider(spec, opts))
  end

  describe("model strings", function()
    it("parses the three forms", function()
      assert.same({ kind = "openai", model = "gpt-4.1" }, llm.parse_model("openai:gpt-4.1"))
      assert.same({ kind = "anthropic", model = "claude-x" }, llm.parse_model("anthropic:claude-x"))
      assert.same({ kind = "openai-compatible", model = "qwen2.5:7b", base_url = "http://127.0.0.1:11434/v1" },
        llm.parse_model("openai-compatible:qwen2.5:7b@http://127.0.0.1:11434/v1"))
    end)
    it("rejects unknown providers and missing base URLs", function()
      local p, msg, code = llm.provider("gemini:x")
      assert.is_nil(p)
      assert.equal("INVALID", code)
      assert.matches("openai:<model>", msg, 1, true)
      p, msg, code = llm.provider("openai-compatible:x")
      assert.is_nil(p)
      assert.equal("INVALID", code)
      assert.matches("base URL", msg, 1, true)
      assert.has_error(function() llm.provider(nil) end)
    end)
    it("says which variable to set when the key is missing", function()
      local p, msg, code = llm.provider("openai:gpt-4.1", { api_key = "" })
      assert.is_nil(p)
      assert.equal("AUTH", code)
      assert.matches("OPENAI_API_KEY", msg, 1, true)
      p, msg, code = llm.provider("anthropic:claude", { api_key = "" })
      assert.is_nil(p)
      assert.equal("AUTH", code)
      assert.matches("ANTHROPIC_API_KEY", msg, 1, true)
    end)
    it("keeps the key out of the provider's fields", function()
      local p = provider("openai")
      for _, v in pairs(p) do assert.is_not.equal("sk-secret-123", v) end
    end)
  end)

  for _, kind in ipairs { "openai", "anthropic" } do
    describe(kind, function()
      local convo = {
        { role = "user", content = "read /a" },
        { role = "assistant", content = "reading", tool_calls = {
          { id = "c1", name = "read_file", arguments = '{"path":"/a"}' },
          { id = "c2", name = "list_shells", arguments = "{}" } } },
        { role = "tool", tool_call_id = "c1", name = "read_file", content = "1\thello" },
        { role = "tool", tool_call_id = "c2", name = "list_shells", content = "none", is_error = true },
      }

      it("sends the conversation, tools and key in the API's format", function()
        srv:script { { text = "done" } }
        local resp = assert(provider(kind):complete { system = "be brief", messages = convo, tools = tools })
        assert.equal("done", resp.text)
        local req = srv:requests()[1]
        if kind == "openai" then
          assert.equal("/v1/chat/completions", req.path)
          assert.equal("Bearer sk-secret-123", req.headers.authorization)
          assert.equal("system", req.body.messages[1].role)
          assert.equal("tool", req.body.messages[4].role)
          assert.equal("c1", req.body.messages[4].tool_call_id)
          assert.equal("function", req.body.tools[1].type)
          assert.equal("read_file", req.body.tools[1]["function"].name)
          assert.equal('{"path":"/a"}', req.body.messages[3].tool_calls[1]["function"].arguments)
        else
          assert.equal("/v1/messages", req.path)
          assert.equal("sk-secret-123", req.headers["x-api-key"])
          assert.equal("2023-06-01", req.headers["anthropic-version"])
          assert.equal("be brief", req.body.system)
          assert.equal(3, #req.body.messages) -- the two tool results merged into one user turn
          local results = req.body.messages[3].content
          assert.equal("tool_result", results[1].type)
          assert.equal("c1", results[1].tool_use_id)
          assert.is_true(results[2].is_error)
          assert.equal("tool_use", req.body.messages[2].content[2].type)
          assert.equal("/a", req.body.messages[2].content[2].input.path)
          assert.equal("read_file", req.body.tools[1].name)
          assert.truthy(req.body.tools[1].input_schema)
          assert.truthy(req.body.max_tokens)
        end
        -- an empty "required" list stays a list on the wire
        local raw = kind == "openai" and req.body.tools[2]["function"].parameters or req.body.tools[2].input_schema
        assert.same({}, raw.required)
      end)

      for _, stream in ipairs { false, true } do
        local label = stream and "streamed" or "whole"
        it("parses parallel tool calls and usage (" .. label .. ")", function()
          srv:script { { text = "two at once", tool_calls = {
            { name = "read_file", arguments = { path = "/x y/é.txt" } },
            { name = "list_shells", arguments = {} } }, usage = { input = 11, output = 7 } } }
          local seen = {}
          local resp = assert(provider(kind):complete { messages = { { role = "user", content = "go" } },
            tools = tools, stream = stream, on_text = function(d) seen[#seen + 1] = d end })
          assert.equal("two at once", resp.text)
          assert.equal(2, #resp.tool_calls)
          assert.equal("read_file", resp.tool_calls[1].name)
          assert.equal("/x y/é.txt", json.decode(resp.tool_calls[1].arguments).path)
          assert.equal("list_shells", resp.tool_calls[2].name)
          assert.truthy(resp.tool_calls[1].id)
          assert.is_not.equal(resp.tool_calls[1].id, resp.tool_calls[2].id)
          assert.equal(11, resp.usage.input_tokens)
          assert.equal(7, resp.usage.output_tokens)
          if stream then
            assert.is_true(#seen > 1)
            assert.equal("two at once", table.concat(seen))
          end
        end)

        it("retries 429 and 500 then succeeds (" .. label .. ")", function()
          srv:script { { status = 429, headers = { ["retry-after-ms"] = "50" } }, { status = 500 },
            { status = 503 }, { text = "ok" } }
          local retries = {}
          local resp = assert(provider(kind, { on_retry = function(r) retries[#retries + 1] = r end }):complete {
            messages = { { role = "user", content = "x" } }, stream = stream })
          assert.equal("ok", resp.text)
          assert.equal(3, #retries)
          assert.equal("RATE_LIMITED", retries[1].code)
          assert.near(0.05, retries[1].wait, 1e-9)
          assert.equal("SERVER", retries[2].code)
          assert.equal(4, #srv:requests())
        end)

        it("gives up after max_retries with the API's message (" .. label .. ")", function()
          srv:script { { status = 500, error = "overloaded" }, { status = 500, error = "overloaded" } }
          local resp, msg, code = provider(kind, { max_retries = 1 }):complete {
            messages = { { role = "user", content = "x" } }, stream = stream }
          assert.is_nil(resp)
          assert.equal("SERVER", code)
          assert.matches("overloaded", msg, 1, true)
        end)

        it("does not retry an auth failure and never shows the key (" .. label .. ")", function()
          srv:script { { status = 401, error = "invalid key" } }
          local resp, msg, code = provider(kind):complete { messages = { { role = "user", content = "x" } },
            stream = stream }
          assert.is_nil(resp)
          assert.equal("AUTH", code)
          assert.matches("invalid key", msg, 1, true)
          assert.is_nil(msg:find("sk-secret", 1, true))
          assert.equal(1, #srv:requests())
        end)

        it("turns a malformed reply into PROTOCOL (" .. label .. ")", function()
          srv:script { { text = "x", malformed = true } }
          local resp, _, code = provider(kind):complete { messages = { { role = "user", content = "x" } },
            stream = stream }
          assert.is_nil(resp)
          assert.equal("PROTOCOL", code)
        end)
      end

      it("reports a stream cut after text without retrying it", function()
        srv:script { { text = "a long streamed answer", cut = true }, { text = "second" } }
        local resp, msg, code = provider(kind):complete { messages = { { role = "user", content = "x" } },
          stream = true, on_text = function() end }
        assert.is_nil(resp)
        assert.equal("UNAVAILABLE", code)
        assert.truthy(msg)
        assert.equal(1, #srv:requests())
      end)

      it("retries a stream cut before any text was shown", function()
        srv:script { { tool_calls = { { name = "read_file", arguments = { path = "/a" } } }, cut = true },
          { text = "second" } }
        local resp = assert(provider(kind):complete { messages = { { role = "user", content = "x" } }, stream = true })
        assert.equal("second", resp.text)
        assert.equal(2, #srv:requests())
      end)
    end)
  end
end)
