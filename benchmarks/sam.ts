/**
 * The SAM step on CPU with a full-size random-weight SAM ViT-B (benchmarks/standins/make-sam-vit-encoder.ts +
 * benchmarks/standins/make-sam-decoder.ts): maskfleet's mask worker against the naive path, where the time goes,
 * intra-op threads for 1 and 2 worker processes, and the encoder's GFLOP/s against a MatMul peak
 * measured in the same run.
 *
 *   npx tsx benchmarks/sam.ts [--images 5] [--sweep-images 3] [--skip-sweep] [--ep cpu|cuda]
 *
 * Every measurement runs in its own child process (`node --import tsx benchmarks/sam.ts --child`),
 * so peak RSS (VmHWM) is per path; each child processes one untimed warm-up photo first.
 * - maskfleet: the real maskStage (src/stages/mask.ts) on an in-process context
 *   (benchmarks/inline-context.ts): loadSegmenter once, encoder once per photo, decoder once for all
 *   boxes, low-res masks upscaled by sam-processing.ts, masks cleaned, three PNGs written to a
 *   LocalStore, mask.json.
 * - naive: the same maskStage with a segmenter that does what the old per-photo script did: new
 *   encoder and decoder sessions per photo with onnxruntime's default options (but the maskfleet
 *   path's intra-op threads: the paths differ in method, not threads), the decoder once per box,
 *   and each chosen low-res mask upscaled per pixel into float32 arrays at 1024 x 1024 and at the
 *   original size (as SamPredictor's postprocess_masks), then thresholded.
 * Threads 0 is maskfleet's default, cores / mask concurrency (defaultIntraOpThreads); the MatMul
 * peak runs on all cores.
 * Prints markdown tables and writes benchmarks/results/sam.json.
 */
import { spawn } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import sharp from "sharp";
import * as ort from "onnxruntime-node";
import { loadConfig } from "../src/config/config.js";
import { decodeImage, encodePng, rgbaFrom } from "../src/imaging/image.js";
import { outputKeys, queuedImageOf } from "../src/pipeline/jobs.js";
import { fillHoles, removeSmallIslands, toBedrockMask, unionMasks } from "../src/imaging/mask-ops.js";
import { stepTotal } from "../src/runtime/metrics.js";
import { defaultIntraOpThreads, type ExecutionProvider } from "../src/runtime/onnx.js";
import { openStore } from "../src/storage/index.js";
import type { Box, RgbImage } from "../src/imaging/types.js";
import { resolveModel } from "../src/models/registry.js";
import { SAM_INPUT_SIDE, resizeLongestSide, scaleBox, toHwcFloat, type Size } from "../src/segmenters/sam-processing.js";
import { loadSegmenter, type Segmenter, type SegmentResult } from "../src/segmenters/segmenter.js";
import { maskStage } from "../src/stages/mask.js";
import { fakeJob, imageJobFor, inlineContext } from "./inline-context.js";
import { photoVariant, photoVariantName } from "../test/fixtures/photo-variants.js";
import { samDecoderStats } from "./standins/make-sam-decoder.js";
import { makeVitBSamModel } from "./standins/make-sam-vit-b.js";
import { vitBEncoderStats } from "./standins/make-sam-vit-encoder.js";
import { encodeModel, GraphBuilder, valueInfo } from "../test/support/onnx/onnx-graph.js";

const root = resolve(import.meta.dirname, "..");
const work = join(root, ".cache", "bench");
const thisFile = import.meta.filename;

// ---------------------------------------------------------------------------------------------
// The naive path.

