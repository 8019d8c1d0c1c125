/**
 * A benchmark stand-in for BRIA RMBG-1.4 (IS-Net / DIS architecture, briaai/RMBG-1.4 briarmbg.py
 * BriaRMBG): the same graph as the published onnx/model.onnx with seeded random weights, so the
 * "salient" adapter (src/segmenters/salient.ts) can be timed on this CPU without the gated 176 MB
 * download. Speed does not depend on the weight values.
 *
 *   conv_in 3x3 stride 2 (3 -> 64, 1024 -> 512), then the RSU encoder
 *   RSU7(64,32,64) . RSU6(64,32,128) . RSU5(128,64,256) . RSU4(256,128,512) . RSU4F(512,256,512) . RSU4F(512,256,512)
 *   with a 2x2 ceil-mode max-pool between stages, the mirrored decoder
 *   RSU4F(1024,256,512) . RSU4(1024,128,256) . RSU5(512,64,128) . RSU6(256,32,64) . RSU7(128,16,64)
 *   (each fed the upsampled deeper stage concatenated with the encoder stage), then side1
 *   (3x3, 64 -> 1), bilinear upsampling to the input size and a sigmoid.
 *
 * Every REBNCONV (3x3 conv, dilation 1/2/4/8, BatchNorm, ReLU) is written as torch exports it in
 * eval mode: the BatchNorm folded into the conv's weight and bias. Upsampling is torch's
 * F.interpolate(bilinear, align_corners=False) = Resize linear, pytorch_half_pixel.
 *
 * I/O as the manifest's rmbg-1.4: input float32 [1, 3, 1024, 1024] ("input") -> output [1, 1, 1024, 1024]
 * ("output", probabilities). Only d1 (the full-resolution prediction the adapter reads) is an
 * output; side2..side6 (five 3x3 convs to one channel, 13.8 k parameters) are not written.
 *
 * The folder-writing helpers below are shared with benchmarks/standins/make-birefnet.ts.
 *
 *   npx tsx benchmarks/standins/make-isnet.ts <outDir> [rmbg-1.4] [--seed N]
 */
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { getModel, type Preprocess } from "../../src/models/registry.js";
import { encodeModel, GraphBuilder, valueInfo, type BuiltModel, type Value } from "../../test/support/onnx/onnx-graph.js";

export type { BuiltModel };

export type IsnetVariant = "rmbg-1.4";
export const ISNET_VARIANTS: readonly IsnetVariant[] = ["rmbg-1.4"];

/** Parameter count of RMBG-1.4 as its model card gives it (44 M), and the published ONNX size. */
export const RMBG_PUBLISHED = { params: 44e6, onnxBytes: 176e6 } as const;

const TOOL_VERSION = "make-isnet@1";

// ---------------------------------------------------------------------------------------------
// Small graph helpers shared by the salient builders.

/** An absent optional input (ONNX: empty name). */
const NONE: Value = { name: "", shape: [], dtype: "float32" };

export interface ConvOptions {
  stride?: number;
  /** Symmetric padding; default "same" for stride 1: dilation * (k - 1) / 2. */
  pad?: number;
  dilation?: number;
  /** Bias (a conv followed by BatchNorm gets one when the BN is folded). Default true. */
  bias?: boolean;
  /** Weight std; default He: sqrt(2 / fan_in), so ReLU stacks keep their scale. */
  std?: number;
}

/** Conv2d (square kernel, groups 1) with its own weights; counts parameters and multiply-adds. */
export function conv2d(g: GraphBuilder, x: Value, prefix: string, cout: number, k: number, o: ConvOptions = {}): Value {
  const [n, cin, h, w] = x.shape as [number, number, number, number];
  const stride = o.stride ?? 1;
  const dil = o.dilation ?? 1;
  const pad = o.pad ?? (dil * (k - 1)) / 2;
  if (!Number.isInteger(pad)) throw new Error(`${prefix}: no integer same padding for k ${k} dilation ${dil}`);
  const weight = g.param(`${prefix}.weight`, [cout, cin, k, k], { kind: "normal", mean: 0, std: o.std ?? Math.sqrt(2 / (cin * k * k)) });
  const bias = o.bias === false ? null : g.param(`${prefix}.bias`, [cout], { kind: "normal", mean: 0, std: 0.01 });
  const ho = Math.floor((h + 2 * pad - dil * (k - 1) - 1) / stride) + 1;
  const wo = Math.floor((w + 2 * pad - dil * (k - 1) - 1) / stride) + 1;
  g.macs += n * cout * ho * wo * cin * k * k;
  return g.node("Conv", bias ? [x, weight, bias] : [x, weight], [n, cout, ho, wo], {
    kernel_shape: [k, k],
    strides: [stride, stride],
    pads: [pad, pad, pad, pad],
    dilations: [dil, dil],
    group: 1,
  });
}

