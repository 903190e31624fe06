// A loopback LLM server for the specs and the agents benchmark — a fake, named as one: it speaks
// the real wire formats of OpenAI Chat Completions (POST /v1/chat/completions) and Anthropic
// Messages (POST /v1/messages), whole and SSE-streamed, and answers from a script each test sets.
//
//   node spec/support/fake_llm.mjs [--parent PID] [--unix PATH]
//       listens on 127.0.0.1 (a free port), prints "PORT <n>" on stdout; exits on POST
//       /_shutdown, or when process PID (the test runner) is gone; --unix serves the same
//       routes on a unix socket too
//
// Control endpoints (JSON):
//   POST /_script    body: a list of turns, queued; each model request takes the next one
//   POST /_auto      body: {turns, tool, arguments, text}: answer every conversation on its own
//                    (a tool call per turn until `turns` tool results are in it, then `text`)
//   GET  /_requests  the model requests received so far: [{path, headers, body}]
//   POST /_reset     clears the queue, the auto mode and the recorded requests
//
// A turn (neutral; rendered in the format of the endpoint that takes it):
//   {text = "...", tool_calls = [{id?, name, arguments = {...} | "raw json text"}],
//    stream = true|false (default: what the request asked), usage = {input, output},
//    status = 429, headers = {"retry-after": "1"}, error = "message"   -- an HTTP error reply
//    cut = true          -- streamed: close the connection in the middle of the stream
//    malformed = true    -- send a body that is not valid JSON (or an SSE event that is not)
//    delay_ms = n}       -- wait before answering
import http from "node:http";

let queue = [];
let auto = null;
let requests = [];
let seq = 0;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const nextId = (prefix) => `${prefix}${++seq}`;

function argsText(a) {
  return typeof a === "string" ? a : JSON.stringify(a ?? {});
}

function countToolResults(path, body) {
  const msgs = body.messages || [];
  let n = 0;
  for (const m of msgs) {
    if (path.endsWith("/chat/completions")) {
      if (m.role === "tool") n++;
    } else if (Array.isArray(m.content)) {
      for (const part of m.content) if (part.type === "tool_result") n++;
    }
  }
  return n;
}

function autoTurn(path, body) {
  const done = countToolResults(path, body);
  if (done < auto.turns) {
    return { tool_calls: [{ name: auto.tool, arguments: auto.arguments || {} }], usage: { input: 10, output: 5 } };
  }
  return { text: auto.text || "done", usage: { input: 10, output: 5 } };
}

// ---- OpenAI Chat Completions ------------------------------------------------------------------
function openaiWhole(turn, model) {
  const calls = (turn.tool_calls || []).map((c) => ({
    id: c.id || nextId("call_"),
    type: "function",
    function: { name: c.name, arguments: argsText(c.arguments) },
  }));
  const message = { role: "assistant", content: turn.text ?? null };
  if (calls.length) message.tool_calls = calls;
  const u = turn.usage || { input: 0, output: 0 };
  return {
    id: nextId("chatcmpl-"),
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, message, finish_reason: calls.length ? "tool_calls" : "stop" }],
    usage: { prompt_tokens: u.input, completion_tokens: u.output, total_tokens: u.input + u.output },
  };
}

function openaiEvents(turn, model) {
  const id = nextId("chatcmpl-");
  const base = { id, object: "chat.completion.chunk", created: Math.floor(Date.now() / 1000), model };
  const ev = [];
  const chunk = (delta, finish = null) => ev.push({ data: { ...base, choices: [{ index: 0, delta, finish_reason: finish }] } });
  chunk({ role: "assistant", content: "" });
  if (turn.text) {
    // split the text in a few pieces, as a real stream does
    const t = turn.text;
    const step = Math.max(1, Math.ceil(t.length / 3));
    for (let i = 0; i < t.length; i += step) chunk({ content: t.slice(i, i + step) });
  }
  (turn.tool_calls || []).forEach((c, index) => {
    const a = argsText(c.arguments);
    chunk({ tool_calls: [{ index, id: c.id || nextId("call_"), type: "function", function: { name: c.name, arguments: "" } }] });
    const half = Math.ceil(a.length / 2);
    chunk({ tool_calls: [{ index, function: { arguments: a.slice(0, half) } }] });
    chunk({ tool_calls: [{ index, function: { arguments: a.slice(half) } }] });
  });
  chunk({}, turn.tool_calls && turn.tool_calls.length ? "tool_calls" : "stop");
  const u = turn.usage || { input: 0, output: 0 };
  ev.push({ data: { ...base, choices: [], usage: { prompt_tokens: u.input, completion_tokens: u.output, total_tokens: u.input + u.output } } });
  ev.push({ raw: "data: [DONE]\n\n" });
  return ev;
}

// ---- Anthropic Messages -----------------------------------------------------------------------
function anthropicContent(turn) {
  const content = [];
  if (turn.text) content.push({ type: "text", text: turn.text });
  for (const c of turn.tool_calls || []) {
    let input = c.arguments ?? {};
    if (typeof input === "string") {
      try {
        input = JSON.parse(input);
      } catch {
        input = { _raw: input };
      }
    }
    content.push({ type: "tool_use", id: c.id || nextId("toolu_"), name: c.name, input });
  }
  return content;
}

function anthropicWhole(turn, model) {
  const u = turn.usage || { input: 0, output: 0 };
  return {
    id: nextId("msg_"),
    type: "message",
    role: "assistant",
    model,
    content: anthropicContent(turn),
    stop_reason: turn.tool_calls && turn.tool_calls.length ? "tool_use" : "end_turn",
    stop_sequence: null,
    usage: { input_tokens: u.input, output_tokens: u.output },
  };
}