/** Per-pixel bilinear (PyTorch align_corners=False) of a float plane, no precomputed maps, no row reuse. */
function interpolateNaive(src: Float32Array, sw: number, sh: number, stride: number, ow: number, oh: number, scaleW: number, scaleH: number): Float32Array {
  const out = new Float32Array(ow * oh);
  for (let y = 0; y < oh; y++) {
    const fy = Math.max((y + 0.5) * scaleH - 0.5, 0);
    const y0 = Math.min(Math.floor(fy), sh - 1);
    const y1 = Math.min(y0 + 1, sh - 1);
    const wy = fy - y0;
    for (let x = 0; x < ow; x++) {
      const fx = Math.max((x + 0.5) * scaleW - 0.5, 0);
      const x0 = Math.min(Math.floor(fx), sw - 1);
      const x1 = Math.min(x0 + 1, sw - 1);
      const wx = fx - x0;
      const top = src[y0 * stride + x0]! * (1 - wx) + src[y0 * stride + x1]! * wx;
      const bottom = src[y1 * stride + x0]! * (1 - wx) + src[y1 * stride + x1]! * wx;
      out[y * ow + x] = top * (1 - wy) + bottom * wy;
    }
  }
  return out;
}

/** postprocess_masks as a straight port: 256 -> 1024 x 1024 floats, crop, -> original size floats, > 0. */
function naiveUpscale(low: Float32Array, resized: Size, original: Size): Uint8Array {
  const full = interpolateNaive(low, 256, 256, 256, SAM_INPUT_SIDE, SAM_INPUT_SIDE, 256 / SAM_INPUT_SIDE, 256 / SAM_INPUT_SIDE);
  const crop = full.subarray(0, resized.height * SAM_INPUT_SIDE);
  const up = interpolateNaive(
    crop,
    resized.width,
    resized.height,
    SAM_INPUT_SIDE,
    original.width,
    original.height,
    resized.width / original.width,
    resized.height / original.height,
  );
  const mask = new Uint8Array(up.length);
  for (let i = 0; i < up.length; i++) mask[i] = up[i]! > 0 ? 255 : 0;
  return mask;
}

/** The old script's way: sessions made per photo (default options but `threads`), the decoder once per box. */
class NaiveSegmenter implements Segmenter {
  readonly executionProvider: string;
  constructor(
    readonly name: string,
    private readonly files: { encoder: string; decoder: string },
    private readonly ep: ExecutionProvider,
    private readonly threads: number,
  ) {
    this.executionProvider = ep;
  }

  async segment(image: RgbImage, boxes: Box[]): Promise<SegmentResult> {
    const opts = { intraOpNumThreads: this.threads, ...(this.ep !== "cpu" && { executionProviders: [this.ep] }) };
    const t0 = performance.now();
    const encoder = await ort.InferenceSession.create(this.files.encoder, opts);
    const decoder = await ort.InferenceSession.create(this.files.decoder, opts);
    const resized = await resizeLongestSide(image);
    const input = new ort.Tensor("float32", toHwcFloat(resized), [resized.height, resized.width, 3]);
    const t1 = performance.now();
    const embeddings = (await encoder.run({ input_image: input })).image_embeddings!;
    const t2 = performance.now();
    const lows: Float32Array[] = [];
    const scores: number[] = [];
    for (const box of boxes) {
      const out = await decoder.run({
        image_embeddings: embeddings,
        point_coords: new ort.Tensor("float32", Float32Array.from(scaleBox(box, image, resized)), [1, 2, 2]),
        point_labels: new ort.Tensor("float32", Float32Array.from([2, 3]), [1, 2]),
        mask_input: new ort.Tensor("float32", new Float32Array(256 * 256), [1, 1, 256, 256]),
        has_mask_input: new ort.Tensor("float32", new Float32Array(1), [1]),
        orig_im_size: new ort.Tensor("float32", Float32Array.from([image.height, image.width]), [2]),
      });
      const iou = out.iou_predictions!.data as Float32Array;
      let best = 1;
      for (let k = 2; k < iou.length; k++) if (iou[k]! > iou[best]!) best = k;
      if (iou.length === 1) best = 0;
      scores.push(iou[best]!);
      lows.push((out.low_res_masks!.data as Float32Array).slice(best * 65536, (best + 1) * 65536));
    }
    const t3 = performance.now();
    const masks = lows.map((low) => ({ data: naiveUpscale(low, resized, image), width: image.width, height: image.height }));
    const t4 = performance.now();
    await Promise.all([encoder.release(), decoder.release()]);
    return { masks, scores, timings: { preprocessMs: t1 - t0, encodeMs: t2 - t1, decodeMs: t3 - t2, postprocessMs: t4 - t3 } };
  }