export const relu = (g: GraphBuilder, x: Value): Value => g.unary("Relu", x);

export function sigmoid(g: GraphBuilder, x: Value, outName?: string): Value {
  return g.node("Sigmoid", [x], x.shape, {}, outName);
}

export function concat(g: GraphBuilder, xs: readonly Value[], axis = 1): Value {
  const first = xs[0];
  if (!first) throw new Error("concat of nothing");
  const ax = axis < 0 ? first.shape.length + axis : axis;
  const shape = [...first.shape];
  shape[ax] = xs.reduce((s, v) => s + (v.shape[ax] as number), 0);
  return g.node("Concat", xs, shape, { axis });
}

/** nn.MaxPool2d(2, stride=2, ceil_mode=True). */
export function maxPool2(g: GraphBuilder, x: Value): Value {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  return g.node("MaxPool", [x], [n, c, Math.ceil(h / 2), Math.ceil(w / 2)], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 });
}

/**
 * F.interpolate(x, size=(h, w), mode="bilinear") as torch exports it (opset >= 11): Resize linear
 * with the target sizes; alignCorners picks align_corners=True ("align_corners") or False
 * ("pytorch_half_pixel"). A resize to the same size is skipped (a copy).
 */
export function resize(g: GraphBuilder, x: Value, h: number, w: number, alignCorners: boolean): Value {
  const [n, c, h0, w0] = x.shape as [number, number, number, number];
  if (h === h0 && w === w0) return x;
  return g.node("Resize", [x, NONE, NONE, g.ints([n, c, h, w])], [n, c, h, w], {
    mode: "linear",
    coordinate_transformation_mode: alignCorners ? "align_corners" : "pytorch_half_pixel",
  });
}

export interface SalientFolder {
  /** Manifest name: the folder name and where the preprocess block comes from. */
  name: string;
  /** The .onnx file name (as the manifest names it). */
  file: string;
  /** Input side the graph was built for (preprocess.size). */
  size: number;
  /** Identifies the build; a folder whose build.json equals it is not rebuilt. */
  stamp: Record<string, unknown>;
}

/**
 * Writes <outDir>/<name>/ with the .onnx and model.json ({format: "salient", files: {model},
 * preprocess: the manifest's, size set to the built size}) and build.json (the stamp; model.json
 * itself is a strict schema with no room for it). Each file goes to a temporary name and is
 * renamed into place; build.json is removed first and written last, so it marks a complete
 * build. When build.json already equals the stamp and the .onnx is there, nothing is written.
 */
export async function writeSalientFolder(outDir: string, f: SalientFolder, encode: () => Uint8Array): Promise<{ dir: string; skipped: boolean }> {
  const dir = path.join(outDir, f.name);
  const stampPath = path.join(dir, "build.json");
  const onnxPath = path.join(dir, f.file);
  const stampText = JSON.stringify(f.stamp, null, 2) + "\n";
  const old = await readFile(stampPath, "utf8").catch(() => undefined);
  const onnxThere = await stat(onnxPath).then(
    (s) => s.isFile() && s.size > 0,
    () => false,
  );
  if (old === stampText && onnxThere) return { dir, skipped: true };

  await mkdir(dir, { recursive: true });
  await rm(stampPath, { force: true });
  const put = async (file: string, data: Uint8Array | string): Promise<void> => {
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      await writeFile(tmp, data);
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  };
  await put(onnxPath, encode());
  const entry = getModel(f.name);
  if (!entry.preprocess) throw new Error(`${f.name}: the manifest entry has no preprocess block`);
  const preprocess: Preprocess = { ...entry.preprocess, size: [f.size, f.size] };
  const modelJson = { name: f.name, format: "salient", task: "salient", files: { model: f.file }, preprocess };
  await put(path.join(dir, "model.json"), JSON.stringify(modelJson, null, 2) + "\n");
  await put(stampPath, stampText);
  return { dir, skipped: false };
}

// ---------------------------------------------------------------------------------------------
// RMBG-1.4

export interface IsnetOptions {
  seed?: number;
  /** Input side (1024 for the real model; a multiple of 64 keeps every pool exact). */
  size?: number;
  /** Divides every channel count (1 for the real model; tests use 8). */
  widthDiv?: number;
}

export interface IsnetConfig {
  size: number;
  seed: number;
  widthDiv: number;
}

