/**
 * A benchmark stand-in for UltraFace version-RFB-320 (Linzaer's Ultra-Light-Fast-Generic-Face-
 * Detector-1MB, the ONNX model zoo's version-RFB-320.onnx): the same network as
 * vision/ssd/mb_tiny_RFB_fd.py create_Mb_Tiny_RFB_fd in test mode, as an ONNX (opset 17) graph with
 * seeded random weights, so src/detectors/ultraface.ts loads it and it costs what the real file
 * costs. Its faces mean nothing.
 *
 *   npx tsx benchmarks/standins/make-ultraface.ts <dir> [rfb-320] [--seed N]
 *
 * writes <dir>/ultraface-rfb-320/ with version-RFB-320.onnx, model.json (format "ultraface") and
 * build.json (the build stamp: a folder already holding the same build is kept).
 *
 * The network (base_channel 16, every BatchNorm folded into its conv's weight and bias, as
 * onnxruntime fuses them anyway when it loads the published file):
 * - Mb_Tiny_RFB backbone: conv_bn(3, 16, /2), conv_dw 16-32, 32-32 /2, 32-32, 32-64 /2, 64-64,
 *   64-64 (3 x 3 depthwise + ReLU, 1 x 1 pointwise + ReLU), BasicRFB(64, 64, scale 1.0: three
 *   branches 1 x 1 -> 3 x 3 -> dilated 3 x 3 (dilation 2, 3, 5; branch 2 has an extra 3 x 3),
 *   concat, 1 x 1 ConvLinear, plus the 1 x 1 shortcut, ReLU), conv_dw 64-128 /2, 128-128,
 *   128-128, 256 /2, 256-256; headers after layers 7 (40 x 30, 64 ch), 10 (20 x 15, 128 ch),
 *   12 (10 x 8, 256 ch) and the extras (1 x 1 256 -> 64 + ReLU, separable 3 x 3 /2 64 -> 256 +
 *   ReLU: 5 x 4);
 * - classification / regression headers: separable 3 x 3 (depthwise + ReLU + 1 x 1) on the first
 *   three maps, a plain 3 x 3 conv on the last, with [3, 2, 2, 3] priors per cell: 4420 anchors;
 * - in-graph post-processing as the exported test-mode SSD: softmax over the 2 classes, boxes
 *   decoded against the priors (center variance 0.1, size variance 0.2, priors a constant) and
 *   turned into corners.
 *
 * I/O as the published file: input float32 [1, 3, 240, 320] -> scores [1, 4420, 2],
 * boxes [1, 4420, 4].
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { encodeModel, GraphBuilder, valueInfo, writeModel, type BuiltModel, type ModelInfo, type Value, writeFileAtomic } from "../../test/support/onnx/onnx-graph.js";

export const ULTRAFACE_VARIANTS = ["rfb-320"] as const;
export type UltraFaceVariant = (typeof ULTRAFACE_VARIANTS)[number];

export type { BuiltModel };

/** Published figures of version-RFB-320 (Open Model Zoo ultra-lightweight-face-detection-rfb-320; src/models/manifest.json). */
export const ULTRAFACE_PUBLISHED = {
  /** OMZ "MParams 0.3004": BatchNorm kept apart (4 numbers per channel) and, it seems, the 17,680 prior constants. */
  mparams: 0.3004,
  gflops: 0.2106,
  fileBytes: 1_270_727,
} as const;

const BUILT_BY = "benchmarks/standins/make-ultraface.ts@1";
const DEFAULT_SEED = 20191001;
const BASE = 16;
const WIDTH = 320;
const HEIGHT = 240;
const MIN_BOXES = [
  [10, 16, 24],
  [32, 48],
  [64, 96],
  [128, 192, 256],
] as const;
const CENTER_VARIANCE = 0.1;
const SIZE_VARIANCE = 0.2;

export const ULTRAFACE_FOLDER = "ultraface-rfb-320";
export const ULTRAFACE_FILE = "version-RFB-320.onnx";

// ---------------------------------------------------------------------------------------------
// Conv helpers (grouped, dilated, BatchNorm folded: weight + bias).

interface ConvSpec {
  k: number;
  stride?: number;
  pad?: number;
  dilation?: number;
  /** Depthwise when equal to the input channels. */
  groups?: number;
  relu?: boolean;
  /** Weight std (default He: sqrt(2 / fan_in)). */
  std?: number;
}

