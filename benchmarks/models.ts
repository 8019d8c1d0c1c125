/**
 * Every model of src/models/manifest.json timed on this machine through its real adapter. Where the
 * real weights are absent (no downloads here) the model is a full-size random-weight graph of the
 * same architecture and I/O (benchmarks/standins/make-*.ts): speed does not depend on the weight values.
 *
 *   npx tsx benchmarks/models.ts [--models a,b] [--images 3] [--threads 0]   (0: the workers' default, all cores for one job)
 *
 * Each model runs in its own child process (peak RSS is per model): load, one untimed warm-up
 * photo, then --images photos from samples/photos, timed end to end through the adapter's public
 * call (pre- and post-processing included, image decoding not):
 * - segment: loadSegmenter + segment(photo, [one box]); 8-box calls on the last photo (the second
 *   one timed: onnxruntime plans a new box count on its first run) give the cost of each extra box
 *   from the decoder and post-processing times (the encoder runs once per photo whatever the boxes);
 * - salient: SalientModel.predict(photo);
 * - detect: an OWLv2 label detector ("Car"); face-detect: the UltraFace detector.
 * Writes benchmarks/results/models.json and src/models/speed.json (what `maskfleet models list` shows).
 */
import { spawn } from "node:child_process";
import { mkdir, readFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { decodeImage } from "../src/imaging/image.js";
import { defaultIntraOpThreads } from "../src/runtime/onnx.js";
import type { Box, RgbImage } from "../src/imaging/types.js";
import { listModels, type ModelEntry } from "../src/models/registry.js";
import { loadFaceDetector, loadTextDetectionModel } from "../src/detectors/detector.js";
import { loadSegmenter, type SegmentResult } from "../src/segmenters/segmenter.js";
import { SalientModel } from "../src/segmenters/salient.js";
import { fullSizeBuilders } from "./standins/full-size-models.js";
import { writeFileAtomic } from "../test/support/onnx/onnx-graph.js";
import {} from "../test/support/onnx/onnx-graph.js";

const root = resolve(import.meta.dirname, "..");
const work = join(root, ".cache", "bench", "full-size");
const photosDir = join(root, "samples", "photos");
const PHOTOS = ["astronaut.jpg", "coffee.jpg", "rocket.jpg", "chelsea.jpg", "hubble_deep_field.jpg"];
const EXTRA_BOXES = 8;

interface ChildTask {
  name: string;
  task: ModelEntry["task"];
  folder: string;
  images: number;
  threads: number;
}

export interface ModelTiming {
  /** Load: resolve + sessions created (ms). */
  loadMs: number;
  /** Median ms per photo, one box / one label. */
  msPerImage: number;
  /** Every timed photo's ms. */
  runsMs: number[];
  /** Segmenters: added ms per extra box on the same photo. */
  msPerExtraBox?: number;
  /** Where a segmenter's time goes (medians): encoder, decoder (one box), the rest. */
  split?: { encodeMs: number; decodeMs: number; otherMs: number };
  peakRssMb: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

/** A box around the middle 80 % of the photo, then `n - 1` smaller ones spread over it. */
function boxesFor(image: { width: number; height: number }, n: number): Box[] {
  return Array.from({ length: n }, (_, i) => {
    const f = n === 1 ? 0 : i / (n - 1);
    const w = image.width * (0.8 - 0.4 * f);
    const h = image.height * (0.8 - 0.4 * f);
    const x0 = (image.width - w) * (0.5 + 0.4 * Math.sin(i));
    const y0 = (image.height - h) * (0.5 + 0.4 * Math.cos(i));
    return { x0, y0, x1: x0 + w, y1: y0 + h };
  });
}

async function photo(name: string): Promise<RgbImage> {
  return decodeImage(await readFile(join(photosDir, name)), name);
}

async function vmHwmMb(): Promise<number> {
  const status = await readFile("/proc/self/status", "utf8");
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

/** One model in this process: load, warm up, time. */
async function child(t: ChildTask): Promise<ModelTiming> {
  // threads 0: the workers' default for one mask job at a time (all cores).
  const opts = { download: false, intraOpThreads: t.threads || defaultIntraOpThreads(1) };
  const photos = await Promise.all(PHOTOS.slice(0, t.images + 1).map(photo));
  const runsMs: number[] = [];
  const t0 = performance.now();
  if (t.task === "segment") {
    const segmenter = await loadSegmenter(t.folder, opts);
    const loadMs = performance.now() - t0;
    const splits: { encodeMs: number; decodeMs: number; otherMs: number }[] = [];
    let one: SegmentResult | undefined;
    for (const [i, image] of photos.entries()) {
      const s = performance.now();
      const r = (one = await segmenter.segment(image, boxesFor(image, 1)));
      const ms = performance.now() - s;
      if (r.masks.length !== 1 || r.masks[0]?.width !== image.width) throw new Error(`${t.name}: expected one mask the photo's size`);
      if (i === 0) continue;
      runsMs.push(ms);
      splits.push({ encodeMs: r.timings.encodeMs, decodeMs: r.timings.decodeMs, otherMs: ms - r.timings.encodeMs - r.timings.decodeMs });
    }
    // The last photo, with one box (the loop's last run) and with 8.
    const last = photos[photos.length - 1] as RgbImage;
    if (!one) throw new Error(`${t.name}: no photo was segmented`);
    // onnxruntime plans each new box count on its first run: the second 8-box call is the one timed.
    await segmenter.segment(last, boxesFor(last, EXTRA_BOXES));
    const many = await segmenter.segment(last, boxesFor(last, EXTRA_BOXES));
    await segmenter.close();
    return {
      loadMs,
      msPerImage: median(runsMs),
      runsMs,
      msPerExtraBox: Math.max(0, many.timings.decodeMs + many.timings.postprocessMs - one.timings.decodeMs - one.timings.postprocessMs) / (EXTRA_BOXES - 1),
      split: { encodeMs: median(splits.map((x) => x.encodeMs)), decodeMs: median(splits.map((x) => x.decodeMs)), otherMs: median(splits.map((x) => x.otherMs)) },
      peakRssMb: await vmHwmMb(),
    };
  }
  let run: (image: RgbImage) => Promise<unknown>;
  let close: () => Promise<void>;
  if (t.task === "salient") {
    const model = await SalientModel.load(t.folder, opts);
    run = async (image) => {
      const r = await model.predict(image);
      if (r.alpha.width !== image.width) throw new Error(`${t.name}: alpha is not the photo's size`);
    };
    close = () => model.close();
  } else if (t.task === "detect") {
    const model = await loadTextDetectionModel(t.folder, opts);
    const detector = model.detector("Car", { scoreThreshold: 0 });
    run = (image) => detector.detect(image);
    close = () => model.close();
  } else {
    const detector = await loadFaceDetector(t.folder, opts);
    run = (image) => detector.detect(image);
    close = () => detector.close();
  }
  const loadMs = performance.now() - t0;
  for (const [i, image] of photos.entries()) {
    const s = performance.now();
    await run(image);
    if (i > 0) runsMs.push(performance.now() - s);
  }
  await close();
  return { loadMs, msPerImage: median(runsMs), runsMs, peakRssMb: await vmHwmMb() };
}

function runChild(t: ChildTask): Promise<ModelTiming> {
  return new Promise((done, fail) => {
    const p = spawn(process.execPath, ["--import", "tsx", import.meta.filename, "--child", JSON.stringify(t)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout.on("data", (b: Buffer) => (out += b.toString()));
    p.on("error", fail);
    p.on("exit", (code) => {
      const line = out.trim().split("\n").pop() ?? "";
      if (code !== 0) return fail(new Error(`${t.name}: child exited ${code}`));
      done(JSON.parse(line) as ModelTiming);
    });
  });
}

const fmtMs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { models: { type: "string" }, images: { type: "string", default: "3" }, threads: { type: "string", default: "0" } } });
  const images = Number(values.images);
  const threads = Number(values.threads);
  if (!(Number.isInteger(images) && images >= 1 && images < PHOTOS.length)) throw new Error(`--images must be 1-${PHOTOS.length - 1}`);
  const wanted = values.models?.split(",");
  const entries = listModels().filter((m) => !wanted || wanted.includes(m.name));
  if (wanted && entries.length !== wanted.length)
    throw new Error(
      `unknown model in --models; the manifest has ${listModels()
        .map((m) => m.name)
        .join(", ")}`,
    );
  await mkdir(work, { recursive: true });

  const cpu = cpus()[0]?.model ?? "unknown CPU";
  const ortVersion = (JSON.parse(await readFile(join(root, "node_modules", "onnxruntime-node", "package.json"), "utf8")) as { version: string }).version;
  const results: Record<string, ModelTiming & { params: number; gmacs: number; graph: "random-weight full-size" }> = {};
  for (const m of entries) {
    const build = fullSizeBuilders[m.name];
    if (!build) throw new Error(`${m.name}: no full-size builder in benchmarks/standins/full-size-models.ts`);
    process.stderr.write(`${m.name}: building the full-size graph ...\n`);
    const built = await build(work);
    process.stderr.write(`${m.name}: ${(built.params / 1e6).toFixed(1)} M params, ${(built.macs / 1e9).toFixed(1)} G multiply-adds; timing ...\n`);
    const timing = await runChild({ name: m.name, task: m.task, folder: built.dir, images, threads });
    results[m.name] = { ...timing, params: built.params, gmacs: built.macs / 1e9, graph: "random-weight full-size" };
    process.stderr.write(
      `${m.name}: ${fmtMs(timing.msPerImage)} per image${timing.msPerExtraBox !== undefined ? `, +${fmtMs(timing.msPerExtraBox)} per extra box` : ""}, peak RSS ${timing.peakRssMb.toFixed(0)} MB\n`,
    );
  }

  const machine = `${cpus().length} cores (${cpu}), onnxruntime-node ${ortVersion} CPU, ${threads || `default (${defaultIntraOpThreads(1)})`} intra-op threads`;
  const rows = Object.entries(results).map(
    ([name, r]) =>
      `| ${name} | ${(r.params / 1e6).toFixed(1)} | ${r.gmacs < 10 ? r.gmacs.toFixed(1) : r.gmacs.toFixed(0)} | ${fmtMs(r.loadMs)} | ${fmtMs(r.msPerImage)} | ${r.msPerExtraBox !== undefined ? fmtMs(r.msPerExtraBox) : "-"} | ${r.peakRssMb.toFixed(0)} |`,
  );
  console.log(`\n${machine}; median of ${images} photos after a warm-up\n`);
  console.log("| model | params (M) | G multiply-adds | load | per image | per extra box | peak RSS (MB) |");
  console.log("|---|---|---|---|---|---|---|");
  console.log(rows.join("\n"));

  const date = new Date().toISOString().slice(0, 10);
  const report = { date, machine, images, results };
  await mkdir(join(root, "benchmarks", "results"), { recursive: true });
  await writeFileAtomic(join(root, "benchmarks", "results", "models.json"), JSON.stringify(report, null, 2) + "\n");
  // src/models/speed.json keeps earlier figures of models not timed in this run.
  const speedPath = join(root, "models", "speed.json");
  const previous = (JSON.parse(await readFile(speedPath, "utf8").catch(() => "{}")) as { models?: Record<string, unknown> }).models ?? {};
  const speeds = Object.fromEntries(
    Object.entries(results).map(([name, r]) => [
      name,
      {
        msPerImage: Math.round(r.msPerImage),
        ...(r.msPerExtraBox !== undefined && { msPerExtraBox: Math.round(r.msPerExtraBox) }),
        peakRssMb: Math.round(r.peakRssMb),
        measured: date,
      },
    ]),
  );
  await writeFileAtomic(
    speedPath,
    JSON.stringify({ machine, weights: "random-weight full-size graphs of each architecture (benchmarks/models.ts)", models: { ...previous, ...speeds } }, null, 2) + "\n",
  );
  console.log(`\nwrote benchmarks/results/models.json and src/models/speed.json`);
}

if (process.argv[2] === "--child") {
  child(JSON.parse(process.argv[3] as string) as ChildTask)
    .then((r) => console.log(JSON.stringify(r)))
    .catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
} else {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
