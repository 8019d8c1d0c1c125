/**
 * Foreground estimation (src/imaging/foreground.ts) on a synthetic 12 MP photo: a large fur-coloured
 * object with a soft edge 10-30 px wide and ~600 hair-like strands over green foliage, composited
 * in 8 bits from a known foreground, so the fringe error is measurable:
 *
 *   time          estimateForeground with the defaults, median of --repeats (single thread)
 *   fringe        mean |F - true F| in the soft band (0 < alpha < 255), 8-bit levels, plain and
 *                 alpha-weighted: the naive cutout (F = photo) against the estimate
 *   peak RSS      VmHWM after building the scene, and after the timed runs
 *   shortcut      the same with every level swept whole (the plain method, fullLevelMaxPixels =
 *                 Infinity): its time and peak RSS, and how far the defaults' result lies from it
 *                 in the band, at alpha = 0 within 8 px of the edge, and anywhere
 *
 *   node --import tsx benchmarks/foreground.ts [--width 4000] [--height 3000] [--repeats 3] [--skip-plain]
 *
 * Prints a table and writes benchmarks/results/foreground.json.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { estimateForeground, FOREGROUND_DEFAULTS } from "../src/imaging/foreground.js";
import type { Mask, RgbImage } from "../src/imaging/types.js";

const root = resolve(import.meta.dirname, "..");
const NEAR_EDGE_PX = 8;

/** The true foreground: warm fur colours, slowly varying, with a faint fine texture. */
function trueForeground(x: number, y: number, c: number): number {
  if (c === 0) return 0.65 + 0.12 * Math.sin(x / 90 + 0.7 * Math.sin(y / 140)) + 0.02 * Math.sin(x / 3.1);
  if (c === 1) return 0.42 + 0.08 * Math.cos(y / 110) + 0.02 * Math.sin(y / 2.7);
  return 0.24 + 0.06 * Math.sin((x - y) / 160);
}

function background(x: number, y: number, c: number): number {
  if (c === 0) return 0.18 + 0.08 * Math.sin(x / 37) * Math.cos(y / 41);
  if (c === 1) return 0.55 + 0.15 * Math.sin((x + 2 * y) / 150) + 0.05 * Math.sin(x / 9) * Math.cos(y / 11);
  return 0.16 + 0.05 * Math.cos(y / 53);
}

function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A wavy ellipse (soft ramp 10-30 px, varying around it) and strands fanning out of its upper side. */
function makeScene(width: number, height: number): { photo: RgbImage; alpha: Mask } {
  const cx = width * 0.5;
  const cy = height * 0.55;
  const rx = width * 0.31;
  const ry = height * 0.32;
  const boundary = (theta: number) => 1 + 0.06 * Math.sin(5 * theta) + 0.03 * Math.sin(11 * theta + 1);
  const alphaF = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const u = (x - cx) / rx;
      const v = (y - cy) / ry;
      const theta = Math.atan2(v, u);
      const edge = boundary(theta);
      const insidePx = (edge - Math.hypot(u, v)) * Math.hypot(rx * Math.cos(theta), ry * Math.sin(theta));
      const ramp = 20 + 10 * Math.sin(3 * theta);
      alphaF[y * width + x] = Math.min(1, Math.max(0, insidePx / ramp + 0.5));
    }
  }
  const random = mulberry32(7);
  for (let s = 0; s < 600; s++) {
    const theta = -2.7 + 2.2 * random();
    const edge = boundary(theta);
    const x0 = cx + rx * edge * Math.cos(theta);
    const y0 = cy + ry * edge * Math.sin(theta);
    const direction = Math.atan2(Math.sin(theta) / ry, Math.cos(theta) / rx) + 0.5 * (random() - 0.5);
    const length = 40 + 120 * random();
    const peak = 0.4 + 0.55 * random();
    const halfWidth = 0.8 + 0.8 * random();
    const curl = 4 * (random() - 0.5);
    for (let t = -10; t < length; t += 0.5) {
      const sx = x0 + t * Math.cos(direction) + curl * Math.sin(t / 25) * -Math.sin(direction);
      const sy = y0 + t * Math.sin(direction) + curl * Math.sin(t / 25) * Math.cos(direction);
      const strength = peak * Math.pow(1 - Math.max(0, t) / length, 0.7);
      for (let py = Math.floor(sy) - 2; py <= Math.floor(sy) + 2; py++) {
        for (let px = Math.floor(sx) - 2; px <= Math.floor(sx) + 2; px++) {
          if (px < 0 || py < 0 || px >= width || py >= height) continue;
          const i = py * width + px;
          alphaF[i] = Math.max(alphaF[i]!, strength * Math.max(0, 1 - Math.hypot(px - sx, py - sy) / halfWidth));
        }
      }
    }
  }
  const photo = new Uint8Array(width * height * 3);
  const alpha = new Uint8Array(width * height);
  for (let y = 0, i = 0; y < height; y++) {
    for (let x = 0; x < width; x++, i++) {
      const a8 = Math.round(alphaF[i]! * 255);
      alpha[i] = a8;
      const a = a8 / 255;
      for (let c = 0; c < 3; c++) photo[i * 3 + c] = Math.round(255 * (a * trueForeground(x, y, c) + (1 - a) * background(x, y, c)));
    }
  }
  return { photo: { data: photo, width, height }, alpha: { data: alpha, width, height } };
}

