/**
 * Scale, the "before" half (issue 13): today's code (a commit, default ba67146) at a catalog size
 * it survives. A git worktree of that commit in a temp folder (node_modules linked from this
 * checkout) runs its own CLI as child processes against a private redis-server (no persistence,
 * noeviction) and the local S3 stand-in (test/standins/s3-server.ts, this checkout's), seeded with
 * N objects `catalog/dept-XX/item-NNNNNNN.jpg` of 256 bytes, each different (the old producer
 * dedupes images by ETag and size; it reads no image):
 *
 *   enqueue s3://bucket/catalog/  wall time, images/s, the producer's peak RSS, Redis used_memory
 *                                 after it, used_memory_peak, bytes per image, keys
 *   status / report               wall time and peak RSS each (report's JSON to a file)
 *   clean                         wall time, jobs removed per second, used_memory left
 *
 * No workers: the old workers need real models, and enqueue-only is what the issue measured. Each
 * wall time includes the CLI's start (node + tsx + imports), given once as `cliStartS`.
 * The worktree and the temp folder are removed at the end, whatever happens.
 *
 *   node --import tsx benchmarks/scale-before.ts --images 50000 [--commit ba67146] [--out FILE]
 *
 * Prints a table and writes benchmarks/results/scale-before.json (--out to change).
 */
import { spawn } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { startS3Server } from "../test/standins/s3-server.js";

const repoRoot = resolve(import.meta.dirname, "..");
const timeBinary = "/usr/bin/time";

export interface CommandFigures {
  wallS: number;
  /** Peak resident set of the CLI process, MiB. */
  peakRssMiB: number;
  exitCode: number;
}

export interface ScaleBeforeResult {
  benchmark: "scale-before";
  date: string;
  commit: string;
  images: number;
  node: string;
  /** `maskfleet --help` (the CLI's start and imports, nothing else): part of every wall time below. */
  cliStartS: number;
  seedS: number;
  enqueue: CommandFigures & { imagesPerS: number; added: number };
  redis: {
    /** used_memory before the enqueue, MiB. */
    baselineMiB: number;
    /** used_memory right after the enqueue, MiB. */
    afterEnqueueMiB: number;
    /** used_memory_peak by the end of the enqueue, MiB. */
    peakMiB: number;
    /** (used_memory after - before) / images. */
    bytesPerImage: number;
    keys: number;
    /** used_memory after `clean`, MiB. */
    afterCleanMiB: number;
    keysAfterClean: number;
  };
  status: CommandFigures;
  report: CommandFigures & { bytes: number };
  clean: CommandFigures & { jobsRemoved: number; jobsPerS: number };
}

export interface ScaleBeforeOptions {
  images: number;
  /** Default ba67146 (main's HEAD when issue 13 was taken up). */
  commit?: string;
  /** The repository to take the worktree from (default: this checkout). */
  repo?: string;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

/** The catalog's keys: `catalog/dept-XX/item-NNNNNNN.jpg`. */
export const catalogKey = (i: number) => `catalog/dept-${String(i % 100).padStart(2, "0")}/item-${String(i).padStart(7, "0")}.jpg`;

/** Bodies that differ (images are told apart by ETag and size): 256 bytes, the index in the first four. */
export function catalogBody(i: number): Buffer {
  const b = Buffer.alloc(256, 0xd8);
  b.writeUInt32BE(i, 0);
  return b;
}

/** Only what the CLI needs: no developer MASKFLEET_* settings, no real AWS profile or credentials; S3 is the stand-in. */
export function standInEnv(s3Endpoint: string, scratch: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MASKFLEET_") && !k.startsWith("AWS_")));
  return Object.assign(env, {
    AWS_ACCESS_KEY_ID: "AKIDSTANDIN",
    AWS_SECRET_ACCESS_KEY: "stand-in-secret",
    AWS_REGION: "us-east-1",
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_ENDPOINT_URL_S3: s3Endpoint,
    AWS_CONFIG_FILE: join(scratch, "no-aws-config"),
    AWS_SHARED_CREDENTIALS_FILE: join(scratch, "no-aws-credentials"),
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  });
}

export const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;
export const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
  wallS: number;
  peakRssKiB: number;
}

/**
 * Runs `argv` to its end: wall time, and peak RSS from GNU time's %M (the child's ru_maxrss) when
 * /usr/bin/time is there, else from polling VmHWM in /proc/<pid>/status.
 */