function conv(g: GraphBuilder, x: Value, name: string, cout: number, s: ConvSpec): Value {
  const [n, cin, h, w] = x.shape as [number, number, number, number];
  const { k, stride = 1, pad = 0, dilation = 1, groups = 1 } = s;
  if (cin % groups !== 0 || cout % groups !== 0) throw new Error(`${name}: ${cin} -> ${cout} channels in ${groups} groups`);
  const fanIn = (cin / groups) * k * k;
  const weight = g.param(`${name}.weight`, [cout, cin / groups, k, k], { kind: "normal", mean: 0, std: s.std ?? Math.sqrt(2 / fanIn) });
  const bias = g.param(`${name}.bias`, [cout], { kind: "constant", value: 0 });
  const span = dilation * (k - 1) + 1;
  const ho = Math.floor((h + 2 * pad - span) / stride) + 1;
  const wo = Math.floor((w + 2 * pad - span) / stride) + 1;
  g.macs += n * cout * ho * wo * fanIn;
  const y = g.node("Conv", [x, weight, bias], [n, cout, ho, wo], {
    kernel_shape: [k, k],
    strides: [stride, stride],
    pads: [pad, pad, pad, pad],
    dilations: [dilation, dilation],
    group: groups,
  });
  return s.relu ? g.unary("Relu", y) : y;
}

/** conv_dw: 3 x 3 depthwise (BN, ReLU) + 1 x 1 pointwise (BN, ReLU). */
function convDw(g: GraphBuilder, x: Value, name: string, cout: number, stride: number): Value {
  const cin = x.shape[1] as number;
  const dw = conv(g, x, `${name}.0`, cin, { k: 3, stride, pad: 1, groups: cin, relu: true });
  return conv(g, dw, `${name}.3`, cout, { k: 1, relu: true });
}

/** BasicRFB(in, out, stride 1, scale 1.0, map_reduce 8, vision 1). */
function basicRfb(g: GraphBuilder, x: Value, name: string, out: number, scale: number): Value {
  const cin = x.shape[1] as number;
  const inter = cin / 8;
  const b0 = conv(g, conv(g, conv(g, x, `${name}.branch0.0`, inter, { k: 1 }), `${name}.branch0.1`, 2 * inter, { k: 3, pad: 1, relu: true }), `${name}.branch0.2`, 2 * inter, {
    k: 3,
    pad: 2,
    dilation: 2,
  });
  const b1 = conv(g, conv(g, conv(g, x, `${name}.branch1.0`, inter, { k: 1 }), `${name}.branch1.1`, 2 * inter, { k: 3, pad: 1, relu: true }), `${name}.branch1.2`, 2 * inter, {
    k: 3,
    pad: 3,
    dilation: 3,
  });
  let b2 = conv(g, x, `${name}.branch2.0`, inter, { k: 1 });
  b2 = conv(g, b2, `${name}.branch2.1`, Math.floor(inter / 2) * 3, { k: 3, pad: 1, relu: true });
  b2 = conv(g, b2, `${name}.branch2.2`, 2 * inter, { k: 3, pad: 1, relu: true });
  b2 = conv(g, b2, `${name}.branch2.3`, 2 * inter, { k: 3, pad: 5, dilation: 5 });
  const [n, , h, w] = b0.shape as [number, number, number, number];
  const cat = g.node("Concat", [b0, b1, b2], [n, 6 * inter, h, w], { axis: 1 });
  let y = conv(g, cat, `${name}.ConvLinear`, out, { k: 1 });
  if (scale !== 1) y = g.binary("Mul", y, g.scalar(scale));
  const short = conv(g, x, `${name}.shortcut`, out, { k: 1 });
  return g.unary("Relu", g.binary("Add", y, short));
}

/** SeperableConv2d: depthwise k x k (bias) + ReLU + 1 x 1 (bias). */
function separable(g: GraphBuilder, x: Value, name: string, cout: number, k: number, stride: number, pad: number, std?: number): Value {
  const cin = x.shape[1] as number;
  const dw = conv(g, x, `${name}.0`, cin, { k, stride, pad, groups: cin, relu: true });
  return conv(g, dw, `${name}.2`, cout, { k: 1, ...(std !== undefined ? { std } : {}) });
}

/** Header output [1, A * c, h, w] -> [1, h * w * A, c] (permute 0, 2, 3, 1 then view). */
function flattenHeader(g: GraphBuilder, y: Value, c: number): Value {
  const [n, ch, h, w] = y.shape as [number, number, number, number];
  return g.reshape(g.transpose(y, [0, 2, 3, 1]), [n, (h * w * ch) / c, c]);
}

