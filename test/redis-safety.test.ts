/**
 * The Redis a fleet is pointed at, when it is not the one it should be: a password never shows in
 * any message, a wrong one (or a certificate problem) is named in one line, a server that accepts
 * TCP and never answers fails every command within the connect timeout, a `rediss://` Redis is
 * reached with the CA of `--redis-ca`, and a Redis that may evict keys (maxmemory-policy other
 * than noeviction) is refused before any work. Every server here is this test's own redis-server.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { redactUrl } from "../src/runtime/redis.js";
import { cliEntry, repoRoot, runMaskfleet, scratchDir, tinyModels, until, type CliResult } from "./helpers.js";
import { freePort, startRedisServer, type RedisServer } from "./scenarios/redis-server.js";

const photo = join(repoRoot, "samples", "photos", "coffee.jpg");
const exec = promisify(execFile);

/** stderr is exactly one `maskfleet: ...` line: no stack, no ioredis "Unhandled error event". */
function assertOneLine(res: CliResult, label: string): string {
  const lines = res.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `${label}: ${res.stderr}`);
  assert.match(lines[0] as string, /^maskfleet: /, label);
  assert.doesNotMatch(res.stderr, /Unhandled error event|\n\s+at /, label);
  return lines[0] as string;
}

/** Runs at most `n` at once (2 cores: eight CLI processes at once would measure the machine). */
async function inBatches<T, R>(items: readonly T[], n: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let at = 0; at < items.length; at += n) out.push(...(await Promise.all(items.slice(at, at + n).map(fn))));
  return out;
}