export async function runMeasured(argv: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; scratch: string }): Promise<Ran> {
  const useTime = existsSync(timeBinary);
  const timeOut = join(opts.scratch, `time-${process.hrtime.bigint()}.txt`);
  const [cmd, ...args] = useTime ? [timeBinary, "-f", "%M", "-o", timeOut, ...argv] : argv;
  const started = performance.now();
  const child = spawn(cmd as string, args, { cwd: opts.cwd, env: opts.env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => void (stdout = (stdout + d.toString()).slice(-20_000)));
  child.stderr.on("data", (d: Buffer) => void (stderr = (stderr + d.toString()).slice(-20_000)));
  let polledKiB = 0;
  const poll = useTime
    ? undefined
    : setInterval(() => {
        readFile(`/proc/${child.pid}/status`, "utf8")
          .then((s) => void (polledKiB = Math.max(polledKiB, Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0))))
          .catch(() => undefined);
      }, 20);
  const code = await new Promise<number>((done, fail) => {
    child.once("error", fail);
    child.once("close", (c, signal) => done(c ?? (signal ? 128 : 1)));
  });
  const wallS = (performance.now() - started) / 1000;
  if (poll) clearInterval(poll);
  let peakRssKiB = polledKiB;
  if (useTime) {
    // GNU time writes "Command exited with non-zero status N" first when it did; %M is the last line.
    const lines = (await readFile(timeOut, "utf8").catch(() => "")).trim().split("\n");
    peakRssKiB = Number(lines.at(-1)) || 0;
  }
  return { code, stdout, stderr, wallS, peakRssKiB };
}

export function figures(r: Ran): CommandFigures {
  return { wallS: round(r.wallS), peakRssMiB: round(r.peakRssKiB / 1024, 1), exitCode: r.code };
}

export async function redisInfo(redis: Redis): Promise<{ used: number; peak: number; keys: number }> {
  const info = await redis.info("memory");
  const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, "m").exec(info)?.[1] ?? NaN);
  return { used: field("used_memory"), peak: field("used_memory_peak"), keys: await redis.dbsize() };
}