export function isnetConfig(opts: IsnetOptions = {}): IsnetConfig {
  const size = opts.size ?? 1024;
  const widthDiv = opts.widthDiv ?? 1;
  if (!Number.isInteger(size) || size < 64 || size % 64 !== 0) throw new RangeError(`size must be a multiple of 64, got ${size}`);
  if (![1, 2, 4, 8, 16].includes(widthDiv)) throw new RangeError(`widthDiv must be 1, 2, 4, 8 or 16, got ${widthDiv}`);
  return { size, seed: opts.seed ?? 20240201, widthDiv };
}

/** The RSU stages of BriaRMBG: [name, height (7..4, 0 = RSU-4F), in, mid, out]. */
export const RMBG_STAGES = [
  ["stage1", 7, 64, 32, 64],
  ["stage2", 6, 64, 32, 128],
  ["stage3", 5, 128, 64, 256],
  ["stage4", 4, 256, 128, 512],
  ["stage5", 0, 512, 256, 512],
  ["stage6", 0, 512, 256, 512],
  ["stage5d", 0, 1024, 256, 512],
  ["stage4d", 4, 1024, 128, 256],
  ["stage3d", 5, 512, 64, 128],
  ["stage2d", 6, 256, 32, 64],
  ["stage1d", 7, 128, 16, 64],
] as const;

/** REBNCONV: 3x3 conv (BatchNorm folded) + ReLU. */
function rebnconv(g: GraphBuilder, x: Value, prefix: string, cout: number, dilation = 1): Value {
  return relu(g, conv2d(g, x, `${prefix}.conv_s1`, cout, 3, { dilation }));
}

/** RSU-L (L = 4..7): a small U-Net with L-2 pools, the deepest conv dilated 2, plus the residual. */
function rsu(g: GraphBuilder, x: Value, prefix: string, height: number, mid: number, out: number): Value {
  const hxin = rebnconv(g, x, `${prefix}.rebnconvin`, out);
  const enc: Value[] = [];
  let hx = hxin;
  for (let i = 1; i <= height - 1; i++) {
    const e = rebnconv(g, hx, `${prefix}.rebnconv${i}`, mid);
    enc.push(e);
    hx = i <= height - 2 ? maxPool2(g, e) : e;
  }
  let d = rebnconv(g, enc[height - 2] as Value, `${prefix}.rebnconv${height}`, mid, 2);
  for (let i = height - 1; i >= 1; i--) {
    const skip = enc[i - 1] as Value;
    const up = resize(g, d, skip.shape[2] as number, skip.shape[3] as number, false);
    d = rebnconv(g, concat(g, [up, skip]), `${prefix}.rebnconv${i}d`, i === 1 ? out : mid);
  }
  return g.binary("Add", d, hxin);
}

/** RSU-4F: no pools, dilations 1, 2, 4, 8 then 4, 2, 1 back up, plus the residual. */
function rsu4f(g: GraphBuilder, x: Value, prefix: string, mid: number, out: number): Value {
  const hxin = rebnconv(g, x, `${prefix}.rebnconvin`, out);
  const hx1 = rebnconv(g, hxin, `${prefix}.rebnconv1`, mid, 1);
  const hx2 = rebnconv(g, hx1, `${prefix}.rebnconv2`, mid, 2);
  const hx3 = rebnconv(g, hx2, `${prefix}.rebnconv3`, mid, 4);
  const hx4 = rebnconv(g, hx3, `${prefix}.rebnconv4`, mid, 8);
  const hx3d = rebnconv(g, concat(g, [hx4, hx3]), `${prefix}.rebnconv3d`, mid, 4);
  const hx2d = rebnconv(g, concat(g, [hx3d, hx2]), `${prefix}.rebnconv2d`, mid, 2);
  const hx1d = rebnconv(g, concat(g, [hx2d, hx1]), `${prefix}.rebnconv1d`, out, 1);
  return g.binary("Add", hx1d, hxin);
}

export const ISNET_IO = { input: "input", output: "output" } as const;