/** Mean |F - true F| over the soft band, in 8-bit levels: plain and alpha-weighted. */
function fringeError(alpha: Mask, estimate: Uint8Array): { plain: number; alphaWeighted: number } {
  let sum = 0;
  let weighted = 0;
  let count = 0;
  let weight = 0;
  for (let y = 0, i = 0; y < alpha.height; y++) {
    for (let x = 0; x < alpha.width; x++, i++) {
      const a = alpha.data[i]!;
      if (a === 0 || a === 255) continue;
      let e = 0;
      for (let c = 0; c < 3; c++) e += Math.abs(estimate[i * 3 + c]! - 255 * trueForeground(x, y, c)) / 3;
      sum += e;
      weighted += (a / 255) * e;
      count++;
      weight += a / 255;
    }
  }
  return { plain: round(sum / count, 2), alphaWeighted: round(weighted / weight, 2) };
}

/** Alpha-0 pixels within `radius` px (square) of an edge pixel: soft, or differing from its right or lower neighbour. */
function nearEdge(alpha: Mask, radius: number): Uint8Array {
  const { width, height, data } = alpha;
  const edge = new Uint8Array(width * height);
  for (let y = 0, i = 0; y < height; y++) {
    for (let x = 0; x < width; x++, i++) {
      const a = data[i]!;
      if ((a !== 0 && a !== 255) || (x + 1 < width && a !== data[i + 1]) || (y + 1 < height && a !== data[i + width])) edge[i] = 1;
    }
  }
  // Square dilation, rows then columns: a pixel is near when the count of edge pixels in its window is > 0.
  const rows = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    let inWindow = 0;
    for (let x = -radius; x < width; x++) {
      if (x + radius < width) inWindow += edge[y * width + x + radius]!;
      if (x - radius - 1 >= 0) inWindow -= edge[y * width + x - radius - 1]!;
      if (x >= 0) rows[y * width + x] = inWindow > 0 ? 1 : 0;
    }
  }
  const near = new Uint8Array(width * height);
  for (let x = 0; x < width; x++) {
    let inWindow = 0;
    for (let y = -radius; y < height; y++) {
      if (y + radius < height) inWindow += rows[(y + radius) * width + x]!;
      if (y - radius - 1 >= 0) inWindow -= rows[(y - radius - 1) * width + x]!;
      if (y >= 0 && inWindow > 0 && data[y * width + x] === 0) near[y * width + x] = 1;
    }
  }
  return near;
}

/** |a - b| over the pixels `keep` selects, in 8-bit levels: max, mean, and the share of values that differ. */
function deviation(a: Uint8Array, b: Uint8Array, keep: (i: number) => boolean): { max: number; mean: number; differingShare: number; pixels: number } {
  let max = 0;
  let sum = 0;
  let differing = 0;
  let pixels = 0;
  for (let i = 0; i * 3 < a.length; i++) {
    if (!keep(i)) continue;
    pixels++;
    for (let c = 0; c < 3; c++) {
      const d = Math.abs(a[i * 3 + c]! - b[i * 3 + c]!);
      max = Math.max(max, d);
      sum += d;
      if (d) differing++;
    }
  }
  return { max, mean: round(sum / (3 * pixels), 4), differingShare: round(differing / (3 * pixels), 6), pixels };
}

async function vmHwmMb(): Promise<number> {
  const status = await readFile("/proc/self/status", "utf8");
  return Math.round(Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024);
}