describe("redactUrl", () => {
  it("hides user and password, keeps the rest", () => {
    assert.equal(redactUrl("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    assert.equal(redactUrl("redis://127.0.0.1:6379/3"), "redis://127.0.0.1:6379/3");
    assert.equal(redactUrl("redis://:s3cret@10.0.0.5:6380/2"), "redis://:***@10.0.0.5:6380/2");
    assert.equal(redactUrl("rediss://fleet:s3cret@redis.example.com:6380"), "rediss://***:***@redis.example.com:6380");
    assert.equal(redactUrl("redis://fleet@h:1"), "redis://***@h:1");
    // A password with "@", ":" or "/" written as it is.
    assert.equal(redactUrl("redis://u:p@ss:w/rd@h:1/0"), "redis://***:***@h:1/0");
    assert.equal(redactUrl("redis://h:1/0?password=s3cret&db=2"), "redis://h:1/0?password=***&db=2");
    assert.equal(redactUrl("redis://h:1?username=u&password=p"), "redis://h:1?username=***&password=***");
  });
});

describe("Redis setups that are refused or named", () => {
  let dir: string;
  before(async () => {
    dir = await scratchDir("redis-safety");
  });

  describe("a password", () => {
    let server: RedisServer;
    const secret = "Tr0ub4dor-s3cret";
    before(async () => {
      server = await startRedisServer("redis-safety-auth", { persistence: false, password: secret });
    });
    after(() => server.close());

    const wrongUrl = () => `redis://:wrong-${secret}@127.0.0.1:${server.port}`;
    const out = () => ["--out", join(dir, "out")];

    it("a wrong password is WRONGPASS in one line, the password never shown (flag and MASKFLEET_REDIS_URL)", async () => {
      const commands: { args: string[]; env?: NodeJS.ProcessEnv }[] = [];
      for (const cmd of [["status"], ["status", "r1"], ["report", "r1"], ["retry", "r1"], ["clean", "r1"], ["enqueue", photo, "--run", "r1", ...out()], ["worker", "finalize"]]) {
        commands.push({ args: [...cmd, "--redis", wrongUrl()] });
        commands.push({ args: cmd, env: { MASKFLEET_REDIS_URL: wrongUrl() } });
      }
      const results = await inBatches(commands, 4, (c) => runMaskfleet(c.args, { env: c.env, timeoutMs: 60_000 }));
      results.forEach((res, i) => {
        const c = commands[i] as (typeof commands)[0];
        const label = `${c.args.slice(0, 2).join(" ")}${c.env ? " (env)" : ""}`;
        assert.equal(res.code, 1, `${label}: ${res.stderr}`);
        const line = assertOneLine(res, label);
        assert.equal(line, `maskfleet: cannot reach Redis at redis://:***@127.0.0.1:${server.port}: WRONGPASS invalid username-password pair or user is disabled.`, label);
        assert.ok(!(res.stdout + res.stderr).includes(secret), label);
      });
    });

    it("no password is NOAUTH in one line, saying where the password goes; the right one works", async () => {
      const none = await runMaskfleet(["status", "--redis", `redis://127.0.0.1:${server.port}`]);
      assert.equal(none.code, 1);
      const line = assertOneLine(none, "no password");
      assert.match(
        line,
        new RegExp(`^maskfleet: cannot reach Redis at redis://127\\.0\\.0\\.1:${server.port}: NOAUTH .*\\(a password goes in the URL: redis://:PASSWORD@host:port\\)$`),
      );
      const right = await runMaskfleet(["status", "--redis", server.url]);
      assert.equal(right.code, 0, right.stderr);
      assert.equal(right.stdout, "no runs\n");
    });

    it("help does not print MASKFLEET_REDIS_URL's password as a default", async () => {
      for (const cmd of ["status", "report", "retry", "clean"]) {
        const res = await runMaskfleet([cmd, "--help"], { env: { MASKFLEET_REDIS_URL: wrongUrl() } });
        assert.equal(res.code, 0);
        assert.match(res.stdout, /--redis <url>/);
        assert.ok(!res.stdout.includes(secret), `${cmd} --help: ${res.stdout}`);
      }
    });
  });

  it("a server that accepts TCP and never answers: every command is one line and exit 1 within the connect timeout", async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createServer((s) => {
      sockets.add(s);
      s.on("error", () => undefined);
    });
    const port = await freePort();
    await new Promise<void>((resolve) => silent.listen(port, "127.0.0.1", resolve));
    try {
      const url = `redis://:pw@127.0.0.1:${port}`;
      const models = await tinyModels();
      const commands = [
        ["status"],
        ["status", "r1"],
        ["report", "r1"],
        ["retry", "r1"],
        ["clean", "r1"],
        ["enqueue", photo, "--run", "r1", "--out", join(dir, "out")],
        ["worker", "finalize"],
        ["run", photo, "--run", "r1", "--sam-model", models.sam, "--detector-model", models.face, "--out", join(dir, "out"), "--no-progress"],
      ];
      const results = await inBatches(commands, 4, async (args) => {
        const started = Date.now();
        const res = await runMaskfleet([...args, "--redis", url], { timeoutMs: 40_000 });
        return { res, ms: Date.now() - started };
      });
      results.forEach(({ res, ms }, i) => {
        const label = (commands[i] as string[]).slice(0, 2).join(" ");
        assert.equal(res.code, 1, `${label}: ${res.stderr}`);
        const line = assertOneLine(res, label);
        assert.equal(line, `maskfleet: cannot reach Redis at redis://:***@127.0.0.1:${port}: no reply within 5 s (is it a Redis server? a TLS one needs rediss://)`, label);
        // The connect timeout (5 s) plus starting node and tsx, four at once on two cores.
        assert.ok(ms < 20_000, `${label} took ${ms} ms`);
      });
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  describe("maxmemory-policy", () => {
    let lru: RedisServer;
    let lruNoConfig: RedisServer;
    before(async () => {
      lru = await startRedisServer("redis-safety-lru", { persistence: false, maxmemoryPolicy: "allkeys-lru" });
      lruNoConfig = await startRedisServer("redis-safety-lru-noconfig", { persistence: false, maxmemoryPolicy: "volatile-ttl", extraArgs: ["--rename-command", "CONFIG", ""] });
    });
    after(async () => {
      await lru.close();
      await lruNoConfig.close();
    });

    it("a Redis that may evict is refused in one line naming the setting and the fix; nothing is written", async () => {
      const expected = (url: string, policy: string) =>
        `maskfleet: Redis at ${url} has maxmemory-policy ${policy}: it may evict queued jobs and run state; set it to noeviction (CONFIG SET maxmemory-policy noeviction, or maxmemory-policy noeviction in redis.conf)`;
      const cases = [
        { server: lru, policy: "allkeys-lru", args: ["enqueue", photo, "--run", "r1", "--out", join(dir, "out")] },
        { server: lru, policy: "allkeys-lru", args: ["status"] },
        { server: lru, policy: "allkeys-lru", args: ["worker", "finalize"] },
        { server: lru, policy: "allkeys-lru", args: ["clean", "r1"] },
        // CONFIG renamed away: read from INFO memory instead.
        { server: lruNoConfig, policy: "volatile-ttl", args: ["enqueue", photo, "--run", "r1", "--out", join(dir, "out")] },
        { server: lruNoConfig, policy: "volatile-ttl", args: ["report", "r1"] },
      ];
      const results = await inBatches(cases, 3, (c) => runMaskfleet([...c.args, "--redis", c.server.url], { timeoutMs: 60_000 }));
      results.forEach((res, i) => {
        const c = cases[i] as (typeof cases)[0];
        const label = `${c.args[0]} (${c.policy})`;
        assert.equal(res.code, 1, `${label}: ${res.stderr}`);
        assert.equal(assertOneLine(res, label), expected(c.server.url, c.policy), label);
      });
      for (const server of [lru, lruNoConfig]) {
        const r = new Redis(server.url);
        assert.deepEqual(await r.keys("*"), []);
        r.disconnect();
      }
    });

    it("noeviction (Redis' default) is fine", async () => {
      const ok = await startRedisServer("redis-safety-noeviction", { persistence: false });
      try {
        const res = await runMaskfleet(["status", "--redis", ok.url]);
        assert.equal(res.code, 0, res.stderr);
        assert.equal(res.stdout, "no runs\n");
      } finally {
        await ok.close();
      }
    });
  });

  describe("TLS (rediss://) and --redis-ca", () => {
    let server: RedisServer;
    let tlsDir: string;
    let ca: string;

    before(async () => {
      tlsDir = await scratchDir("redis-safety-tls");
      ca = join(tlsDir, "ca.crt");
      const openssl = (...args: string[]) => exec("openssl", args, { cwd: tlsDir });
      await openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=maskfleet test CA");
      await openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1");
      await writeFile(join(tlsDir, "san.cnf"), "subjectAltName=IP:127.0.0.1\n");
      await openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.cnf");
      server = await startRedisServer("redis-safety-tls-server", {
        persistence: false,
        tls: { certFile: join(tlsDir, "server.crt"), keyFile: join(tlsDir, "server.key"), caFile: ca },
      });
    });
    after(() => server.close());

    it("with --redis-ca the commands connect; without it the certificate problem is one line", async () => {
      assert.match(server.url, /^rediss:\/\//);
      const withCa = await runMaskfleet(["status", "--redis", server.url, "--redis-ca", ca]);
      assert.equal(withCa.code, 0, withCa.stderr);
      assert.equal(withCa.stdout, "no runs\n");
      const noCa = await runMaskfleet(["status", "--redis", server.url]);
      assert.equal(noCa.code, 1);
      assert.equal(
        assertOneLine(noCa, "no CA"),
        `maskfleet: cannot reach Redis at ${server.url}: self-signed certificate in certificate chain (a certificate problem: give the CA that signed the server's certificate with --redis-ca)`,
      );
      // Enqueue through connect() (not only the probe): the flag, and the config key from the environment.
      const enq = await runMaskfleet(["enqueue", photo, "--run", "tls1", "--out", join(dir, "out"), "--redis", server.url, "--redis-ca", ca]);
      assert.equal(enq.code, 0, enq.stderr);
      assert.equal(enq.stdout, "tls1\n");
      const enqEnv = await runMaskfleet(["enqueue", photo, "--run", "tls2", "--out", join(dir, "out"), "--redis", server.url], { env: { MASKFLEET_REDIS_CA: ca } });
      assert.equal(enqEnv.code, 0, enqEnv.stderr);
      const report = await runMaskfleet(["report", "tls2", "--redis", server.url, "--redis-ca", ca]);
      assert.equal(report.code, 0, report.stderr);
      assert.equal((JSON.parse(report.stdout) as { images: { total: number } }).images.total, 1);
    });

    it("a worker's fleet connects with the CA too", async () => {
      const probe = new Redis(server.url, { tls: { ca: await readFile(ca) } });
      const clients = async () => Number(/connected_clients:(\d+)/.exec(await probe.info("clients"))?.[1]);
      const before = await clients();
      const child = spawn(process.execPath, [cliEntry(), "worker", "finalize", "--redis", server.url, "--redis-ca", ca], {
        env: { ...process.env, MASKFLEET_LOG_LEVEL: "warn" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      try {
        await until("the worker started", () => /finalize worker \d+ started/.test(stderr), 30_000);
        // Its BullMQ connections are up (a worker without the CA would retry TLS for ever).
        await until("the worker's connections", async () => (await clients()) >= before + 2, 10_000);
      } finally {
        child.kill("SIGTERM");
        probe.disconnect(); // first: a failed assertion must not leave it reconnecting to a stopped server
      }
      assert.equal(await exited, 0, stderr);
      assert.doesNotMatch(stderr, /error|certificate/i);
    });

    it("a CA file that cannot be read, or a CA with a plain redis:// URL, is one line and exit 2", async () => {
      const missing = join(tlsDir, "no-such-ca.pem");
      for (const args of [
        ["status", "--redis", server.url, "--redis-ca", missing],
        ["report", "r1", "--redis", server.url, "--redis-ca", missing],
        ["enqueue", photo, "--run", "r1", "--out", join(dir, "out"), "--redis", server.url, "--redis-ca", missing],
      ]) {
        const res = await runMaskfleet(args);
        assert.equal(res.code, 2, res.stderr);
        assert.equal(assertOneLine(res, args[0] as string), `maskfleet: redisCa: cannot read ${missing}: ENOENT: no such file or directory, open '${missing}'`);
      }
      const plain = await runMaskfleet(["status", "--redis", "redis://:pw@127.0.0.1:1", "--redis-ca", ca]);
      assert.equal(plain.code, 2);
      assert.equal(assertOneLine(plain, "plain"), "maskfleet: redisCa: a CA bundle is for TLS; the Redis URL redis://:***@127.0.0.1:1 is plain (use rediss://)");
    });
  });
});
