/**
 * `maskfleet run` throughput on a folder of photos, against the naive path (one process per photo,
 * as the old single-image script ran: load the models, do one photo, exit), in the same run.
 *
 *   npm run build && npx tsx benchmarks/fleet-run.ts [--images 50] [--naive 10] [--skip-vit-b]
 *
 * Two SAM models: the tiny test graphs (pipeline overhead) and a full-size random-weight SAM ViT-B
 * encoder (benchmarks/standins/make-sam-vit-encoder.ts; the cost of the real one) with the tiny decoder. Photos are
 * distinct variants (scale, crop, mirror) of the shipped samples. Each configuration runs on its own
 * Redis database and output folder. Prints a table and writes benchmarks/results/fleet-run.json.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { photoVariant, photoVariantName } from "../test/fixtures/photo-variants.js";
import { makeTinyModels } from "../test/support/onnx/make-tiny-models.js";
import { makeVitBEncoder } from "./standins/make-sam-vit-encoder.js";

const root = resolve(import.meta.dirname, "..");
const cli = join(root, "dist", "cli", "main.js");
const work = join(root, ".cache", "bench");
const { values: args } = parseArgs({
  options: {
    images: { type: "string", default: "50" },
    naive: { type: "string", default: "10" },
    "skip-vit-b": { type: "boolean", default: false },
    redis: { type: "string", default: "redis://127.0.0.1:6379/9" },
  },
});
const imageCount = Number(args.images);
const naiveCount = Math.min(Number(args.naive), imageCount);

/** Distinct photos made from the shipped samples (test/fixtures/photo-variants.ts). */
async function makePhotos(dir: string, count: number): Promise<string[]> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const file = join(dir, photoVariantName(i));
    await writeFile(file, await photoVariant(i));
    files.push(file);
  }
  return files;
}

interface ProcessResult {
  seconds: number;
  peakRssMb: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI, sampling the child's peak RSS (VmHWM) from /proc while it runs. */
function runCli(argv: string[]): Promise<ProcessResult> {
  return new Promise((done, fail) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [cli, ...argv], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let peakKb = 0;
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const sample = setInterval(() => {
      readFile(`/proc/${child.pid}/status`, "utf8")
        .then((s) => (peakKb = Math.max(peakKb, Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0))))
        .catch(() => undefined);
    }, 100);
    child.on("error", fail);
    child.on("close", (code) => {
      clearInterval(sample);
      const result = { seconds: (performance.now() - t0) / 1000, peakRssMb: peakKb / 1024, stdout, stderr };
      if (code === 0) done(result);
      else fail(new Error(`maskfleet ${argv.join(" ")} exited ${code}:\n${stderr.slice(-2000)}`));
    });
  });
}

async function flushRedis(url: string): Promise<void> {
  const redis = new Redis(url);
  await redis.flushdb();
  await redis.quit();
}

function runFlags(samModel: string, out: string): string[] {
  return [
    "--out",
    out,
    "--target",
    "auto",
    "--sam-model",
    samModel,
    "--redis",
    args.redis,
    "--prompts",
    "studio white background",
    "soft grey backdrop",
    "--seeds",
    "34-35",
    "--generator",
    "composite",
    "--background",
    "#ffffff",
    "--no-progress",
  ];
}

interface Measured {
  images: number;
  seconds: number;
  imagesPerMin: number;
  peakRssMb: number;
}

const rate = (images: number, seconds: number): Measured["imagesPerMin"] => Math.round((images / seconds) * 60 * 10) / 10;

/** The fleet: one `maskfleet run` over the whole folder. */
async function fleetRun(name: string, samModel: string, photosDir: string, images: number): Promise<Measured> {
  const out = join(work, "out", name, "fleet");
  await rm(out, { recursive: true, force: true });
  await flushRedis(args.redis);
  const r = await runCli(["run", photosDir, ...runFlags(samModel, out)]);
  if (!new RegExp(`${images}/${images} images finished \\(${images} ok, 0 failed\\)`).test(r.stdout)) throw new Error(`${name}: not every image finished:\n${r.stdout}`);
  return { images, seconds: r.seconds, imagesPerMin: rate(images, r.seconds), peakRssMb: Math.round(r.peakRssMb) };
}