  async close(): Promise<void> {}
}

// ---------------------------------------------------------------------------------------------
// Children.

interface ThroughputTask {
  kind: "throughput";
  path: "maskfleet" | "naive";
  model: string;
  photos: string[];
  boxes: number;
  threads: number;
  ep: ExecutionProvider;
  out: string;
}

interface PerImage {
  ms: number;
  loadMs: number;
  preprocessMs: number;
  encodeMs: number;
  decodeMs: number;
  postprocessMs: number;
  cleanMs: number;
  writeMs: number;
  storeWriteMs: number;
}

interface ThroughputResult {
  images: PerImage[];
  startedAt: number;
  endedAt: number;
  loadModelMs: number;
  peakRssMb: number;
}

/** Boxes spread over the photo: the first is the whole object area, the rest overlapping tiles. */
function boxesFor(size: Size, n: number): Box[] {
  return Array.from({ length: n }, (_, i) => {
    const f = n === 1 ? 0 : i / (n - 1);
    const w = size.width * (0.9 - 0.5 * f);
    const h = size.height * (0.9 - 0.5 * f);
    const x0 = (size.width - w) * (0.5 + 0.4 * Math.sin(i));
    const y0 = (size.height - h) * (0.5 + 0.4 * Math.cos(i));
    return { x0, y0, x1: x0 + w, y1: y0 + h };
  });
}

