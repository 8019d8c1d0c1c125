/**
 * Scale (issue 13): a catalog of N objects (default 1,000,000) on the local S3 stand-in, through
 * the real producer (`maskfleet enqueue`, streaming with its --window) and the fleet's fast no-op
 * path (benchmarks/scale-noop.ts: real pools, queues and run state; no image work), then
 * `status`, `report` and `clean`, each a CLI process. Inputs are identified by the listing's ETag
 * and size, so nothing is downloaded at enqueue. A private redis-server (no persistence,
 * noeviction) is sampled every 500 ms:
 *
 *   Redis         peak used_memory over the baseline, bytes per unfinished image at that peak
 *                 (an upper bound: finished images are in it too), bytes per finished image at the end
 *   producer      wall time, images/s enqueued, peak RSS
 *   workers       images/s finished
 *   status/report/clean   wall time and peak RSS (each includes the CLI's start, given too)
 *
 * With --before N (default 50,000; 0 = skip) the same run of today's code before this work
 * (benchmarks/scale-before.ts: commit ba67146, enqueue only, as issue 13 measured it) at a size
 * it survives comes first, and the ratios are printed.
 *
 *   npm run build && node --import tsx benchmarks/scale.ts [--images 1000000] [--window 10000] [--before 50000] [--out FILE]
 *   node --import tsx benchmarks/scale.ts --show benchmarks/results/scale.json    # the table of a stored result
 *
 * Prints a table and writes benchmarks/results/scale.json (--out to change).
 */
import { spawn } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { RunState } from "../src/runs/run-state.js";
import { startS3Server } from "../test/standins/s3-server.js";
import { startRedisServer } from "../test/scenarios/redis-server.js";
import { catalogBody, catalogKey, figures, measureBefore, mib, redisInfo, round, runMeasured, standInEnv, type CommandFigures, type ScaleBeforeResult } from "./scale-before.js";

const repoRoot = resolve(import.meta.dirname, "..");
/** The built CLI, as users run it (`npm run build` first): status, report and clean are timed as they start. */
const cliPath = join(repoRoot, "dist", "cli", "main.js");

export interface ScaleResult {
  benchmark: "scale";
  date: string;
  images: number;
  window: number;
  node: string;
  workers: string;
  cliStartS: number;
  redis: {
    baselineMiB: number;
    peakMiB: number;
    /** (peak used_memory - baseline) / the most unfinished images at once: a loose upper bound (the finished images are in the peak); see bytesPerUnfinished. */
    bytesPerUnfinishedImage: number;
    mostUnfinished: number;
    /** (used_memory once every image finished - baseline) / images. */
    bytesPerFinishedImage: number;
    afterCleanMiB: number;
    keysAfterClean: number;
    /** MEMORY USAGE by kind of key, once near the peak (with the unfinished and finished images then) and once every image finished. */
    atPeak?: { unfinished: number; finished: number; keys: KeyGroup[] };
    atEnd: KeyGroup[];
  };
  enqueue: CommandFigures & { imagesPerS: number };
  finishedPerS: number;
  allFinishedS: number;
  status: CommandFigures;
  report: CommandFigures;
  clean: CommandFigures;
  before?: ScaleBeforeResult;
}