export async function measureBefore(o: ScaleBeforeOptions): Promise<ScaleBeforeResult> {
  const commit = o.commit ?? "ba67146";
  const repo = o.repo ?? repoRoot;
  const log = o.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const n = o.images;
  if (!Number.isInteger(n) || n < 1) throw new Error(`--images: expected a whole number >= 1, got ${n}`);

  const scratch = await mkdtemp(join(tmpdir(), "maskfleet-scale-before-"));
  const worktree = join(scratch, "worktree");
  const cleanups: (() => Promise<unknown>)[] = [() => rm(scratch, { recursive: true, force: true })];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch((err: unknown) => log(`cleanup: ${(err as Error).message}`));
  };
  try {
    log(`worktree of ${commit} in ${worktree}`);
    await git(["-C", repo, "worktree", "add", "--detach", worktree, commit]);
    cleanups.push(() => git(["-C", repo, "worktree", "remove", "--force", worktree]));
    await symlink(join(repo, "node_modules"), join(worktree, "node_modules"));
    const fullCommit = (await git(["-C", worktree, "rev-parse", "HEAD"])).trim();

    // The old commit's own redis-server helper (its data folder lands under the worktree's
    // test/.tmp/): this checkout's test helpers import modules that may be mid-rewrite.
    const { startRedisServer } = (await import(pathToFileURL(join(worktree, "test", "scenarios", "redis-server.ts")).href)) as typeof import("../test/scenarios/redis-server.js");
    const redisServer = await startRedisServer("scale-before-redis", { persistence: false, maxmemoryPolicy: "noeviction" });
    cleanups.push(() => redisServer.close());
    const redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
    cleanups.push(async () => redis.disconnect());

    const s3 = await startS3Server();
    cleanups.push(() => s3.close());
    const t = performance.now();
    s3.seedObjects("bucket", n, catalogKey, { body: catalogBody });
    const seedS = (performance.now() - t) / 1000;
    log(`S3 stand-in ${s3.endpoint}: ${s3.objectCount("bucket")} objects in ${seedS.toFixed(2)} s; Redis ${redisServer.url}`);

    const env = standInEnv(s3.endpoint, scratch);
    const cli = (...args: string[]) => runMeasured([process.execPath, "--import", "tsx", join(worktree, "cli", "main.ts"), ...args], { cwd: worktree, env, scratch });
    const must = (what: string, r: Ran) => {
      if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.stderr.trim().split("\n").slice(-5).join(" | ")}`);
      return r;
    };

    const start = must("--help", await cli("--help"));
    log(`CLI start: ${start.wallS.toFixed(2)} s`);

    const runId = "scale-before";
    const before = await redisInfo(redis);
    log(`enqueue ${n} images ...`);
    const enqueue = must(
      "enqueue",
      await cli(
        "enqueue",
        "s3://bucket/catalog/",
        "--run",
        runId,
        "--out",
        join(scratch, "out"),
        "--redis",
        redisServer.url,
        "--s3-endpoint",
        s3.endpoint,
        "--region",
        "us-east-1",
        "--generator",
        "composite",
      ),
    );
    const afterEnqueue = await redisInfo(redis);
    const added = Number(/enqueued (\d+) new images/.exec(enqueue.stderr)?.[1] ?? NaN);
    log(`  ${enqueue.wallS.toFixed(1)} s, ${(n / enqueue.wallS).toFixed(0)} images/s, RSS ${(enqueue.peakRssKiB / 1024).toFixed(0)} MiB, Redis ${mib(afterEnqueue.used)} MiB`);

    const status = must("status", await cli("status", runId, "--json", "--redis", redisServer.url));
    log(`status: ${status.wallS.toFixed(2)} s`);
    const reportFile = join(scratch, "report.json");
    const report = must("report", await cli("report", runId, "--out", reportFile, "--redis", redisServer.url));
    const reportBytes = (await readFile(reportFile)).length;
    log(`report: ${report.wallS.toFixed(2)} s`);
    const clean = must("clean", await cli("clean", runId, "--redis", redisServer.url));
    const jobsRemoved = Number(/cleaned: (\d+) jobs removed/.exec(clean.stdout)?.[1] ?? NaN);
    const afterClean = await redisInfo(redis);
    log(`clean: ${clean.wallS.toFixed(2)} s (${clean.stdout.trim().split("\n")[0] ?? ""})`);

    return {
      benchmark: "scale-before",
      date: new Date().toISOString(),
      commit: fullCommit,
      images: n,
      node: process.version,
      cliStartS: round(start.wallS),
      seedS: round(seedS),
      enqueue: { ...figures(enqueue), imagesPerS: round(n / enqueue.wallS, 0), added },
      redis: {
        baselineMiB: mib(before.used),
        afterEnqueueMiB: mib(afterEnqueue.used),
        peakMiB: mib(afterEnqueue.peak),
        bytesPerImage: Math.round((afterEnqueue.used - before.used) / n),
        keys: afterEnqueue.keys,
        afterCleanMiB: mib(afterClean.used),
        keysAfterClean: afterClean.keys,
      },
      status: figures(status),
      report: { ...figures(report), bytes: reportBytes },
      clean: { ...figures(clean), jobsRemoved, jobsPerS: round(jobsRemoved / clean.wallS, 0) },
    };
  } finally {
    await cleanup();
  }
}

function git(args: string[]): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn("git", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => void (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => void (err += d.toString()));
    child.once("error", fail);
    child.once("close", (code) => (code === 0 ? done(out) : fail(new Error(`git ${args.join(" ")}: ${err.trim()}`))));
  });
}

export function formatBefore(r: ScaleBeforeResult): string {
  const rows: [string, string][] = [
    ["images", String(r.images)],
    ["enqueue", `${r.enqueue.wallS} s, ${r.enqueue.imagesPerS} images/s, peak RSS ${r.enqueue.peakRssMiB} MiB`],
    ["Redis after enqueue", `${r.redis.afterEnqueueMiB} MiB used (peak ${r.redis.peakMiB} MiB), ${r.redis.bytesPerImage} B/image, ${r.redis.keys} keys`],
    ["status", `${r.status.wallS} s, peak RSS ${r.status.peakRssMiB} MiB`],
    ["report", `${r.report.wallS} s, peak RSS ${r.report.peakRssMiB} MiB, ${r.report.bytes} B of JSON`],
    ["clean", `${r.clean.wallS} s, ${r.clean.jobsRemoved} jobs (${r.clean.jobsPerS}/s); Redis ${r.redis.afterCleanMiB} MiB, ${r.redis.keysAfterClean} keys left`],
    ["CLI start (in each)", `${r.cliStartS} s`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return [`scale-before: commit ${r.commit.slice(0, 7)}, node ${r.node}`, ...rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`)].join("\n");
}

const invokedAs = process.argv[1] ? realpathSync(process.argv[1]) : "";
if (invokedAs === realpathSync(import.meta.filename)) {
  const { values: args } = parseArgs({ options: { images: { type: "string", default: "50000" }, commit: { type: "string", default: "ba67146" }, out: { type: "string" } } });
  const result = await measureBefore({ images: Number(args.images), commit: args.commit });
  const out = args.out ?? join(repoRoot, "benchmarks", "results", "scale-before.json");
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, JSON.stringify(result, null, 2) + "\n");
  console.log(formatBefore(result));
  console.log(`written to ${out}`);
}