function buildIsnet(cfg: IsnetConfig): { g: GraphBuilder; input: Value; output: Value } {
  const g = new GraphBuilder(cfg.seed);
  const s = cfg.size;
  const input: Value = { name: ISNET_IO.input, shape: [1, 3, s, s], dtype: "float32" };
  const ch = (c: number) => c / cfg.widthDiv;
  const stage = (x: Value, i: number): Value => {
    const [name, height, cin, mid, out] = RMBG_STAGES[i] as (typeof RMBG_STAGES)[number];
    if (x.shape[1] !== ch(cin)) throw new Error(`${name}: ${x.shape[1]} input channels, expected ${ch(cin)}`);
    return height === 0 ? rsu4f(g, x, name, ch(mid), ch(out)) : rsu(g, x, name, height, ch(mid), ch(out));
  };
  const up = (x: Value, like: Value) => resize(g, x, like.shape[2] as number, like.shape[3] as number, false);

  const hxin = conv2d(g, input, "conv_in", ch(64), 3, { stride: 2, pad: 1, std: Math.sqrt(2 / 27) });
  const hx1 = stage(hxin, 0);
  const hx2 = stage(maxPool2(g, hx1), 1);
  const hx3 = stage(maxPool2(g, hx2), 2);
  const hx4 = stage(maxPool2(g, hx3), 3);
  const hx5 = stage(maxPool2(g, hx4), 4);
  const hx6 = stage(maxPool2(g, hx5), 5);
  const hx5d = stage(concat(g, [up(hx6, hx5), hx5]), 6);
  const hx4d = stage(concat(g, [up(hx5d, hx4), hx4]), 7);
  const hx3d = stage(concat(g, [up(hx4d, hx3), hx3]), 8);
  const hx2d = stage(concat(g, [up(hx3d, hx2), hx2]), 9);
  const hx1d = stage(concat(g, [up(hx2d, hx1), hx1]), 10);
  const d1 = conv2d(g, hx1d, "side1", 1, 3, { std: 0.5 * Math.sqrt(1 / (ch(64) * 9)) });
  const output = sigmoid(g, up(d1, input), ISNET_IO.output);
  return { g, input, output };
}

export interface GraphStats {
  params: number;
  macs: number;
  nodes: number;
}

export function isnetStats(opts: IsnetOptions = {}): GraphStats {
  const { g } = buildIsnet(isnetConfig(opts));
  return { params: g.params, macs: g.macs, nodes: g.nodes.length };
}

export function encodeIsnet(opts: IsnetOptions = {}): Uint8Array {
  const cfg = isnetConfig(opts);
  const { g, input, output } = buildIsnet(cfg);
  return encodeModel(g, {
    graphName: "rmbg_1_4_random",
    producerName: "maskfleet benchmarks/standins/make-isnet.ts",
    docString: `BRIA RMBG-1.4 (IS-Net) architecture at ${cfg.size} px, width / ${cfg.widthDiv}, random weights (seed ${cfg.seed}); for benchmarks only.`,
    inputs: [valueInfo(input.name, input.shape)],
    outputs: [valueInfo(output.name, output.shape)],
  });
}

/** Writes <outDir>/rmbg-1.4/ (model.onnx, model.json, build.json); skips a folder already built alike. */
export async function makeIsnet(outDir: string, variant: IsnetVariant = "rmbg-1.4", opts: IsnetOptions = {}): Promise<BuiltModel> {
  if (!ISNET_VARIANTS.includes(variant)) throw new RangeError(`unknown variant ${String(variant)}; one of ${ISNET_VARIANTS.join(", ")}`);
  const cfg = isnetConfig(opts);
  const { g } = buildIsnet(cfg);
  const file = getModel(variant).files.find((f) => f.role === "model")?.file ?? "model.onnx";
  const stamp = { builtBy: TOOL_VERSION, variant, seed: cfg.seed, size: cfg.size, widthDiv: cfg.widthDiv, params: g.params, macs: g.macs };
  const { dir } = await writeSalientFolder(outDir, { name: variant, file, size: cfg.size, stamp }, () => encodeIsnet(opts));
  return { dir, params: g.params, macs: g.macs };
}

// ---------------------------------------------------------------------------------------------
// CLI

const USAGE = "usage: npx tsx benchmarks/standins/make-isnet.ts <outDir> [rmbg-1.4] [--seed N]";

async function main(argv: string[]): Promise<void> {
  const args = [...argv];
  let seed: number | undefined;
  const rest: string[] = [];
  while (args.length > 0) {
    const a = args.shift() as string;
    if (a === "--seed") seed = Number(args.shift());
    else rest.push(a);
  }
  const [dir, variant = "rmbg-1.4"] = rest;
  if (!dir || rest.length > 2 || !ISNET_VARIANTS.includes(variant as IsnetVariant)) {
    console.error(USAGE);
    process.exitCode = 2;
    return;
  }
  const t0 = performance.now();
  const built = await makeIsnet(path.resolve(dir), variant as IsnetVariant, seed !== undefined ? { seed } : {});
  const file = getModel(variant).files[0]?.file ?? "model.onnx";
  const size = (await stat(path.join(built.dir, file))).size;
  console.log(
    `${built.dir}: ${file} ${(size / 1e6).toFixed(1)} MB (published ${(RMBG_PUBLISHED.onnxBytes / 1e6).toFixed(0)} MB), ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  console.log(
    `params ${built.params.toLocaleString("en-US")} (published ~${(RMBG_PUBLISHED.params / 1e6).toFixed(0)} M), ` +
      `${(built.macs / 1e9).toFixed(1)} GMACs (${((2 * built.macs) / 1e9).toFixed(1)} GFLOP) per image`,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
