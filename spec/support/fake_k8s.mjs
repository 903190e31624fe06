// A FAKE Kubernetes API server for spec/kubernetes_spec.lua — loopback only, no cluster.
//   node spec/support/fake_k8s.mjs --parent PID [--token T]   prints "PORT <n>"
//
// It implements only the surface moonbox.kubernetes_sandbox uses, in the real wire formats:
//   POST   /api/v1/namespaces/{ns}/pods          201 + the pod (409 AlreadyExists Status)
//   GET    /api/v1/namespaces/{ns}/pods/{name}   the pod; status Pending until `readyAfter` ms
//                                                (as configured when the pod was created) have
//                                                passed, then Running with podIP 127.0.0.1 and
//                                                condition Ready=True (404 NotFound Status)
//   DELETE /api/v1/namespaces/{ns}/pods/{name}   200 + the pod; records the DeleteOptions
//   GET    /api/v1/namespaces/{ns}/pods/{name}/exec?command=..&stdout=true&stderr=true (WebSocket,
//          v4.channel.k8s.io): runs the argv for real; output as binary messages whose first byte
//          is the channel (1 stdout, 2 stderr); channel 3 then carries a metav1.Status (Success, or
//          Failure/NonZeroExitCode with details.causes[{reason: "ExitCode", message: "<n>"}]).
// Every API call needs "Authorization: Bearer <token>" (401 Unauthorized Status otherwise).
// Each pod gets a temporary directory standing in for its filesystem: in every argv element,
// "/workspace" and "/tmp/moonbox-bg" are rewritten to that pod's directories (the only liberty
// the fake takes). The in-pod agent of http mode is served on the same port: GET /health,
// POST /exec {command, timeout_seconds} -> {output, exit_code, truncated}, checked against the
// pod's SANDBOX_EXEC_TOKEN (header X-Sandbox-Token).
// With --tls DIR the same surface is served over HTTPS/WSS and requires a client certificate.
// Test controls: GET /_fake/state (pods, deleted names, delete bodies, requests), POST /_fake/config
// {readyAfter, phase}, GET /_shutdown.
import http from "node:http";
import https from "node:https";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { accept } from "./ws_server.mjs";

const argv = process.argv;
const opt = (name, dflt) => (argv.indexOf(name) > 0 ? argv[argv.indexOf(name) + 1] : dflt);
const TOKEN = opt("--token", "fake-token");
// --tls DIR: HTTPS with DIR/server.pem + DIR/server.key, client certificates signed by DIR/ca.pem
// required at the handshake (a verified certificate then authenticates like a token).
const TLS_DIR = opt("--tls", null);
const base = fs.mkdtempSync(path.join(os.tmpdir(), "fake-k8s-"));
const config = { readyAfter: 300, phase: null };
const pods = new Map(); // ns/name -> { pod, created, dir, children:Set }
const state = { deleted: [], deleteBodies: [], requests: [] };

function status(res, code, reason, message) {
  res.writeHead(code, { "Content-Type": "application/json" });
  res.end(JSON.stringify({ kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code }));
}
function sendJSON(res, code, obj) {
  res.writeHead(code, { "Content-Type": "application/json" });
  res.end(JSON.stringify(obj));
}
const authorized = (req) =>
  req.headers.authorization === `Bearer ${TOKEN}` || (TLS_DIR !== null && req.socket.authorized === true);

function mapArg(pod, s) {
  return s.replace(/\/tmp\/moonbox-bg|\/workspace/g, (m) => (m === "/workspace" ? pod.dir + "/workspace" : pod.dir + "/bg"));
}

function podStatus(p) {
  const ready = p.readyAt !== null && Date.now() >= p.readyAt;
  if (p.phase) return { phase: p.phase, message: "fake: forced phase" };
  return ready
    ? { phase: "Running", podIP: "127.0.0.1", conditions: [{ type: "Ready", status: "True" }] }
    : { phase: "Pending", conditions: [{ type: "Ready", status: "False" }] };
}