/** vision/utils/box_utils.generate_priors for 320 x 240: [4420 * 4] center form, clamped to 0-1. */
export function ultraFacePriors(): number[] {
  const fmW = [40, 20, 10, 5];
  const fmH = [30, 15, 8, 4];
  const out: number[] = [];
  const clamp = (v: number) => Math.min(Math.max(v, 0), 1);
  for (let l = 0; l < 4; l++) {
    const shrinkW = WIDTH / fmW[l]!;
    const shrinkH = HEIGHT / fmH[l]!;
    const scaleW = WIDTH / shrinkW;
    const scaleH = HEIGHT / shrinkH;
    for (let j = 0; j < fmH[l]!; j++) {
      for (let i = 0; i < fmW[l]!; i++) {
        for (const m of MIN_BOXES[l]!) out.push(clamp((i + 0.5) / scaleW), clamp((j + 0.5) / scaleH), clamp(m / WIDTH), clamp(m / HEIGHT));
      }
    }
  }
  return out;
}

function buildGraph(seed: number): GraphBuilder {
  const g = new GraphBuilder(seed);
  const input: Value = { name: "input", shape: [1, 3, HEIGHT, WIDTH], dtype: "float32" };
  const c = BASE;
  const anchors = MIN_BOXES.map((m) => m.length);

  let x = conv(g, input, "base_net.0", c, { k: 3, stride: 2, pad: 1, relu: true }); // 160 x 120
  x = convDw(g, x, "base_net.1", 2 * c, 1);
  x = convDw(g, x, "base_net.2", 2 * c, 2); // 80 x 60
  x = convDw(g, x, "base_net.3", 2 * c, 1);
  x = convDw(g, x, "base_net.4", 4 * c, 2); // 40 x 30
  x = convDw(g, x, "base_net.5", 4 * c, 1);
  x = convDw(g, x, "base_net.6", 4 * c, 1);
  x = basicRfb(g, x, "base_net.7", 4 * c, 1.0);
  const maps: Value[] = [x];
  x = convDw(g, x, "base_net.8", 8 * c, 2); // 20 x 15
  x = convDw(g, x, "base_net.9", 8 * c, 1);
  x = convDw(g, x, "base_net.10", 8 * c, 1);
  maps.push(x);
  x = convDw(g, x, "base_net.11", 16 * c, 2); // 10 x 8
  x = convDw(g, x, "base_net.12", 16 * c, 1);
  maps.push(x);
  x = conv(g, x, "extras.0.0", 4 * c, { k: 1, relu: true });
  x = g.unary("Relu", separable(g, x, "extras.0.2", 16 * c, 3, 2, 1)); // 5 x 4
  maps.push(x);

  const scores: Value[] = [];
  const locations: Value[] = [];
  maps.forEach((m, i) => {
    const a = anchors[i]!;
    // Small head weights keep the random box offsets small (exp(0.2 * loc) stays finite).
    const head = (name: string, out: number) => (i < 3 ? separable(g, m, name, out, 3, 1, 1, 0.01) : conv(g, m, name, out, { k: 3, pad: 1, std: 0.01 }));
    scores.push(flattenHeader(g, head(`classification_headers.${i}`, a * 2), 2));
    locations.push(flattenHeader(g, head(`regression_headers.${i}`, a * 4), 4));
  });
  const total = scores.reduce((n, s) => n + (s.shape[1] as number), 0);
  const conf = g.node("Concat", scores, [1, total, 2], { axis: 1 });
  const loc = g.node("Concat", locations, [1, total, 4], { axis: 1 });
  g.node("Softmax", [conf], [1, total, 2], { axis: 2 }, "scores");

  // convert_locations_to_boxes + center_form_to_corner_form, priors as constants.
  const priors = ultraFacePriors();
  if (priors.length !== total * 4) throw new Error(`${priors.length / 4} priors for ${total} anchors`);
  const priorsXY = g.floats(
    priors.filter((_, k) => k % 4 < 2),
    [1, total, 2],
  );
  const priorsWH = g.floats(
    priors.filter((_, k) => k % 4 >= 2),
    [1, total, 2],
  );
  const half = (start: number) => g.node("Slice", [loc, g.ints([start]), g.ints([start + 2]), g.ints([2])], [1, total, 2]);
  const centers = g.binary("Add", g.binary("Mul", g.binary("Mul", half(0), g.scalar(CENTER_VARIANCE)), priorsWH), priorsXY);
  const sizes = g.binary("Mul", g.node("Exp", [g.binary("Mul", half(2), g.scalar(SIZE_VARIANCE))], [1, total, 2]), priorsWH);
  const halfSizes = g.binary("Div", sizes, g.scalar(2));
  g.node("Concat", [g.binary("Sub", centers, halfSizes), g.binary("Add", centers, halfSizes)], [1, total, 4], { axis: 2 }, "boxes");
  return g;
}

export interface UltraFaceStats {
  params: number;
  macs: number;
  anchors: number;
  nodes: number;
}