async function vmHwmMb(): Promise<number> {
  const status = await readFile("/proc/self/status", "utf8");
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

async function throughputChild(task: ThroughputTask): Promise<ThroughputResult> {
  const config = loadConfig({ env: {}, overrides: { out: task.out, target: "boxes", samModel: task.model, threads: task.threads, executionProvider: task.ep } });
  const naive = async (spec: string) => {
    const model = await resolveModel(spec, { download: false, task: "segment" });
    return new NaiveSegmenter(
      model.name,
      { encoder: model.files.encoder!, decoder: model.files.decoder! },
      task.ep,
      config.threads || defaultIntraOpThreads(config.concurrency.mask),
    );
  };
  const ctx = inlineContext(config, task.path === "naive" ? { segmenter: naive } : {});
  const t0 = performance.now();
  await ctx.segmenter(task.model);
  const loadModelMs = performance.now() - t0;
  const store = ctx.store(config.out);
  const images: PerImage[] = [];
  let startedAt = 0;
  for (const [i, photo] of task.photos.entries()) {
    if (i === 1) startedAt = Date.now();
    const meta = await sharp(photo).metadata();
    const job = await imageJobFor(config, photo, `img-${i}.jpg`);
    const keys = outputKeys(job.outPrefix);
    await store.write(keys.detections, Buffer.from(JSON.stringify({ boxes: boxesFor({ width: meta.width, height: meta.height }, task.boxes) })));
    // Image loading and store writes as the context's own step metrics record them.
    const steps = ["input_read", "image_decode", "store_write"] as const;
    const before = await Promise.all(steps.map(stepTotal));
    const s = performance.now();
    await maskStage(fakeJob(queuedImageOf(job, "000000000000", job.options)), ctx);
    const ms = performance.now() - s;
    const after = await Promise.all(steps.map(stepTotal));
    const spent = (k: number) => (after[k]?.ms ?? 0) - (before[k]?.ms ?? 0);
    ctx.pendingGenerate.length = 0;
    const info = JSON.parse((await store.read(keys.maskInfo)).toString("utf8")) as { timings: Omit<PerImage, "ms" | "loadMs" | "storeWriteMs"> };
    if (i > 0) images.push({ ms, loadMs: spent(0) + spent(1), ...info.timings, storeWriteMs: spent(2) });
  }
  const endedAt = Date.now();
  await ctx.close();
  return { images, startedAt, endedAt, loadModelMs, peakRssMb: await vmHwmMb() };
}

interface StepsTask {
  kind: "steps";
  model: string;
  photo: string;
  boxes: number;
  repeats: number;
  out: string;
  ep: ExecutionProvider;
}

/** Each step of the mask worker on its own, timed (median of `repeats` after a warm-up). */
async function stepsChild(task: StepsTask): Promise<Record<string, number>> {
  const bytes = await readFile(task.photo);
  const segmenter = await loadSegmenter(task.model, { download: false, executionProvider: task.ep, intraOpThreads: defaultIntraOpThreads(1) });
  const store = openStore(task.out);
  const runs: Record<string, number>[] = [];
  for (let r = 0; r <= task.repeats; r++) {
    const t: Record<string, number> = {};
    const time = async <T>(name: string, f: () => Promise<T> | T): Promise<T> => {
      const s = performance.now();
      const v = await f();
      t[name] = (t[name] ?? 0) + performance.now() - s;
      return v;
    };
    const image = await time("decode", () => decodeImage(bytes, "photo.jpg"));
    const seg = await segmenter.segment(image, boxesFor(image, task.boxes));
    t["resize/normalise"] = seg.timings.preprocessMs;
    t.encoder = seg.timings.encodeMs;
    t.decoder = seg.timings.decodeMs;
    t["mask upscaling"] = seg.timings.postprocessMs;
    const mask = await time("clean (union, holes, islands)", () => removeSmallIslands(fillHoles(unionMasks(seg.masks)), 64));
    const pngs = [
      await time("encode PNG", () => encodePng(mask)),
      await time("encode PNG", async () => encodePng(toBedrockMask(mask))),
      await time("encode PNG", async () => encodePng(rgbaFrom(image, mask))),
    ];
    for (const [i, png] of pngs.entries()) await time("store write", () => store.write(`r${r}/out-${i}.png`, png));
    t.megapixels = (image.width * image.height) / 1e6;
    if (r > 0) runs.push(t);
  }
  await segmenter.close();
  return Object.fromEntries(Object.keys(runs[0]!).map((k) => [k, median(runs.map((x) => x[k]!))]));
}

interface MatmulTask {
  kind: "matmul";
  size: number;
  threads: number;
  repeats: number;
  ep: ExecutionProvider;
}

/** GFLOP/s of one large float32 MatMul in onnxruntime (median of `repeats`). */
async function matmulChild(task: MatmulTask): Promise<{ gflops: number; ms: number }> {
  const n = task.size;
  const g = new GraphBuilder(1);
  const a = { name: "a", shape: [n, n], dtype: "float32" } as const;
  const b = g.param("b", [n, n], { kind: "normal", mean: 0, std: 1 });
  const c = g.node("MatMul", [a, b], [n, n], {}, "c");
  const bytes = encodeModel(g, { graphName: "matmul", producerName: "benchmarks/sam.ts", docString: "", inputs: [valueInfo("a", [n, n])], outputs: [valueInfo(c.name, [n, n])] });
  const session = await ort.InferenceSession.create(bytes, {
    graphOptimizationLevel: "all",
    executionProviders: [task.ep],
    ...(task.threads > 0 ? { intraOpNumThreads: task.threads } : {}),
  });
  const feeds = {
    a: new ort.Tensor(
      "float32",
      Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000),
      [n, n],
    ),
  };
  await session.run(feeds);
  const times: number[] = [];
  for (let r = 0; r < task.repeats; r++) {
    const s = performance.now();
    await session.run(feeds);
    times.push(performance.now() - s);
  }
  await session.release();
  const ms = median(times);
  return { ms, gflops: (2 * n * n * n) / (ms / 1000) / 1e9 };
}

