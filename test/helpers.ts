/**
 * Shared test plumbing: scratch folders, a private Redis (one database per test file), the tiny
 * models, the CLI as a child process (the built dist/, rebuilt when src/ is newer), waiting for a
 * condition, file listings, metrics parsing.
 */
import { execFile, spawn, spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { mkdir, readdir, readFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { outPrefixOf } from "../src/pipeline/jobs.js";
import { RunState, type ImageRecord } from "../src/runs/run-state.js";
import type { Store } from "../src/storage/store.js";

import { repoRoot } from "./support/scratch.js";
import { freePort, redisServerBinary } from "./scenarios/redis-server.js";

export { repoRoot, scratchDir } from "./support/scratch.js";

// The maskfleet processes tests start (they inherit this environment) serve their metrics on a
// free loopback port: never 9464, which a developer's Prometheus may scrape, nor all interfaces.
process.env.MASKFLEET_METRICS_PORT ??= "0";
process.env.MASKFLEET_METRICS_HOST ??= "127.0.0.1";

let privateRedis: Promise<string> | undefined;

/**
 * One redis-server per test process, on a free loopback port, persistence off: tests never touch
 * the developer's Redis on 6379. The child neither holds the test process open (stdio ignored,
 * unref'd) nor outlives it (killed on 'exit').
 */
function privateRedisUrl(): Promise<string> {
  privateRedis ??= (async () => {
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

const distEntry = join(repoRoot, "dist", "cli", "main.js");
const buildDir = join(repoRoot, "test", ".tmp", "dist-build");
const buildLock = join(buildDir, "lock");
const buildStamp = join(buildDir, "stamp.json");
let distChecked: { error?: Error } | undefined;

/**
 * The CLI as users run it (package.json's bin, `node dist/cli/main.js`), built from the current
 * sources: spawn `process.execPath` with `[cliEntry(), ...args]`. The first call in a process
 * runs `npm run build` if anything under src/, tsconfig.json or package.json is newer than dist
 * (a developer who edited src/ and runs one test file by hand tests that code); test files running
 * at once build one at a time (a lock folder), and a build that fails fails the test.
 */
export function cliEntry(): string {
  if (!distChecked) {
    try {
      ensureDistBuilt();
      distChecked = {};
    } catch (err) {
      distChecked = { error: err as Error }; // once per process: every later call fails the same way
    }
  }
  if (distChecked.error) throw distChecked.error;
  return distEntry;
}

function ensureDistBuilt(): void {
  if (distState() === "fresh") return;
  mkdirSync(buildDir, { recursive: true });
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    try {
      mkdirSync(buildLock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    if (buildLockAbandoned()) {
      rmSync(buildLock, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`dist/ is being built by another process (${buildLock}) for over 10 minutes`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
  }
  let failure: string | undefined;
  try {
    writeFileSync(join(buildLock, "pid"), String(process.pid));
    // Another test process may have built (or failed to build these same sources) while this one waited.
    const state = distState();
    if (state === "fresh") return;
    if (state === "stale") {
      const startedMs = Date.now();
      const build = spawnSync("npm", ["run", "--silent", "build"], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
      if (build.status !== 0) failure = `${build.stdout}${build.stderr}${build.error?.message ?? ""}`;
      // The sources as they were when the build started: an edit made during the build is newer.
      // A failed build (tsc still writes dist/) is not fresh: it fails again until a source changes.
      const entryMtimeMs = statSync(distEntry, { throwIfNoEntry: false })?.mtimeMs ?? 0;
      writeFileSync(`${buildStamp}.${process.pid}`, JSON.stringify({ startedMs, entryMtimeMs, failure }));
      renameSync(`${buildStamp}.${process.pid}`, buildStamp);
    } else failure = state.failure;
  } finally {
    rmSync(buildLock, { recursive: true, force: true });
  }
  if (failure !== undefined) throw new Error(`npm run build failed, so the CLI tests cannot run the current src/:\n${failure}`);
}

/** The lock's owner died (its pid is gone), or it wrote no pid within 30 s. */
function buildLockAbandoned(): boolean {
  let pid = 0;
  try {
    pid = Number(readFileSync(join(buildLock, "pid"), "utf8"));
  } catch {
    // not written yet, or the lock is gone
  }
  if (!Number.isInteger(pid) || pid <= 0) {
    const since = statSync(buildLock, { throwIfNoEntry: false });
    return since !== undefined && Date.now() - since.mtimeMs > 30_000;
  }
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ESRCH";
  }
}

/**
 * fresh: dist/ was built after the last change to src/ (files, and folders for removals and
 * renames), tsconfig.json and package.json; or the build of these same sources failed.
 */
function distState(): "fresh" | "stale" | { failure: string } {
  const entry = statSync(distEntry, { throwIfNoEntry: false });
  if (!entry) return "stale";
  let builtMs = entry.mtimeMs;
  let failure: string | undefined;
  try {
    const stamp = JSON.parse(readFileSync(buildStamp, "utf8")) as { startedMs: number; entryMtimeMs: number; failure?: string };
    // The stamp is this helper's last build's, unless dist was built again since (`npm run build`).
    if (stamp.entryMtimeMs === entry.mtimeMs) ({ startedMs: builtMs, failure } = stamp);
  } catch {
    // no stamp: dist was built by `npm run build`
  }
  const src = join(repoRoot, "src");
  const inputs = [src, join(repoRoot, "tsconfig.json"), join(repoRoot, "package.json")];
  for (const e of readdirSync(src, { recursive: true, withFileTypes: true })) inputs.push(join(e.parentPath, e.name));
  if (inputs.some((path) => (statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? 0) > builtMs)) return "stale";
  return failure === undefined ? "fresh" : { failure };
}

/** Runs `maskfleet ...args` (the built CLI, see cliEntry) to its end; a non-zero exit is a result, not an error. */
export async function runMaskfleet(args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  const entry = cliEntry(); // a failed build is an error, not a CLI result
  try {
    const { stdout, stderr } = await exec(process.execPath, [entry, ...args], {
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

/** `inner` with its writes going through `write` instead (a disk that fails some of them); everything else is inner's. */
export function storeWithWrite(inner: Store, write: Store["write"]): Store {
  return {
    root: inner.root,
    read: (key) => inner.read(key),
    exists: (key) => inner.exists(key),
    head: (key) => inner.head(key),
    list: (prefix, options) => inner.list(prefix, options),
    locate: (key) => inner.locate(key),
    write,
  };
}
