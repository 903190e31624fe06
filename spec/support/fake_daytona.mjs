// A FAKE Daytona API for spec/daytona_spec.lua — loopback only, no Daytona account.
//   node spec/support/fake_daytona.mjs --parent PID [--key K]   prints "PORT <n>"
//
// Only the endpoints moonbox.daytona_sandbox uses (Authorization: Bearer <key>, else 401):
//   POST   /sandbox                       {id, state: "creating"}; "started" after `startAfter` ms
//   GET    /sandbox/{id}                  {id, state} (404 {statusCode, message})
//   DELETE /sandbox/{id}
//   POST   /toolbox/{id}/toolbox/process/execute {command, cwd, timeout} -> {exitCode, result}
//          (400 while the sandbox is not started); runs `timeout <t> sh -c <command>` for real,
//          stdout and stderr merged as Daytona does; a timeout shows as exit code 124
//   GET    /toolbox/{id}/toolbox/files/download?path=   the bytes (404 if not a file)
//   POST   /toolbox/{id}/toolbox/files/upload?path=     multipart/form-data, field "file"
//   GET    /toolbox/{id}/toolbox/files/info?path=       {name, isDir, size, modTime} (404)
// Each sandbox gets a temporary directory: "/home/daytona" and "/tmp/moonbox-bg" in commands and
// paths are rewritten to it (the only liberty the fake takes).
// Test controls: GET /_fake/state, POST /_fake/config {startAfter}, GET /_shutdown.
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import { spawn } from "node:child_process";

const argv = process.argv;
const opt = (name, dflt) => (argv.indexOf(name) > 0 ? argv[argv.indexOf(name) + 1] : dflt);
const KEY = opt("--key", "fake-key");
const base = fs.mkdtempSync(path.join(os.tmpdir(), "fake-daytona-"));
const config = { startAfter: 200 };
const boxes = new Map();
const state = { created: [], deleted: [], requests: [] };

const send = (res, code, obj) => {
  res.writeHead(code, { "Content-Type": "application/json" });
  res.end(JSON.stringify(obj));
};
const fail = (res, code, message) => send(res, code, { statusCode: code, message, error: http.STATUS_CODES[code] });
const mapPath = (b, s) =>
  s.replace(/\/tmp\/moonbox-bg|\/home\/daytona/g, (m) => (m === "/home/daytona" ? b.dir + "/home" : b.dir + "/bg"));
const started = (b) => b.startAt !== null && Date.now() >= b.startAt;

function killBox(b) {
  for (const c of b.children) { try { process.kill(-c.pid, "SIGKILL"); } catch {} }
  const bg = b.dir + "/bg";
  for (const f of fs.existsSync(bg) ? fs.readdirSync(bg) : []) {
    if (!f.endsWith(".pid")) continue;
    const pid = Number(fs.readFileSync(path.join(bg, f), "utf8"));
    try { process.kill(-pid, "SIGKILL"); } catch {}
    try { process.kill(pid, "SIGKILL"); } catch {}
  }
  fs.rmSync(b.dir, { recursive: true, force: true });
}

function readBody(req) {
  return new Promise((resolve) => {
    const parts = [];
    req.on("data", (d) => parts.push(d));
    req.on("end", () => resolve(Buffer.concat(parts)));
  });
}