type Task = ThroughputTask | StepsTask | MatmulTask;

async function child(task: Task): Promise<unknown> {
  if (task.kind === "throughput") return throughputChild(task);
  if (task.kind === "steps") return stepsChild(task);
  return matmulChild(task);
}

// ---------------------------------------------------------------------------------------------
// Parent.

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function runChild<T>(task: Task): Promise<T> {
  return new Promise((done, fail) => {
    const c = spawn(process.execPath, ["--import", "tsx", thisFile, "--child", JSON.stringify(task)], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    c.stdout.on("data", (d: Buffer) => (out += d.toString()));
    c.on("error", fail);
    c.on("close", (code) => (code === 0 ? done(JSON.parse(out.trim().split("\n").pop()!) as T) : fail(new Error(`child ${task.kind} exited ${code}`))));
  });
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

interface PathSummary {
  path: string;
  boxes: number;
  threads: string;
  workers: number;
  images: number;
  imagesPerSec: number;
  medianMs: number;
  medianSteps: Record<string, number>;
  loadModelMs: number;
  peakRssMb: number;
}

function summarize(path: string, boxes: number, threads: number, results: ThroughputResult[]): PathSummary {
  const images = results.flatMap((r) => r.images);
  const wall = (Math.max(...results.map((r) => r.endedAt)) - Math.min(...results.map((r) => r.startedAt))) / 1000;
  const steps = ["loadMs", "preprocessMs", "encodeMs", "decodeMs", "postprocessMs", "cleanMs", "writeMs", "storeWriteMs"] as const;
  return {
    path,
    boxes,
    threads: threads === 0 ? `default (${defaultIntraOpThreads(1)})` : String(threads),
    workers: results.length,
    images: images.length,
    // One worker: 1000 / median ms per image. Several: all timed images over the wall time they span.
    imagesPerSec: round(results.length === 1 ? 1000 / median(images.map((i) => i.ms)) : images.length / wall, 3),
    medianMs: round(median(images.map((i) => i.ms)), 0),
    medianSteps: Object.fromEntries(steps.map((k) => [k, round(median(images.map((i) => i[k])), 1)])),
    loadModelMs: round(Math.max(...results.map((r) => r.loadModelMs)), 0),
    peakRssMb: round(Math.max(...results.map((r) => r.peakRssMb)), 0),
  };
}

async function makePhotos(dir: string, count: number, width: number, first = 0): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  for (let i = first; i < first + count; i++) {
    const file = join(dir, photoVariantName(i));
    await writeFile(file, await photoVariant(i, { width }));
    files.push(file);
  }
  return files;
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      child: { type: "string" },
      images: { type: "string", default: "5" },
      "sweep-images": { type: "string", default: "3" },
      "skip-sweep": { type: "boolean", default: false },
      "steps-only": { type: "boolean", default: false },
      model: { type: "string" },
      ep: { type: "string", default: "cpu" },
    },
  });
  if (args.child) {
    const result = await child(JSON.parse(args.child) as Task);
    process.stdout.write(`\n${JSON.stringify(result)}\n`);
    return;
  }
  const ep = args.ep as ExecutionProvider;
  const n = Number(args.images);
  const sweepN = Number(args["sweep-images"]);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const model = args.model ? resolve(args.model) : await makeVitBSamModel(work);
  const out = join(work, "sam-out");
  await rm(out, { recursive: true, force: true });
  // ~2 MP photos (1600 px wide) for throughput; one ~12 MP photo (4000 px wide, 3:2) for the steps.
  const photos = await makePhotos(join(work, "sam-photos"), n + 1, 1600);
  const big = (await makePhotos(join(work, "sam-photos-12mp"), 1, 4000, 1))[0]!;
  const throughput = async (path: "maskfleet" | "naive", boxes: number, threads: number, workers: number, count: number) => {
    log(`${path}: ${boxes} box(es), threads ${threads || "default"}, ${workers} worker(s), ${count} photos each...`);
    // Each measurement writes to a folder of its own, emptied first: a mask stored by an earlier one would be reused, not computed.
    const dirs = Array.from({ length: workers }, (_, w) => join(out, `${path}-${boxes}-${threads}-${workers}w-${w}`));
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
    const results = await Promise.all(
      dirs.map((dir) => runChild<ThroughputResult>({ kind: "throughput", path, model, boxes, threads, ep, out: dir, photos: photos.slice(0, count + 1) })),
    );
    return summarize(path, boxes, threads, results);
  };

  const steps: Record<string, Record<string, number>> = {};
  for (const [label, photo] of [
    ["2 MP", photos[1]!],
    ["12 MP", big],
  ] as const) {
    for (const boxes of [1, 16]) {
      log(`steps: ${label}, ${boxes} box(es)...`);
      steps[`${label}, ${boxes} box${boxes > 1 ? "es" : ""}`] = await runChild({ kind: "steps", model, photo, boxes, repeats: 2, out: join(out, "steps"), ep });
    }
  }
  const rows: PathSummary[] = [];
  if (!args["steps-only"]) {
    for (const boxes of [1, 16]) for (const path of ["maskfleet", "naive"] as const) rows.push(await throughput(path, boxes, 0, 1, n));
  }
  const sweep: PathSummary[] = [];
  if (!args["skip-sweep"] && !args["steps-only"]) {
    for (const workers of [1, 2]) for (const threads of [1, 2, 0]) sweep.push(await throughput("maskfleet", 1, threads, workers, sweepN));
  }
  log("matmul peak...");
  const allCores = defaultIntraOpThreads(1);
  const peak = await runChild<{ gflops: number; ms: number }>({ kind: "matmul", size: 2048, threads: allCores, repeats: 7, ep });
  const peak1 = await runChild<{ gflops: number; ms: number }>({ kind: "matmul", size: 2048, threads: 1, repeats: 5, ep });

  const enc = vitBEncoderStats();
  const dec = samDecoderStats();
  const row = (path: string, boxes: number) => rows.find((r) => r.path === path && r.boxes === boxes);
  // (t16 - t1) / 15, per photo; "exEncoder" leaves out the encoder's run-to-run noise (the
  // encoder does the same work whatever the number of boxes).
  const perBox = (path: string, exEncoder = false) => {
    const a = row(path, 1);
    const b = row(path, 16);
    const t = (r: PathSummary) => r.medianMs - (exEncoder ? r.medianSteps.encodeMs! : 0);
    return a && b ? round((t(b) - t(a)) / 15, 1) : NaN;
  };
  const mf1 = row("maskfleet", 1);
  const encoderSec = (mf1?.medianSteps.encodeMs ?? steps["2 MP, 1 box"]!.encoder!) / 1000;
  const achieved = enc.gflop / encoderSec;
  const report = {
    benchmark: "sam",
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGb: Math.round(totalmem() / 2 ** 30), node: process.version, onnxruntime: ort.env.versions.common, ep },
    model: { folder: model, encoderGflop: round(enc.gflop, 1), encoderParams: enc.params, decoderGflopPerBox: round(dec.gflopPerBox, 2), decoderParams: dec.params },
    workload: { photos: n, warmup: 1, photoSize: "1600 px wide (1.9-2.6 MP)", stepsPhoto: "4000 px wide (12 MP)" },
    rows,
    ratios: {
      imagesPerSec1Box: mf1 && row("naive", 1) ? round(mf1.imagesPerSec / row("naive", 1)!.imagesPerSec, 2) : null,
      imagesPerSec16Boxes: row("maskfleet", 16) && row("naive", 16) ? round(row("maskfleet", 16)!.imagesPerSec / row("naive", 16)!.imagesPerSec, 2) : null,
      msPerExtraBox: { maskfleet: perBox("maskfleet"), naive: perBox("naive") },
      msPerExtraBoxExEncoder: { maskfleet: perBox("maskfleet", true), naive: perBox("naive", true) },
    },
    steps,
    sweep,
    limit: {
      matmul: { size: 2048, allCores: { threads: allCores, gflops: round(peak.gflops), ms: round(peak.ms) }, oneThread: { gflops: round(peak1.gflops), ms: round(peak1.ms) } },
      encoder: { gflopPerImage: round(enc.gflop, 1), seconds: round(encoderSec, 2), gflops: round(achieved), ofPeak: round(achieved / peak.gflops, 2) },
      decoder: { gflopPerBox: round(dec.gflopPerBox, 2), floorMsPerBoxAtPeak: round((dec.gflopPerBox / peak.gflops) * 1000, 1) },
    },
  };
  const resultsDir = join(root, "benchmarks", "results");
  await mkdir(resultsDir, { recursive: true });
  await writeFile(join(resultsDir, "sam.json"), JSON.stringify(report, null, 2) + "\n");

  const p = (s: string) => console.log(s);
  p(`\nSAM step, full-size random-weight SAM ViT-B (encoder ${round(enc.gflop)} GFLOP/photo, decoder ${round(dec.gflopPerBox, 2)} GFLOP/box), ${cpus().length} CPUs, ${ep}`);
  p("| path | boxes | images/s | median ms/photo | load+decode ms | resize ms | encoder ms | decoder ms | upscale ms | clean ms | PNG+write ms | peak RSS MB |");
  p("|---|---|---|---|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    const s = r.medianSteps;
    p(
      `| ${r.path} | ${r.boxes} | ${r.imagesPerSec} | ${r.medianMs} | ${s.loadMs} | ${s.preprocessMs} | ${s.encodeMs} | ${s.decodeMs} | ${s.postprocessMs} | ${s.cleanMs} | ${s.writeMs} | ${r.peakRssMb} |`,
    );
  }
  p(
    `\nmaskfleet / naive images/s: 1 box ${report.ratios.imagesPerSec1Box}x, 16 boxes ${report.ratios.imagesPerSec16Boxes}x; ms per extra box: maskfleet ${perBox("maskfleet")}, naive ${perBox("naive")} (without the encoder: ${perBox("maskfleet", true)}, ${perBox("naive", true)})`,
  );
  p("\nWhere the time goes (maskfleet path, median ms):");
  const stepNames = Object.keys(Object.values(steps)[0]!).filter((k) => k !== "megapixels");
  p(`| photo | ${stepNames.join(" | ")} |`);
  p(`|---|${stepNames.map(() => "---").join("|")}|`);
  for (const [k, v] of Object.entries(steps)) p(`| ${k} (${round(v.megapixels!)} MP) | ${stepNames.map((s) => round(v[s]!, 0)).join(" | ")} |`);
  if (sweep.length) {
    p("\nIntra-op threads (1 box, maskfleet path):");
    p("| worker processes | threads per session | images/s (all workers) | median ms/photo | peak RSS MB per worker |");
    p("|---|---|---|---|---|");
    for (const r of sweep) p(`| ${r.workers} | ${r.threads} | ${r.imagesPerSec} | ${r.medianMs} | ${r.peakRssMb} |`);
  }
  p(
    `\nMachine limit: MatMul 2048^3 ${round(peak.gflops)} GFLOP/s (${allCores} threads), ${round(peak1.gflops)} GFLOP/s (1 thread); encoder ${round(achieved)} GFLOP/s = ${Math.round((achieved / peak.gflops) * 100)}% of peak`,
  );
  p(`\nreport: ${join(resultsDir, "sam.json")}`);
}

await main();