/** Counts from the graph itself, without generating any weight. */
export function ultraFaceStats(variant: UltraFaceVariant = "rfb-320", seed = DEFAULT_SEED): UltraFaceStats {
  if (!ULTRAFACE_VARIANTS.includes(variant)) throw new RangeError(`unknown UltraFace variant ${String(variant)}`);
  const g = buildGraph(seed);
  return { params: g.params, macs: g.macs, anchors: ultraFacePriors().length / 4, nodes: g.nodes.length };
}

function modelInfo(seed: number): ModelInfo {
  const anchors = ultraFacePriors().length / 4;
  return {
    graphName: "ultraface_rfb_320_random",
    producerName: `maskfleet ${BUILT_BY}`,
    docString: `UltraFace version-RFB-320 architecture (BatchNorm folded, priors decoded in-graph) with random weights (seed ${seed}); for benchmarks only.`,
    inputs: [valueInfo("input", [1, 3, HEIGHT, WIDTH])],
    outputs: [valueInfo("scores", [1, anchors, 2]), valueInfo("boxes", [1, anchors, 4])],
  };
}

/** The encoded ModelProto bytes (in memory; makeUltraFace streams the same model to disk with writeModel). */
export function encodeUltraFace(variant: UltraFaceVariant = "rfb-320", seed = DEFAULT_SEED): Uint8Array {
  if (!ULTRAFACE_VARIANTS.includes(variant)) throw new RangeError(`unknown UltraFace variant ${String(variant)}`);
  return encodeModel(buildGraph(seed), modelInfo(seed));
}

/**
 * Writes <outDir>/ultraface-rfb-320/ (version-RFB-320.onnx, model.json, build.json) unless it
 * already holds the same build. macs: one 320 x 240 image.
 */
export async function makeUltraFace(outDir: string, variant: UltraFaceVariant = "rfb-320", opts: { seed?: number } = {}): Promise<BuiltModel> {
  const seed = opts.seed ?? DEFAULT_SEED;
  const stats = ultraFaceStats(variant, seed);
  const dir = path.join(outDir, ULTRAFACE_FOLDER);
  const stamp = `${BUILT_BY} ${variant} seed ${seed}`;
  const stampFile = path.join(dir, "build.json");
  if ([ULTRAFACE_FILE, "model.json", "build.json"].every((f) => existsSync(path.join(dir, f)))) {
    const prev = JSON.parse(await readFile(stampFile, "utf8")) as { builtBy?: string };
    if (prev.builtBy === stamp) return { dir, params: stats.params, macs: stats.macs };
  }
  await mkdir(dir, { recursive: true });
  await writeModel(path.join(dir, ULTRAFACE_FILE), buildGraph(seed), modelInfo(seed));
  await writeFileAtomic(path.join(dir, "model.json"), JSON.stringify({ format: "ultraface", task: "face-detect", files: { model: ULTRAFACE_FILE } }, null, 2) + "\n");
  await writeFileAtomic(stampFile, JSON.stringify({ builtBy: stamp, params: stats.params, macs: stats.macs }, null, 2) + "\n");
  return { dir, params: stats.params, macs: stats.macs };
}

// ---------------------------------------------------------------------------------------------
// CLI

const USAGE = "usage: npx tsx benchmarks/standins/make-ultraface.ts <dir> [rfb-320] [--seed N]";

async function main(argv: string[]): Promise<void> {
  const { values, positionals: rest } = parseArgs({ args: argv, allowPositionals: true, options: { seed: { type: "string" } } });
  const seed = values.seed !== undefined ? Number(values.seed) : undefined;
  const [dir, variantArg = "rfb-320"] = rest;
  if (!dir || rest.length > 2 || !ULTRAFACE_VARIANTS.includes(variantArg as UltraFaceVariant)) {
    console.error(USAGE);
    process.exitCode = 2;
    return;
  }
  const variant = variantArg as UltraFaceVariant;
  const built = await makeUltraFace(dir, variant, seed !== undefined ? { seed } : {});
  const stats = ultraFaceStats(variant, seed);
  const size = (await stat(path.join(built.dir, ULTRAFACE_FILE))).size;
  console.log(`${built.dir}: ${ULTRAFACE_FILE} ${(size / 1e6).toFixed(2)} MB (published ${(ULTRAFACE_PUBLISHED.fileBytes / 1e6).toFixed(2)} MB)`);
  console.log(
    `params ${built.params.toLocaleString("en-US")} with BatchNorm folded (published ${ULTRAFACE_PUBLISHED.mparams} M, see ULTRAFACE_PUBLISHED); ` +
      `${(stats.macs / 1e6).toFixed(1)} M multiply-adds = ${((2 * stats.macs) / 1e9).toFixed(3)} GFLOP per image (published ${ULTRAFACE_PUBLISHED.gflops} GFLOPs); ` +
      `${stats.anchors} anchors, ${stats.nodes} nodes`,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
