/**
 * The fleet's overhead: `maskfleet run` on 200 distinct photos (tiny SAM graphs, composite
 * generator, target auto, 2 prompts x 2 seeds) against the same per-photo work in one plain loop
 * without queues or Redis (benchmarks/inline-context.ts: detectStage, maskStage, each
 * generateStage, finalizeStage called in turn), each in its own process started the same way
 * (`node --import tsx src/cli/main.ts run ...` and `node --import tsx benchmarks/fleet-throughput.ts
 * --plain ...`), so both pay the same start-up. Redis: a throw-away redis-server on a free port (no
 * persistence), so `INFO commandstats` counts this run's commands only (those BullMQ's Lua scripts
 * run inside Redis included); a MONITOR connection counts what the clients sent: commands per image
 * over the network (each command of a pipeline counted), and of those the script calls.
 *
 *   npx tsx benchmarks/fleet-throughput.ts [--images 200] [--repeats 1]
 *
 * Prints a table and writes benchmarks/results/fleet-throughput.json.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { loadConfig, type ConfigInput } from "../src/config/config.js";
import { photoVariant, photoVariantName } from "../test/fixtures/photo-variants.js";
import { startRedisServer } from "../test/scenarios/redis-server.js";
import { makeTinyModels } from "../test/support/onnx/make-tiny-models.js";
import { imageJobFor, inlineContext, runInline } from "./inline-context.js";

const root = resolve(import.meta.dirname, "..");
const work = join(root, ".cache", "bench", "fleet-throughput");
const prompts = ["studio white background", "soft grey backdrop"];

function settings(samModel: string, out: string): ConfigInput {
  return { out, target: "auto", samModel, prompts, seeds: "34-35", generator: "composite", background: "#ffffff" };
}

/** The plain loop (child mode): every photo through every stage in turn, in this process. */
async function plainLoop(photosDir: string, samModel: string, out: string): Promise<void> {
  const config = loadConfig({ env: {}, overrides: settings(samModel, out) });
  const ctx = inlineContext(config);
  let results = 0;
  const files = (await readdir(photosDir)).filter((f) => f.endsWith(".jpg")).sort();
  for (const f of files) results += await runInline(ctx, await imageJobFor(config, join(photosDir, f), f));
  await ctx.close();
  process.stdout.write(`${files.length} images, ${results} results\n`);
}

function run(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ seconds: number; stdout: string }> {
  return new Promise((done, fail) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, ["--import", "tsx", ...args], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", fail);
    child.on("close", (code) => {
      if (code === 0) done({ seconds: (performance.now() - t0) / 1000, stdout });
      else fail(new Error(`${args.join(" ")} exited ${code}:\n${stderr.slice(-3000)}`));
    });
  });
}

/** Calls per command since the last CONFIG RESETSTAT. */
async function commandStats(url: string): Promise<Record<string, number>> {
  const redis = new Redis(url);
  const info = await redis.info("commandstats");
  await redis.quit();
  const stats: Record<string, number> = {};
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) stats[m[1]!] = Number(m[2]);
  return stats;
}

/** Counts the commands clients send from now on (MONITOR; those run inside Lua scripts apart). */
async function countClientCommands(url: string): Promise<{ stop(): Promise<{ sent: number; scripts: number; insideScripts: number }> }> {
  const redis = new Redis(url);
  const monitor = await redis.monitor();
  const counts = { sent: 0, scripts: 0, insideScripts: 0 };
  monitor.on("monitor", (_time: string, args: string[], source: string) => {
    if (source === "lua") counts.insideScripts++;
    else {
      counts.sent++;
      if (/^eval/i.test(args[0] ?? "")) counts.scripts++;
    }
  });
  return {
    async stop() {
      monitor.disconnect();
      redis.disconnect();
      return counts;
    },
  };
}