function killPod(p) {
  for (const c of p.children) { try { process.kill(-c.pid, "SIGKILL"); } catch {} }
  const bg = p.dir + "/bg";
  for (const f of fs.existsSync(bg) ? fs.readdirSync(bg) : []) {
    if (!f.endsWith(".pid")) continue;
    const pid = Number(fs.readFileSync(path.join(bg, f), "utf8"));
    try { process.kill(-pid, "SIGKILL"); } catch {}
    try { process.kill(pid, "SIGKILL"); } catch {}
  }
  fs.rmSync(p.dir, { recursive: true, force: true });
}

function run(p, args, onData, onExit) {
  const child = spawn(args[0], args.slice(1), {
    cwd: p.dir + "/workspace", detached: true, stdio: ["ignore", "pipe", "pipe"],
    env: { PATH: process.env.PATH, HOME: p.dir + "/workspace", LANG: "C.UTF-8" },
  });
  p.children.add(child);
  child.stdout.on("data", (d) => onData(1, d));
  child.stderr.on("data", (d) => onData(2, d));
  child.on("error", (e) => { onData(2, Buffer.from(String(e))); });
  child.on("close", (code, signal) => {
    p.children.delete(child);
    onExit(code === null ? 128 + (os.constants.signals[signal] || 9) : code);
  });
  return child;
}

function readBody(req) {
  return new Promise((resolve) => {
    const parts = [];
    req.on("data", (d) => parts.push(d));
    req.on("end", () => resolve(Buffer.concat(parts).toString()));
  });
}

const POD_RE = /^\/api\/v1\/namespaces\/([^/]+)\/pods(?:\/([^/]+))?(\/exec)?$/;

async function handle(req, res) {
  const url = new URL(req.url, "http://x");
  const body = await readBody(req);
  if (url.pathname === "/_shutdown") {
    res.end("bye");
    for (const p of pods.values()) killPod(p);
    fs.rmSync(base, { recursive: true, force: true });
    setImmediate(() => process.exit(0));
    return;
  }
  if (url.pathname === "/_fake/state") {
    return sendJSON(res, 200, { pods: [...pods.values()].map((p) => p.pod), ...state });
  }
  if (url.pathname === "/_fake/config") {
    Object.assign(config, JSON.parse(body));
    return sendJSON(res, 200, config);
  }
  if (url.pathname === "/health") return sendJSON(res, 200, { ok: true });
  if (url.pathname === "/exec" && req.method === "POST") {
    const token = req.headers["x-sandbox-token"];
    const p = [...pods.values()].find((x) =>
      (x.pod.spec.containers[0].env || []).some((e) => e.name === "SANDBOX_EXEC_TOKEN" && e.value === token));
    if (!token || !p) return sendJSON(res, 401, { detail: "invalid token" });
    const { command, timeout_seconds } = JSON.parse(body);
    const chunks = [];
    run(p, ["timeout", String(timeout_seconds || 1800), "sh", "-c", mapArg(p, command)],
      (_, d) => chunks.push(d),
      (code) => {
        let out = Buffer.concat(chunks);
        const truncated = out.length > 100000;
        if (truncated) out = out.subarray(0, 100000);
        sendJSON(res, 200, { output: out.toString("utf8"), exit_code: code, truncated });
      });
    return;
  }
  state.requests.push(`${req.method} ${url.pathname}`);
  if (!authorized(req)) return status(res, 401, "Unauthorized", "Unauthorized");
  const m = url.pathname.match(POD_RE);
  if (!m || m[3]) return status(res, 404, "NotFound", "the server could not find the requested resource");
  const ns = decodeURIComponent(m[1]);
  if (!m[2] && req.method === "POST") {
    let pod;
    try { pod = JSON.parse(body); } catch { return status(res, 400, "BadRequest", "invalid JSON"); }
    const name = pod.metadata && pod.metadata.name;
    if (!name) return status(res, 422, "Invalid", "Pod is invalid: metadata.name: Required value");
    if (pods.has(`${ns}/${name}`)) return status(res, 409, "AlreadyExists", `pods "${name}" already exists`);
    const dir = fs.mkdtempSync(path.join(base, `${name}-`));
    fs.mkdirSync(dir + "/workspace");
    fs.mkdirSync(dir + "/bg");
    pod.metadata.namespace = ns;
    pod.metadata.uid = `fake-${Date.now()}`;
    pods.set(`${ns}/${name}`, {
      pod, dir, children: new Set(), phase: config.phase,
      readyAt: config.readyAfter >= 0 ? Date.now() + config.readyAfter : null,
    });
    return sendJSON(res, 201, { ...pod, status: { phase: "Pending" } });
  }
  const key = `${ns}/${decodeURIComponent(m[2] || "")}`;
  const p = pods.get(key);
  if (!p) return status(res, 404, "NotFound", `pods "${m[2]}" not found`);
  if (req.method === "GET") return sendJSON(res, 200, { ...p.pod, status: podStatus(p) });
  if (req.method === "DELETE") {
    pods.delete(key);
    state.deleted.push(p.pod.metadata.name);
    state.deleteBodies.push(body ? JSON.parse(body) : null);
    killPod(p);
    return sendJSON(res, 200, { ...p.pod, status: { phase: "Running" } });
  }
  return status(res, 405, "MethodNotAllowed", "method not allowed");
}