function timed<T>(f: () => T): { value: T; ms: number } {
  const start = performance.now();
  const value = f();
  return { value, ms: round(performance.now() - start, 0) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      width: { type: "string", default: "4000" },
      height: { type: "string", default: "3000" },
      repeats: { type: "string", default: "3" },
      "skip-plain": { type: "boolean", default: false },
    },
  });
  const width = Number(args.width);
  const height = Number(args.height);
  const log = (s: string) => process.stderr.write(`${s}\n`);

  log(`scene ${width}x${height} ...`);
  const scene = timed(() => makeScene(width, height));
  const { photo, alpha } = scene.value;
  const softPixels = alpha.data.reduce((n, a) => n + (a !== 0 && a !== 255 ? 1 : 0), 0);
  const sceneRssMb = await vmHwmMb();

  const runs: number[] = [];
  let estimate = photo.data;
  for (let r = 0; r < Number(args.repeats); r++) {
    const run = timed(() => estimateForeground(photo, alpha));
    runs.push(run.ms);
    estimate = run.value.data;
    log(`  estimateForeground: ${run.ms} ms`);
  }
  const peakRssMb = await vmHwmMb();
  const naive = fringeError(alpha, photo.data);
  const estimated = fringeError(alpha, estimate);

  let plain;
  if (!args["skip-plain"]) {
    log("plain method (every level swept whole) ...");
    const run = timed(() => estimateForeground(photo, alpha, { fullLevelMaxPixels: Infinity }));
    const near = nearEdge(alpha, NEAR_EDGE_PX);
    const soft = (i: number) => alpha.data[i] !== 0 && alpha.data[i] !== 255;
    plain = {
      ms: run.ms,
      peakRssMb: await vmHwmMb(),
      fringe: fringeError(alpha, run.value.data),
      deviationOfDefaults: {
        band: deviation(estimate, run.value.data, soft),
        [`alpha0Within${NEAR_EDGE_PX}px`]: deviation(estimate, run.value.data, (i) => near[i] === 1),
        allBelow255: deviation(estimate, run.value.data, (i) => alpha.data[i] !== 255),
      },
    };
  }

  const report = {
    benchmark: "foreground",
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGb: Math.round(totalmem() / 2 ** 30), node: process.version },
    method: "Germer et al., Fast Multi-Level Foreground Estimation (ICPR 2020)",
    options: FOREGROUND_DEFAULTS,
    workload: {
      size: `${width}x${height}`,
      megapixels: round((width * height) / 1e6, 1),
      softPixels,
      softShare: round(softPixels / (width * height), 4),
      scene: "wavy ellipse, soft ramp 10-30 px, 600 strands (half-width 0.8-1.6 px, alpha <= 0.95), fur colours over green foliage",
      sceneMs: scene.ms,
    },
    runsMs: runs,
    medianMs: median(runs),
    rssMb: { afterScene: sceneRssMb, peak: peakRssMb, estimatorIncrement: peakRssMb - sceneRssMb },
    fringe: { naive, estimated, reduction: { plain: round(naive.plain / estimated.plain, 2), alphaWeighted: round(naive.alphaWeighted / estimated.alphaWeighted, 2) } },
    plain,
  };
  const resultsDir = join(root, "benchmarks", "results");
  await mkdir(resultsDir, { recursive: true });
  await writeFile(join(resultsDir, "foreground.json"), JSON.stringify(report, null, 2) + "\n");

  const p = (s: string) => console.log(s);
  p(`\nForeground estimation, ${width}x${height} (${report.workload.megapixels} MP, ${softPixels} soft px), 1 thread, ${cpus()[0]?.model}`);
  p("| path | median ms | runs ms | peak RSS MB | fringe MAE (levels) | alpha-weighted |");
  p("|---|---|---|---|---|---|");
  p(`| naive cutout (F = photo) | - | - | - | ${naive.plain} | ${naive.alphaWeighted} |`);
  p(`| estimateForeground (defaults) | ${report.medianMs} | ${runs.join(", ")} | ${peakRssMb} (scene alone ${sceneRssMb}) | ${estimated.plain} | ${estimated.alphaWeighted} |`);
  if (plain) p(`| plain method, every level whole | ${plain.ms} | ${plain.ms} | ${plain.peakRssMb} | ${plain.fringe.plain} | ${plain.fringe.alphaWeighted} |`);
  p(`\nFringe error reduction: ${report.fringe.reduction.plain}x (plain), ${report.fringe.reduction.alphaWeighted}x (alpha-weighted)`);
  if (plain) {
    p("Defaults against the plain method (8-bit levels):");
    for (const [where, d] of Object.entries(plain.deviationOfDefaults))
      p(`  ${where}: max ${d.max}, mean ${d.mean}, values differing ${(d.differingShare * 100).toFixed(4)}% of ${d.pixels} px`);
  }
}

await main();
