/**
 * Shared test plumbing: scratch folders, a private Redis (one database per test file), the tiny
 * models, the CLI as a child process, waiting for a condition, file listings, metrics parsing.
 */
import { execFile, spawn } from "node:child_process";
import { mkdir, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { outPrefixOf } from "../src/pipeline/jobs.js";
import { RunState, type ImageRecord } from "../src/runs/run-state.js";

export const repoRoot = resolve(import.meta.dirname, "..");

// The maskfleet processes tests start (they inherit this environment) serve their metrics on a
// free loopback port: never 9464, which a developer's Prometheus may scrape, nor all interfaces.
process.env.MASKFLEET_METRICS_PORT ??= "0";
process.env.MASKFLEET_METRICS_HOST ??= "127.0.0.1";

export async function scratchDir(name: string): Promise<string> {
  const dir = join(repoRoot, "test", ".tmp", name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  return dir;
}

let privateRedis: Promise<string> | undefined;

/**
 * One redis-server per test process, on a free loopback port, persistence off: tests never touch
 * the developer's Redis on 6379. The child neither holds the test process open (stdio ignored,
 * unref'd) nor outlives it (killed on 'exit').
 */
function privateRedisUrl(): Promise<string> {
  privateRedis ??= (async () => {
    // Imported here: redis-server.ts imports this module.
    const { freePort, redisServerBinary } = await import("./scenarios/redis-server.js");
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", tmpdir(), "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"];
    const child = spawn(redisServerBinary, args, { stdio: "ignore" });
    child.unref();
    process.once("exit", () => child.kill("SIGKILL"));
    let exited: string | undefined;
    child.once("exit", (code, signal) => (exited = String(code ?? signal)));
    child.once("error", (err) => (exited = err.message));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (exited !== undefined) throw new Error(`private redis-server on port ${port} exited (${exited})`);
      const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
      probe.on("error", () => undefined);
      try {
        await probe.connect();
        if ((await probe.ping()) === "PONG") return url;
      } catch {
        // not up yet
      } finally {
        probe.disconnect();
      }
      if (Date.now() > deadline) throw new Error(`private redis-server on ${url} did not answer PING within 10 s`);
      await sleep(50);
    }
  })();
  return privateRedis;
}

/** Each test file takes its own database (1-15) of this process's private Redis; it is emptied first. */
export async function freshRedis(db: number): Promise<string> {
  const url = `${await privateRedisUrl()}/${db}`;
  const r = new Redis(url);
  await r.flushdb();
  r.disconnect();
  return url;
}

let models: Promise<{ sam: string; face: string }> | undefined;

/** Builds the tiny ONNX graphs once per process (real names and shapes, see test/support/onnx/make-tiny-models.ts). */
export function tinyModels(): Promise<{ sam: string; face: string }> {
  models ??= (async () => {
    const { makeTinyModels } = await import("./support/onnx/make-tiny-models.js");
    const dir = join(repoRoot, "test", ".tmp", `models-${process.pid}`);
    await mkdir(dir, { recursive: true });
    await makeTinyModels(dir);
    return { sam: join(dir, "sam-tiny"), face: join(dir, "face-tiny") };
  })();
  return models;
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The sample lines of a Prometheus text exposition. */
export function samples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    out.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return out;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

const exec = promisify(execFile);

/** Runs `maskfleet ...args` (src/cli/main.ts through tsx) to its end; a non-zero exit is a result, not an error. */
export async function runMaskfleet(args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  try {
    const { stdout, stderr } = await exec(process.execPath, ["--import", "tsx", join(repoRoot, "src/cli/main.ts"), ...args], {
      cwd: o.cwd,
      env: { ...process.env, MASKFLEET_LOG_LEVEL: "warn", ...o.env },
      timeout: o.timeoutMs ?? 120_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `cond` every `intervalMs` until it holds; throws naming `what` after `timeoutMs`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Every file under `dir` with its modification time. */
export async function listFiles(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.set(path, (await stat(path)).mtimeMs);
  }
  return out;
}

/** Every key matching `pattern`, by SCAN (tests look at what a run left in their own Redis). */
export async function scanKeys(redis: Redis, pattern = "*"): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    cursor = next;
    for (const k of batch) keys.push(k);
  } while (cursor !== "0");
  return keys;
}

/** An image of a run as tests look at it: its state, and the name and output prefix it was enqueued with. */
export interface RunImage extends ImageRecord {
  name: string;
  outPrefix: string;
}

/**
 * A run's images by name. The run's state keeps no names of images that finished well (a million
 * of them would not fit its budget): names come from their manifests under `outDir` (a local
 * output folder), and from the failure records for the others.
 */
export async function runImages(redis: Redis, runId: string, outDir?: string): Promise<Map<string, RunImage>> {
  const names = new Map<string, string>();
  if (outDir) {
    for (const entry of await readdir(outDir, { withFileTypes: true }).catch(() => [])) {
      if (!entry.isDirectory()) continue;
      const manifest = await readFile(join(outDir, entry.name, "manifest.json"), "utf8").catch(() => undefined);
      if (!manifest) continue;
      const { imageId, name } = JSON.parse(manifest) as { imageId: string; name: string };
      names.set(imageId, name);
    }
  }
  const out = new Map<string, RunImage>();
  for (const record of await new RunState(redis).images(runId)) {
    const name = record.name ?? names.get(record.imageId);
    if (name === undefined) continue;
    out.set(name, { ...record, name, outPrefix: outPrefixOf(name, record.imageId) });
  }
  return out;
}