const server = TLS_DIR
  ? https.createServer({
    key: fs.readFileSync(TLS_DIR + "/server.key"), cert: fs.readFileSync(TLS_DIR + "/server.pem"),
    ca: fs.readFileSync(TLS_DIR + "/ca.pem"), requestCert: true, rejectUnauthorized: true,
  }, handle)
  : http.createServer(handle);

server.on("upgrade", (req, socket) => {
  const url = new URL(req.url, "http://x");
  state.requests.push(`EXEC ${url.pathname}`);
  const reject = (code, reason, message) => {
    const b = JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", message, reason, code });
    socket.end(`HTTP/1.1 ${code} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(b)}\r\n\r\n${b}`);
  };
  if (!authorized(req)) return reject(401, "Unauthorized", "Unauthorized");
  const m = url.pathname.match(POD_RE);
  if (!m || !m[2] || !m[3]) return reject(404, "NotFound", "not found");
  const p = pods.get(`${decodeURIComponent(m[1])}/${decodeURIComponent(m[2])}`);
  if (!p) return reject(404, "NotFound", `pods "${m[2]}" not found`);
  if (podStatus(p).phase !== "Running") return reject(400, "BadRequest", "pod is not running");
  const args = url.searchParams.getAll("command").map((a) => mapArg(p, a));
  if (!args.length) return reject(400, "BadRequest", "you must specify at least 1 command");
  const conn = accept(req, socket, (ps) => (ps.includes("v4.channel.k8s.io") ? "v4.channel.k8s.io" : null));
  if (!conn) return;
  let done = false;
  const child = run(p, args,
    (ch, d) => { if (!done) conn.send(Buffer.concat([Buffer.from([ch]), d])); },
    (code) => {
      if (done) return;
      done = true;
      const st = code === 0
        ? { metadata: {}, status: "Success" }
        : { metadata: {}, status: "Failure",
            message: `command terminated with non-zero exit code: error executing command [${args.join(" ")}], exit code ${code}`,
            reason: "NonZeroExitCode", details: { causes: [{ reason: "ExitCode", message: String(code) }] } };
      conn.send(Buffer.concat([Buffer.from([3]), Buffer.from(JSON.stringify(st))]));
      conn.close(1000, "");
    });
  conn.send(Buffer.from([1])); // the real server opens each stream with an empty frame; the client must cope
  conn.onClose(() => {
    if (!done) { done = true; try { process.kill(-child.pid, "SIGKILL"); } catch {} }
  });
});

for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"]) {
  process.on(sig, () => {
    for (const x of pods.values()) killPod(x);
    fs.rmSync(base, { recursive: true, force: true });
    process.exit(0);
  });
}
server.listen(0, "127.0.0.1", () => process.stdout.write(`PORT ${server.address().port}\n`));
const parent = Number(opt("--parent", 0));
if (parent) {
  setInterval(() => {
    try { process.kill(parent, 0); } catch {
      for (const p of pods.values()) killPod(p);
      fs.rmSync(base, { recursive: true, force: true });
      process.exit(0);
    }
  }, 500).unref();
}