export async function measureScale(o: { images: number; window: number; before: number; log?: (line: string) => void }): Promise<ScaleResult> {
  const log = o.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const before = o.before > 0 ? await measureBefore({ images: o.before, log }) : undefined;
  const scratch = await mkdtemp(join(tmpdir(), "maskfleet-scale-"));
  const cleanups: (() => Promise<unknown>)[] = [() => rm(scratch, { recursive: true, force: true })];
  try {
    const redisServer = await startRedisServer("scale-redis", { persistence: false, maxmemoryPolicy: "noeviction" });
    cleanups.push(() => redisServer.close());
    const redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
    cleanups.push(async () => redis.disconnect());
    const s3 = await startS3Server();
    cleanups.push(() => s3.close());
    const seeded = performance.now();
    s3.seedObjects("bucket", o.images, catalogKey, { body: catalogBody });
    log(`S3 stand-in: ${s3.objectCount("bucket")} objects in ${((performance.now() - seeded) / 1000).toFixed(1)} s`);
    // The stand-in logs every request; a million-image run would keep millions of entries.
    const forget = setInterval(() => s3.resetCounts(), 5000);
    cleanups.push(async () => clearInterval(forget));

    const env = standInEnv(s3.endpoint, scratch);
    if (!existsSync(cliPath)) throw new Error(`${cliPath} is missing: npm run build first`);
    const cli = (...args: string[]) => runMeasured([process.execPath, cliPath, ...args], { cwd: repoRoot, env, scratch });
    const must = (what: string, r: Awaited<ReturnType<typeof cli>>) => {
      if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.stderr.trim().split("\n").slice(-5).join(" | ")}`);
      return r;
    };
    const start = must("--help", await cli("--help"));

    const workers = spawn(process.execPath, ["--import", "tsx", join(repoRoot, "benchmarks", "scale-noop.ts"), "--redis", redisServer.url, "--concurrency", "50"], {
      cwd: repoRoot,
      env: { ...env, MASKFLEET_LOG_LEVEL: "warn", MASKFLEET_METRICS_PORT: "0", MASKFLEET_METRICS_HOST: "127.0.0.1" },
      stdio: ["ignore", "ignore", "inherit"],
    });
    const workersExited = new Promise<void>((done) => workers.once("exit", () => done()));
    cleanups.push(async () => {
      workers.kill("SIGTERM");
      await workersExited;
    });

    const runId = "scale";
    const state = new RunState(redis);
    const baseline = (await redisInfo(redis)).used;
    let peak = baseline;
    let mostUnfinished = 0;
    let atPeak: { unfinished: number; finished: number; keys: KeyGroup[] } | undefined;
    let sampling = true;
    const sampler = (async () => {
      let last = 0;
      while (sampling) {
        const [{ used }, p] = await Promise.all([redisInfo(redis), state.progress(runId)]);
        peak = Math.max(peak, used);
        mostUnfinished = Math.max(mostUnfinished, p.images - p.finished);
        // What the memory is, once a minute near the peak: a SCAN of every key is not free.
        if (used >= peak && Date.now() - last > 60_000 && p.images - p.finished > 0) {
          last = Date.now();
          atPeak = { unfinished: p.images - p.finished, finished: p.finished, keys: await keyGroups(redis) };
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    })();

    log(`enqueue ${o.images} images, window ${o.window}, no-op workers ...`);
    const started = performance.now();
    const enqueue = must(
      "enqueue",
      await cli(
        "enqueue",
        "s3://bucket/catalog/",
        "--run",
        runId,
        "--window",
        String(o.window),
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
        "--target",
        "auto",
      ),
    );
    log(`  enqueued in ${enqueue.wallS.toFixed(1)} s (${(o.images / enqueue.wallS).toFixed(0)} images/s), RSS ${(enqueue.peakRssKiB / 1024).toFixed(0)} MiB`);
    for (;;) {
      const p = await state.progress(runId);
      if (p.finished >= o.images) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const allFinishedS = (performance.now() - started) / 1000;
    sampling = false;
    await sampler;
    const finishedUsed = (await redisInfo(redis)).used;
    const atEnd = await keyGroups(redis);
    log(`  all finished after ${allFinishedS.toFixed(1)} s; Redis peak ${mib(peak - baseline)} MiB over baseline`);

    const status = must("status", await cli("status", runId, "--json", "--redis", redisServer.url));
    const report = must("report", await cli("report", runId, "--out", join(scratch, "report.json"), "--redis", redisServer.url));
    const clean = must("clean", await cli("clean", runId, "--redis", redisServer.url));
    const afterClean = await redisInfo(redis);
    log(`  status ${status.wallS.toFixed(2)} s, report ${report.wallS.toFixed(2)} s, clean ${clean.wallS.toFixed(2)} s`);

    return {
      benchmark: "scale",
      date: new Date().toISOString(),
      images: o.images,
      window: o.window,
      node: process.version,
      workers: "benchmarks/scale-noop.ts: every pool in one process, concurrency 50 each, the no-op path (no image work, no store)",
      cliStartS: round(start.wallS),
      redis: {
        baselineMiB: mib(baseline),
        peakMiB: mib(peak - baseline),
        bytesPerUnfinishedImage: mostUnfinished ? Math.round((peak - baseline) / mostUnfinished) : 0,
        mostUnfinished,
        bytesPerFinishedImage: Math.round((finishedUsed - baseline) / o.images),
        afterCleanMiB: mib(afterClean.used),
        keysAfterClean: afterClean.keys,
        ...(atPeak && { atPeak }),
        atEnd,
      },
      enqueue: { ...figures(enqueue), imagesPerS: round(o.images / enqueue.wallS, 0) },
      finishedPerS: round(o.images / allFinishedS, 0),
      allFinishedS: round(allFinishedS, 1),
      status: figures(status),
      report: figures(report),
      clean: figures(clean),
      ...(before && { before }),
    };
  } finally {
    for (const c of cleanups.reverse()) await c().catch((err: unknown) => log(`cleanup: ${(err as Error).message}`));
  }
}

/** Keys grouped by kind (a job id or image id replaced by *), with their count and MEMORY USAGE. */
export interface KeyGroup {
  pattern: string;
  keys: number;
  bytes: number;
}

async function keyGroups(redis: Redis): Promise<KeyGroup[]> {
  const groups = new Map<string, KeyGroup>();
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "COUNT", 1000);
    cursor = next;
    const sizes = await Promise.all(keys.map((k) => redis.call("MEMORY", "USAGE", k, "SAMPLES", "0") as Promise<number | null>));
    keys.forEach((k, i) => {
      const pattern = k.replace(/\d+-[0-9a-f]{16,64}(-p\d+-s\d+)?/, "<job>").replace(/:[0-9a-f]{16,64}$/, ":<image>");
      const g = groups.get(pattern) ?? { pattern, keys: 0, bytes: 0 };
      g.keys++;
      g.bytes += sizes[i] ?? 0;
      groups.set(pattern, g);
    });
  } while (cursor !== "0");
  return [...groups.values()].sort((a, b) => b.bytes - a.bytes);
}

/**
 * Redis bytes per unfinished image at a sample: every key but the run's images hash (the jobs,
 * queue lists, results sets, capped event streams and the run's small keys: all the window's)
 * over the unfinished images, plus one image's share of the images hash.
 */
export function bytesPerUnfinished(sample: { unfinished: number; finished: number; keys: KeyGroup[] }): number {
  const imagesHash = sample.keys.filter((g) => /^maskfleet:run:[^:]+:images$/.test(g.pattern)).reduce((n, g) => n + g.bytes, 0);
  const rest = sample.keys.reduce((n, g) => n + g.bytes, 0) - imagesHash;
  return Math.round(rest / sample.unfinished + imagesHash / (sample.unfinished + sample.finished));
}

export function formatScale(r: ScaleResult): string {
  const b = r.before;
  const perUnfinished = r.redis.atPeak ? bytesPerUnfinished(r.redis.atPeak) : r.redis.bytesPerUnfinishedImage;
  const rows: [string, string, string][] = [
    ["", `after (${r.images.toLocaleString("en")} images)`, b ? `before (${b.images.toLocaleString("en")} images, enqueue only)` : ""],
    [
      "Redis per unfinished image",
      `${perUnfinished} B (by key, ${r.redis.atPeak?.unfinished ?? r.redis.mostUnfinished} unfinished; peak ${r.redis.peakMiB} MiB in all)`,
      b ? `${b.redis.bytesPerImage} B` : "",
    ],
    ["Redis per finished image", `${r.redis.bytesPerFinishedImage} B`, b ? `${b.redis.bytesPerImage} B (kept 7 days)` : ""],
    ["producer peak RSS", `${r.enqueue.peakRssMiB} MiB`, b ? `${b.enqueue.peakRssMiB} MiB` : ""],
    ["enqueued", `${r.enqueue.imagesPerS} images/s`, b ? `${b.enqueue.imagesPerS} images/s` : ""],
    ["finished (no-op workers)", `${r.finishedPerS} images/s`, ""],
    ["status", `${r.status.wallS} s, ${r.status.peakRssMiB} MiB`, b ? `${b.status.wallS} s, ${b.status.peakRssMiB} MiB` : ""],
    ["report", `${r.report.wallS} s, ${r.report.peakRssMiB} MiB`, b ? `${b.report.wallS} s, ${b.report.peakRssMiB} MiB` : ""],
    ["clean", `${r.clean.wallS} s, ${r.clean.peakRssMiB} MiB`, b ? `${b.clean.wallS} s (${b.clean.jobsPerS} jobs/s)` : ""],
    ["CLI start (--help, the whole CLI)", `${r.cliStartS} s`, b ? `${b.cliStartS} s (in each figure)` : ""],
  ];
  const w0 = Math.max(...rows.map(([k]) => k.length));
  const w1 = Math.max(...rows.map(([, v]) => v.length));
  const lines = rows.map(([k, a, c]) => `  ${k.padEnd(w0)}  ${a.padEnd(w1)}  ${c}`);
  if (b) {
    const ratio = (x: number, y: number) => `${(x / y).toFixed(1)}x`;
    lines.push(
      `  ratios (before / after): Redis per image ${ratio(b.redis.bytesPerImage, r.redis.bytesPerFinishedImage)} finished, ` +
        `${ratio(b.redis.bytesPerImage, perUnfinished)} unfinished; status ${ratio(b.status.wallS, r.status.wallS)}, ` +
        `report ${ratio(b.report.wallS, r.report.wallS)}, clean ${ratio(b.clean.wallS, r.clean.wallS)} at ${ratio(r.images, b.images)} the images`,
    );
  }
  const top = (groups: KeyGroup[]) =>
    groups
      .slice(0, 6)
      .map((g) => `${g.pattern} ${g.keys} keys ${mib(g.bytes)} MiB`)
      .join("; ");
  if (r.redis.atPeak) {
    lines.push(`  Redis near the peak (${r.redis.atPeak.unfinished} unfinished, ${r.redis.atPeak.finished} finished): ${top(r.redis.atPeak.keys)}`);
    lines.push(`  Redis per unfinished image there, by key: ${bytesPerUnfinished(r.redis.atPeak)} B`);
  }
  lines.push(`  Redis once every image finished: ${top(r.redis.atEnd)}`);
  return [`scale: ${r.images} S3 objects, window ${r.window}, node ${r.node}; workers: ${r.workers}`, ...lines].join("\n");
}

const invokedAs = process.argv[1] ? realpathSync(process.argv[1]) : "";
if (invokedAs === realpathSync(import.meta.filename)) {
  const { values: args } = parseArgs({
    options: {
      images: { type: "string", default: "1000000" },
      window: { type: "string", default: "10000" },
      before: { type: "string", default: "50000" },
      out: { type: "string" },
      show: { type: "string" },
    },
  });
  if (args.show) {
    // --show FILE: the table of a stored result.
    console.log(formatScale(JSON.parse(await readFile(args.show, "utf8")) as ScaleResult));
    process.exit(0);
  }
  const result = await measureScale({ images: Number(args.images), window: Number(args.window), before: Number(args.before) });
  const out = args.out ?? join(repoRoot, "benchmarks", "results", "scale.json");
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, JSON.stringify(result, null, 2) + "\n");
  console.log(formatScale(result));
  console.log(`written to ${out}`);
}