// The first part of a multipart/form-data body named "file".
function filePart(body, contentType) {
  const m = /boundary=([^;]+)/.exec(contentType || "");
  if (!m) return null;
  const delim = Buffer.from(`--${m[1]}`);
  let at = body.indexOf(delim);
  while (at >= 0) {
    const headEnd = body.indexOf("\r\n\r\n", at);
    if (headEnd < 0) return null;
    const next = body.indexOf(Buffer.from(`\r\n--${m[1]}`), headEnd);
    if (next < 0) return null;
    if (/name="file"/.test(body.subarray(at, headEnd).toString())) return body.subarray(headEnd + 4, next);
    at = next + 2;
  }
  return null;
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, "http://x");
  const body = await readBody(req);
  if (url.pathname === "/_shutdown") {
    res.end("bye");
    for (const b of boxes.values()) killBox(b);
    fs.rmSync(base, { recursive: true, force: true });
    setImmediate(() => process.exit(0));
    return;
  }
  if (url.pathname === "/_fake/state") return send(res, 200, { ...state, live: [...boxes.keys()] });
  if (url.pathname === "/_fake/config") { Object.assign(config, JSON.parse(body)); return send(res, 200, config); }
  state.requests.push(`${req.method} ${url.pathname}`);
  if (req.headers.authorization !== `Bearer ${KEY}`) return fail(res, 401, "Unauthorized");
  if (url.pathname === "/sandbox" && req.method === "POST") {
    const id = crypto.randomUUID();
    const dir = fs.mkdtempSync(path.join(base, "box-"));
    fs.mkdirSync(dir + "/home");
    fs.mkdirSync(dir + "/bg");
    const params = body.length ? JSON.parse(body) : {};
    boxes.set(id, { id, dir, children: new Set(), params, startAt: config.startAfter >= 0 ? Date.now() + config.startAfter : null });
    state.created.push({ id, params });
    return send(res, 200, { id, state: "creating", params });
  }
  let m = url.pathname.match(/^\/sandbox\/([^/]+)$/);
  if (m) {
    const b = boxes.get(m[1]);
    if (!b) return fail(res, 404, `Sandbox with ID ${m[1]} not found`);
    if (req.method === "GET") return send(res, 200, { id: b.id, state: started(b) ? "started" : "creating" });
    if (req.method === "DELETE") {
      boxes.delete(b.id);
      state.deleted.push(b.id);
      killBox(b);
      res.writeHead(200);
      return res.end();
    }
    return fail(res, 405, "Method not allowed");
  }
  m = url.pathname.match(/^\/toolbox\/([^/]+)\/toolbox\/(process\/execute|files\/download|files\/upload|files\/info)$/);
  if (!m) return fail(res, 404, `Cannot ${req.method} ${url.pathname}`);
  const b = boxes.get(m[1]);
  if (!b) return fail(res, 404, `Sandbox with ID ${m[1]} not found`);
  if (!started(b)) return fail(res, 400, "Sandbox is not running");
  const what = m[2];
  if (what === "process/execute" && req.method === "POST") {
    const { command, cwd, timeout } = JSON.parse(body);
    const chunks = [];
    const child = spawn("timeout", [String(timeout || 1800), "sh", "-c", mapPath(b, command)], {
      cwd: mapPath(b, cwd || "/home/daytona"), detached: true, stdio: ["ignore", "pipe", "pipe"],
      env: { PATH: process.env.PATH, HOME: b.dir + "/home", LANG: "C.UTF-8" },
    });
    b.children.add(child);
    child.stdout.on("data", (d) => chunks.push(d));
    child.stderr.on("data", (d) => chunks.push(d));
    child.on("error", (e) => fail(res, 500, String(e)));
    child.on("close", (code) => {
      b.children.delete(child);
      send(res, 200, { exitCode: code === null ? 137 : code, result: Buffer.concat(chunks).toString("utf8") });
    });
    return;
  }
  const p = mapPath(b, url.searchParams.get("path") || "");
  if (what === "files/download" && req.method === "GET") {
    if (!fs.existsSync(p) || !fs.statSync(p).isFile()) return fail(res, 404, "file not found");
    res.writeHead(200, { "Content-Type": "application/octet-stream" });
    return res.end(fs.readFileSync(p));
  }
  if (what === "files/upload" && req.method === "POST") {
    const data = filePart(body, req.headers["content-type"]);
    if (!data) return fail(res, 400, "no file in the multipart body");
    try { fs.writeFileSync(p, data); } catch (e) { return fail(res, 400, String(e)); }
    res.writeHead(200);
    return res.end();
  }
  if (what === "files/info" && req.method === "GET") {
    if (!fs.existsSync(p)) return fail(res, 404, "file not found");
    const st = fs.statSync(p);
    return send(res, 200, { name: path.basename(p), isDir: st.isDirectory(), size: st.size, modTime: st.mtime.toISOString() });
  }
  return fail(res, 405, "Method not allowed");
});

for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"]) {
  process.on(sig, () => {
    for (const x of boxes.values()) killBox(x);
    fs.rmSync(base, { recursive: true, force: true });
    process.exit(0);
  });
}
server.listen(0, "127.0.0.1", () => process.stdout.write(`PORT ${server.address().port}\n`));
const parent = Number(opt("--parent", 0));
if (parent) {
  setInterval(() => {
    try { process.kill(parent, 0); } catch {
      for (const b of boxes.values()) killBox(b);
      fs.rmSync(base, { recursive: true, force: true });
      process.exit(0);
    }
  }, 500).unref();
}
