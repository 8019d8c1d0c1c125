/**
 * A throw-away redis-server for tests that crash and restart Redis (test/chaos.test.ts), so the
 * developer's Redis on 6379 is never disturbed: 127.0.0.1 on a free port, its own folder under
 * test/.tmp/, and persistence that survives a crash (append-only file, fsync on every write, so
 * every acknowledged write is on disk; no RDB snapshots).
 *
 * Elsewhere than 127.0.0.1: `host` binds it to another address (and the URL names it), and
 * `launcher` starts it through a command prefix, e.g. `ip netns exec <ns>` to run it inside a
 * network namespace (test/scenarios/netns.ts; the prefix must exec, so the child is redis-server).
 *
 * `stop()` is SIGKILL: a crash, no shutdown hook, no final save; what the AOF holds is what comes
 * back. `restart()` starts it again on the SAME port (clients reconnect to the URL they know).
 *
 * Options for the Redis setups maskfleet must refuse or handle (test/redis-safety.test.ts): a
 * password, a maxmemory-policy, TLS, and any further redis-server arguments.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { Redis, type RedisOptions } from "ioredis";
import { scratchDir } from "../support/scratch.js";

export const redisServerBinary = "/usr/bin/redis-server";

export interface RedisServer {
  port: number;
  /** redis://127.0.0.1:PORT (or the host it is bound to; with a password redis://:PASSWORD@...; with TLS rediss://) */
  url: string;
  dir: string;
  /** Whether the server process is up. */
  readonly running: boolean;
  /** SIGKILL (a crash) and wait for the process to be gone; a no-op when stopped. */
  stop(): Promise<void>;
  /** stop(), then start again on the same port with the same data folder; resolves once it answers PING. */
  restart(): Promise<void>;
  /** stop() and remove the data folder. */
  close(): Promise<void>;
}

/** A port nothing listens on right now (the kernel's pick). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => resolve());
  });
  const address = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (!address || typeof address === "string") throw new Error("no port");
  return address.port;
}

async function waitForPing(url: string, child: ChildProcess, log: () => string, timeoutMs = 10_000, clientOptions: RedisOptions = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`redis-server exited (${child.exitCode ?? child.signalCode}): ${log()}`);
    const probe = new Redis(url, { ...clientOptions, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
    probe.on("error", () => undefined);
    try {
      await probe.connect();
      // While the AOF is loaded Redis answers LOADING: not ready yet.
      if ((await probe.ping()) === "PONG") return;
    } catch {
      // not up yet
    } finally {
      probe.disconnect();
    }
    if (Date.now() > deadline) throw new Error(`redis-server on ${url} did not answer PING within ${timeoutMs} ms: ${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface RedisServerOptions {
  /** The one address it binds to and clients connect to (default 127.0.0.1). */
  host?: string;
  /** Default: a free port on 127.0.0.1. */
  port?: number;
  /** A command prefix that execs redis-server, e.g. ["ip", "netns", "exec", "ns1"]. */
  launcher?: string[];
  /** false: no append-only file (a benchmark's Redis, where fsync would be measured too). Default true. */
  persistence?: boolean;
  /** requirepass: clients must authenticate; `url` then carries it (redis://:PASSWORD@host:port). */
  password?: string;
  /** maxmemory-policy (Redis' own default is noeviction). */
  maxmemoryPolicy?: string;
  /**
   * TLS only (the plain port is off): the server's certificate and key, and the CA that signed
   * them (clients need it: `ca`); `url` is then rediss://. Client certificates are not asked for.
   */
  tls?: { certFile: string; keyFile: string; caFile: string };
  /** More redis-server arguments, e.g. ["--rename-command", "CONFIG", ""]. */
  extraArgs?: string[];
}

/** Starts a redis-server under test/.tmp/<name>/ (emptied first) on a free port. */
export async function startRedisServer(name = "redis-server", o: RedisServerOptions = {}): Promise<RedisServer> {
  const dir = await scratchDir(name);
  const host = o.host ?? "127.0.0.1";
  const port = o.port ?? (await freePort());
  const url = `${o.tls ? "rediss" : "redis"}://${o.password ? `:${encodeURIComponent(o.password)}@` : ""}${host}:${port}`;
  const clientOptions: RedisOptions = o.tls ? { tls: { ca: await readFile(o.tls.caFile) } } : {};
  const [command = redisServerBinary, ...prefix] = [...(o.launcher ?? []), redisServerBinary];
  let child: ChildProcess | undefined;
  let output = "";

  const start = async () => {
    output = "";
    const c = spawn(
      command,
      [
        ...prefix,
        ...(o.tls
          ? [
              "--port",
              "0",
              "--tls-port",
              String(port),
              "--tls-cert-file",
              o.tls.certFile,
              "--tls-key-file",
              o.tls.keyFile,
              "--tls-ca-cert-file",
              o.tls.caFile,
              "--tls-auth-clients",
              "no",
            ]
          : ["--port", String(port)]),
        "--bind",
        host,
        "--dir",
        dir,
        ...(o.persistence === false ? ["--appendonly", "no"] : ["--appendonly", "yes", "--appendfsync", "always"]),
        "--save",
        "",
        "--daemonize",
        "no",
        // Protected mode refuses every client but loopback ones when there is no password; bound to
        // another address (a test bridge), the clients come from that network.
        "--protected-mode",
        host === "127.0.0.1" ? "yes" : "no",
        "--loglevel",
        "warning",
        ...(o.password !== undefined ? ["--requirepass", o.password] : []),
        ...(o.maxmemoryPolicy !== undefined ? ["--maxmemory-policy", o.maxmemoryPolicy] : []),
        ...(o.extraArgs ?? []),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const keep = (d: Buffer) => void (output = (output + d.toString()).slice(-4000));
    c.stdout?.on("data", keep);
    c.stderr?.on("data", keep);
    child = c;
    await waitForPing(url, c, () => output, undefined, clientOptions);
  };

  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once("exit", () => resolve());
      c.kill("SIGKILL");
    });
  };

  await start();
  return {
    port,
    url,
    dir,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    stop,
    async restart() {
      await stop();
      await start();
    },
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