async function resetStats(url: string): Promise<void> {
  const redis = new Redis(url);
  await redis.flushall();
  await redis.config("RESETSTAT");
  await redis.quit();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      images: { type: "string", default: "200" },
      repeats: { type: "string", default: "1" },
      plain: { type: "string" },
      model: { type: "string" },
      out: { type: "string" },
    },
  });
  if (args.plain) return plainLoop(args.plain, args.model!, args.out!);
  const images = Number(args.images);
  const repeats = Number(args.repeats);
  const photosDir = join(work, "photos");
  if (!existsSync(join(photosDir, photoVariantName(images - 1))) || existsSync(join(photosDir, photoVariantName(images)))) {
    await rm(photosDir, { recursive: true, force: true });
    await mkdir(photosDir, { recursive: true });
    for (let i = 0; i < images; i++) await writeFile(join(photosDir, photoVariantName(i)), await photoVariant(i));
  }
  const tiny = await makeTinyModels(join(work, "models"));
  // The fleet's Redis, nothing else on it; no persistence, as the plain loop has none.
  const redis = await startRedisServer("bench-fleet-throughput-redis", { persistence: false });
  const fleet: { seconds: number; calls: number; sent: number; scripts: number; top: [string, number][] }[] = [];
  const plain: number[] = [];
  try {
    for (let r = 0; r < repeats; r++) {
      const fleetOut = join(work, "out-fleet");
      await rm(fleetOut, { recursive: true, force: true });
      await resetStats(redis.url);
      process.stderr.write(`fleet: maskfleet run on ${images} photos (repeat ${r + 1})...\n`);
      const s = settings(tiny.sam, fleetOut);
      const clients = await countClientCommands(redis.url);
      const f = await run([
        "src/cli/main.ts",
        "run",
        photosDir,
        "--out",
        fleetOut,
        "--target",
        "auto",
        "--sam-model",
        tiny.sam,
        "--redis",
        redis.url,
        "--prompts",
        ...prompts,
        "--seeds",
        String(s.seeds),
        "--generator",
        "composite",
        "--background",
        "#ffffff",
        "--no-progress",
      ]);
      if (!new RegExp(`${images}/${images} images finished \\(${images} ok, 0 failed\\)`).test(f.stdout)) throw new Error(`not every image finished:\n${f.stdout}`);
      const sent = await clients.stop();
      const stats = await commandStats(redis.url);
      // The MONITOR command itself and the stats reads are not the run's.
      delete stats.monitor;
      delete stats.info;
      const calls = Object.values(stats).reduce((a, b) => a + b, 0);
      fleet.push({
        seconds: f.seconds,
        calls,
        sent: sent.sent,
        scripts: sent.scripts,
        top: Object.entries(stats)
          .sort((a, b) => b[1] - a[1])
          .slice(0, 8),
      });

      const plainOut = join(work, "out-plain");
      await rm(plainOut, { recursive: true, force: true });
      process.stderr.write(`plain loop on ${images} photos (repeat ${r + 1})...\n`);
      const p = await run(["benchmarks/fleet-throughput.ts", "--plain", photosDir, "--model", tiny.sam, "--out", plainOut]);
      if (!p.stdout.includes(`${images} images, ${images * 4} results`)) throw new Error(`plain loop: ${p.stdout}`);
      plain.push(p.seconds);
    }
  } finally {
    await redis.close();
  }
  const fleetSec = median(fleet.map((f) => f.seconds));
  const plainSec = median(plain);
  const perMin = (sec: number) => Math.round((images / sec) * 600) / 10;
  const calls = median(fleet.map((f) => f.calls));
  const report = {
    benchmark: "fleet-throughput",
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGb: Math.round(totalmem() / 2 ** 30), node: process.version },
    workload: { images, repeats, samModel: "tiny test graphs", target: "auto", prompts: 2, seeds: 2, generator: "composite", resultsPerImage: 4 },
    fleet: {
      command: "node --import tsx src/cli/main.ts run (all four pools in one process, default concurrency)",
      seconds: fleet.map((f) => Math.round(f.seconds * 10) / 10),
      imagesPerMin: perMin(fleetSec),
    },
    plain: {
      command: "node --import tsx benchmarks/fleet-throughput.ts --plain (one loop, no queues, no Redis)",
      seconds: plain.map((s) => Math.round(s * 10) / 10),
      imagesPerMin: perMin(plainSec),
    },
    overheadPct: Math.round((fleetSec / plainSec - 1) * 1000) / 10,
    redis: {
      callsPerImage: Math.round((calls / images) * 10) / 10,
      sentPerImage: Math.round((median(fleet.map((f) => f.sent)) / images) * 10) / 10,
      scriptCallsPerImage: Math.round((median(fleet.map((f) => f.scripts)) / images) * 10) / 10,
      totalCalls: calls,
      topCommands: fleet[0]?.top,
    },
  };
  const resultsDir = join(root, "benchmarks", "results");
  await mkdir(resultsDir, { recursive: true });
  await writeFile(join(resultsDir, "fleet-throughput.json"), JSON.stringify(report, null, 2) + "\n");
  console.log(`\n${images} photos, tiny SAM graphs, composite generator, 4 results per photo, ${cpus().length} CPUs`);
  console.log("| | wall s | images/min | Redis commands sent per image (script calls) | commands Redis ran per image |");
  console.log("|---|---|---|---|---|");
  console.log(
    `| maskfleet run (queues) | ${fleetSec.toFixed(1)} | ${report.fleet.imagesPerMin} | ${report.redis.sentPerImage} (${report.redis.scriptCallsPerImage}) | ${report.redis.callsPerImage} |`,
  );
  console.log(`| plain loop (no queues) | ${plainSec.toFixed(1)} | ${report.plain.imagesPerMin} | 0 | 0 |`);
  console.log(`\nfleet overhead: ${report.overheadPct}% (fleet wall / plain wall - 1); top Redis commands: ${report.redis.topCommands?.map(([c, n]) => `${c} ${n}`).join(", ")}`);
  console.log(`report: ${join(resultsDir, "fleet-throughput.json")}`);
}

await main();