/** The naive path: a new process per photo. */
async function naiveRun(name: string, samModel: string, photos: string[]): Promise<Measured> {
  const out = join(work, "out", name, "naive");
  await rm(out, { recursive: true, force: true });
  await flushRedis(args.redis);
  let seconds = 0;
  let peak = 0;
  for (const photo of photos) {
    const r = await runCli(["run", photo, ...runFlags(samModel, out)]);
    seconds += r.seconds;
    peak = Math.max(peak, r.peakRssMb);
  }
  return { images: photos.length, seconds, imagesPerMin: rate(photos.length, seconds), peakRssMb: Math.round(peak) };
}

async function main(): Promise<void> {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first`);
  const photosDir = join(work, "photos");
  const photos = await makePhotos(photosDir, imageCount);
  const tiny = await makeTinyModels(join(work, "tiny-models"));
  const models: Record<string, string> = { tiny: tiny.sam };
  if (!args["skip-vit-b"]) {
    const encoder = join(work, "sam-vit-b-random", "encoder.onnx");
    if (!existsSync(encoder)) {
      process.stderr.write("writing the random-weight SAM ViT-B encoder (359 MB)...\n");
      await makeVitBEncoder(work);
    }
    await writeFile(
      join(work, "sam-vit-b-random", "model.json"),
      JSON.stringify({ format: "samexporter", task: "segment", files: { encoder: "encoder.onnx", decoder: join(tiny.sam, "decoder.onnx") } }),
    );
    models["vit-b-random"] = join(work, "sam-vit-b-random");
  }

  const rows: { model: string; fleet: Measured; naive: Measured; speedup: number }[] = [];
  for (const [name, samModel] of Object.entries(models)) {
    process.stderr.write(`${name}: fleet run of ${imageCount} photos...\n`);
    const fleet = await fleetRun(name, samModel, photosDir, imageCount);
    process.stderr.write(`${name}: naive, one process per photo, ${naiveCount} photos...\n`);
    const naive = await naiveRun(name, samModel, photos.slice(0, naiveCount));
    rows.push({ model: name, fleet, naive, speedup: Math.round((fleet.imagesPerMin / naive.imagesPerMin) * 100) / 100 });
  }

  const report = {
    benchmark: "fleet-run",
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGb: Math.round(totalmem() / 2 ** 30), node: process.version },
    workload: { images: imageCount, naiveImages: naiveCount, target: "auto", prompts: 2, seeds: 2, generator: "composite", resultsPerImage: 4 },
    rows,
  };
  const resultsDir = join(root, "benchmarks", "results");
  await mkdir(resultsDir, { recursive: true });
  await writeFile(join(resultsDir, "fleet-run.json"), JSON.stringify(report, null, 2) + "\n");

  console.log(`\nmaskfleet run, ${imageCount} photos, 4 composite results each, ${cpus().length} CPUs`);
  console.log("| SAM model | fleet images/min | fleet wall s | fleet peak RSS MB | naive images/min (per-photo process) | naive peak RSS MB | fleet / naive |");
  console.log("|---|---|---|---|---|---|---|");
  for (const r of rows) {
    console.log(
      `| ${r.model} | ${r.fleet.imagesPerMin} | ${r.fleet.seconds.toFixed(1)} | ${r.fleet.peakRssMb} | ${r.naive.imagesPerMin} (${r.naive.images} photos) | ${r.naive.peakRssMb} | ${r.speedup}x |`,
    );
  }
  console.log(`\nreport: ${join(resultsDir, "fleet-run.json")}`);
}

await main();