function anthropicEvents(turn, model) {
  const u = turn.usage || { input: 0, output: 0 };
  const ev = [];
  const e = (event, data) => ev.push({ event, data: { type: event, ...data } });
  e("message_start", {
    message: { id: nextId("msg_"), type: "message", role: "assistant", model, content: [], stop_reason: null, usage: { input_tokens: u.input, output_tokens: 1 } },
  });
  ev.push({ event: "ping", data: { type: "ping" } });
  let index = 0;
  if (turn.text) {
    e("content_block_start", { index, content_block: { type: "text", text: "" } });
    const t = turn.text;
    const step = Math.max(1, Math.ceil(t.length / 3));
    for (let i = 0; i < t.length; i += step) e("content_block_delta", { index, delta: { type: "text_delta", text: t.slice(i, i + step) } });
    e("content_block_stop", { index });
    index++;
  }
  for (const c of turn.tool_calls || []) {
    const a = argsText(c.arguments);
    e("content_block_start", { index, content_block: { type: "tool_use", id: c.id || nextId("toolu_"), name: c.name, input: {} } });
    const half = Math.ceil(a.length / 2);
    e("content_block_delta", { index, delta: { type: "input_json_delta", partial_json: a.slice(0, half) } });
    e("content_block_delta", { index, delta: { type: "input_json_delta", partial_json: a.slice(half) } });
    e("content_block_stop", { index });
    index++;
  }
  e("message_delta", { delta: { stop_reason: turn.tool_calls && turn.tool_calls.length ? "tool_use" : "end_turn", stop_sequence: null }, usage: { output_tokens: u.output } });
  e("message_stop", {});
  return ev;
}

// ---- serving ----------------------------------------------------------------------------------
function sendJson(res, status, obj, headers = {}) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...headers });
  res.end(body);
}

async function answer(req, res, path, body) {
  const isOpenAI = path.endsWith("/chat/completions");
  let turn = queue.length ? queue.shift() : auto ? autoTurn(path, body) : null;
  if (!turn) {
    return sendJson(res, 500, { error: { message: "fake_llm: no scripted turn left for this request", type: "server_error" } });
  }
  if (turn.delay_ms) await sleep(turn.delay_ms);
  if (turn.status && turn.status >= 400) {
    const err = isOpenAI
      ? { error: { message: turn.error || `status ${turn.status}`, type: "error", code: null } }
      : { type: "error", error: { type: turn.status === 429 ? "rate_limit_error" : "api_error", message: turn.error || `status ${turn.status}` } };
    return sendJson(res, turn.status, err, turn.headers || {});
  }
  const model = body.model || "fake";
  const stream = turn.stream ?? !!body.stream;
  if (!stream) {
    if (turn.malformed) {
      res.writeHead(200, { "content-type": "application/json" });
      return res.end('{"id": "broken", "choices": [ {');
    }
    return sendJson(res, 200, isOpenAI ? openaiWhole(turn, model) : anthropicWhole(turn, model), turn.headers || {});
  }
  const events = isOpenAI ? openaiEvents(turn, model) : anthropicEvents(turn, model);
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", ...(turn.headers || {}) });
  const cutAt = turn.cut ? Math.max(1, Math.floor(events.length / 2)) : -1;
  for (let i = 0; i < events.length; i++) {
    if (i === cutAt) {
      await sleep(50); // let what was written reach the client, then cut the connection
      res.socket.destroy();
      return;
    }
    const ev = events[i];
    let text;
    if (ev.raw) text = ev.raw;
    else {
      const data = turn.malformed && i === 1 ? '{"broken": ' : JSON.stringify(ev.data);
      text = (ev.event ? `event: ${ev.event}\n` : "") + `data: ${data}\n\n`;
    }
    res.write(text);
  }
  res.end();
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    const raw = Buffer.concat(chunks).toString("utf8");
    const path = req.url.split("?")[0];
    let body = {};
    if (raw) {
      try {
        body = JSON.parse(raw);
      } catch {
        return sendJson(res, 400, { error: { message: "fake_llm: request body is not JSON" } });
      }
    }
    try {
      if (path === "/_script" && req.method === "POST") {
        queue.push(...(Array.isArray(body) ? body : [body]));
        return sendJson(res, 200, { queued: queue.length });
      }
      if (path === "/_auto" && req.method === "POST") {
        auto = body;
        return sendJson(res, 200, { auto: true });
      }
      if (path === "/_requests") return sendJson(res, 200, requests);
      if (path === "/_shutdown") {
        sendJson(res, 200, { bye: true });
        setImmediate(() => process.exit(0));
        return;
      }
      if (path === "/_reset") {
        queue = [];
        auto = null;
        requests = [];
        return sendJson(res, 200, { reset: true });
      }
      if (req.method === "POST" && (path.endsWith("/chat/completions") || path.endsWith("/messages"))) {
        if (!auto) requests.push({ path, headers: req.headers, body });
        return await answer(req, res, path, body);
      }
      sendJson(res, 404, { error: { message: `fake_llm: no route ${req.method} ${path}` } });
    } catch (e) {
      sendJson(res, 500, { error: { message: `fake_llm: ${e.message}` } });
    }
  });
});

const unixAt = process.argv.indexOf("--unix");
if (unixAt > 0) {
  const unixServer = http.createServer(server.listeners("request")[0]);
  unixServer.listen(process.argv[unixAt + 1]);
}

server.keepAliveTimeout = 30000;
server.maxConnections = 4096;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});
const parentAt = process.argv.indexOf("--parent");
if (parentAt > 0) {
  const parent = Number(process.argv[parentAt + 1]);
  setInterval(() => {
    try {
      process.kill(parent, 0);
    } catch {
      process.exit(0);
    }
  }, 500).unref();
}
