/**
 * A benchmark stand-in for SAM ViT-B's image encoder: the same architecture as segment_anything's
 * ImageEncoderViT for vit_b (patch embed, absolute pos embed, 12 blocks with 14x14 window attention
 * and global attention in blocks 2/5/8/11, decomposed relative position bias, MLP ratio 4, then the
 * 256-channel neck), written as an ONNX (opset 17) model with seeded random weights. Speed does not
 * depend on the weight values, so this has the cost of the real encoder without its 360 MB download.
 *
 *   npx tsx tools/make-vit-b-encoder.ts <dir> [--depth N] [--seed N] [--layout hwc|nchw] [--bench [runs]]
 *
 * writes <dir>/sam-vit-b-random/encoder.onnx (~359 MB, 89.67 M parameters, ~972 GFLOP per image)
 * with the I/O of the samexporter encoders that workers/mask/samexporter.ts loads: input_image
 * float32 [image_height, image_width, 3] (raw RGB, preprocessing inside; or [1, 3, 1024, 1024] with
 * --layout nchw) -> image_embeddings float32 [1, 256, 64, 64]. --bench then loads it with
 * onnxruntime-node (graphOptimizationLevel "all"), checks the output and times it at 1, 2 and the
 * default number of intra-op threads. Only the encoder is written: no decoder, no model.json.
 */
import { mkdir, rename, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { encodeModel, GraphBuilder, numel, OPSET, sfc32, valueInfo, type Value } from "./onnx-graph.js";

export { OPSET };

/**
 * Encoder input, as the samexporter-format encoders that workers/mask/samexporter.ts loads (and as
 * tools/make-tiny-models.ts writes them): "input_image" float32, either
 * - "hwc" (default, samexporter --use-preprocess, the published files): [image_height, image_width, 3]
 *   raw RGB 0-255 already resized to longest side 1024; the graph normalises with SAM's pixel
 *   mean/std and zero-pads to 1024 x 1024;
 * - "nchw": [1, 3, 1024, 1024], normalised and padded by the caller.
 */
export const ENCODER_INPUT = {
  name: "input_image",
  hwcDims: ["image_height", "image_width", 3],
  nchwDims: [1, 3, 1024, 1024],
} as const;
export type EncoderLayout = "hwc" | "nchw";
const SAM_PIXEL_MEAN = [123.675, 116.28, 103.53];
const SAM_PIXEL_STD = [58.395, 57.12, 57.375];
/** Encoder output. */
export const ENCODER_OUTPUT = { name: "image_embeddings", dims: [1, 256, 64, 64] } as const;
/** Published parameter count of SAM ViT-B's image encoder. */
export const SAM_VIT_B_ENCODER_PARAMS = 89_670_912;

export interface VitBEncoderOptions {
  /** Number of transformer blocks (12 for vit_b); fewer for quick tests. */
  depth?: number;
  /** Blocks with global attention; default: those of [2, 5, 8, 11] below depth. */
  globalAttnIndexes?: readonly number[];
  /** PRNG seed for the weights. */
  seed?: number;
  /** Input layout (see ENCODER_INPUT); "hwc" by default. */
  encoderLayout?: EncoderLayout;
}

export interface VitBEncoderConfig {
  imgSize: number;
  patchSize: number;
  inChans: number;
  embedDim: number;
  depth: number;
  numHeads: number;
  mlpRatio: number;
  outChans: number;
  windowSize: number;
  globalAttnIndexes: readonly number[];
  eps: number;
  seed: number;
  encoderLayout: EncoderLayout;
}

export function vitBConfig(opts: VitBEncoderOptions = {}): VitBEncoderConfig {
  const depth = opts.depth ?? 12;
  if (!Number.isInteger(depth) || depth < 0 || depth > 64) throw new RangeError(`depth must be an integer in 0..64, got ${depth}`);
  const globalAttnIndexes = (opts.globalAttnIndexes ?? [2, 5, 8, 11]).filter((i) => i < depth);
  return {
    imgSize: ENCODER_INPUT.nchwDims[2],
    patchSize: 16,
    inChans: 3,
    embedDim: 768,
    depth,
    numHeads: 12,
    mlpRatio: 4,
    outChans: ENCODER_OUTPUT.dims[1],
    windowSize: 14,
    globalAttnIndexes,
    eps: 1e-6,
    seed: opts.seed ?? 20230405,
    encoderLayout: opts.encoderLayout ?? "hwc",
  };
}

// ---------------------------------------------------------------------------------------------
// The encoder graph.

/** segment_anything get_rel_pos index table (q_size == k_size, so no interpolation or scaling). */
function relPosIndex(size: number): number[] {
  const idx: number[] = [];
  for (let q = 0; q < size; q++) for (let k = 0; k < size; k++) idx.push(q - k + size - 1);
  return idx;
}

function attention(g: GraphBuilder, x: Value, prefix: string, cfg: VitBEncoderConfig): Value {
  const [batch, h, w, dim] = x.shape as [number, number, number, number];
  const heads = cfg.numHeads;
  const headDim = dim / heads;
  const bn = batch * heads;
  const hw = h * w;

  const qkv = g.linear(x, `${prefix}.qkv`, dim, 3 * dim);
  const qkvT = g.reshape(g.transpose(g.reshape(qkv, [batch, hw, 3, heads, headDim]), [2, 0, 3, 1, 4]), [3, bn, hw, headDim]);
  const q = g.gather(qkvT, [0], []);
  const k = g.gather(qkvT, [1], []);
  const v = g.gather(qkvT, [2], []);

  let attn = g.matmul(g.binary("Mul", q, g.scalar(headDim ** -0.5)), g.transpose(k, [0, 2, 1]));

  // add_decomposed_rel_pos: Rh/Rw gathered from the tables, then two MatMuls against the raw q.
  const relPosH = g.param(`${prefix}.rel_pos_h`, [2 * h - 1, headDim], { kind: "normal", mean: 0, std: 0.02 });
  const relPosW = g.param(`${prefix}.rel_pos_w`, [2 * w - 1, headDim], { kind: "normal", mean: 0, std: 0.02 });
  const rh = g.transpose(g.gather(relPosH, relPosIndex(h), [h, h]), [0, 2, 1]); // [h, C, kh]
  const rw = g.transpose(g.gather(relPosW, relPosIndex(w), [w, w]), [0, 2, 1]); // [w, C, kw]
  const rq = g.reshape(q, [bn, h, w, headDim]);
  const relH = g.matmul(rq, rh); // [bn, h, w, kh]
  const relW = g.transpose(g.matmul(g.transpose(rq, [0, 2, 1, 3]), rw), [0, 2, 1, 3]); // [bn, h, w, kw]
  const attn5 = g.binary("Add", g.binary("Add", g.reshape(attn, [bn, h, w, h, w]), g.unsqueeze(relH, 4)), g.unsqueeze(relW, 3));
  attn = g.softmax(g.reshape(attn5, [bn, hw, hw]));

  const out = g.reshape(g.transpose(g.reshape(g.matmul(attn, v), [batch, heads, h, w, headDim]), [0, 2, 3, 1, 4]), [batch, h, w, dim]);
  return g.linear(out, `${prefix}.proj`, dim, dim);
}

function block(g: GraphBuilder, x: Value, i: number, cfg: VitBEncoderConfig): Value {
  const prefix = `blocks.${i}`;
  const dim = cfg.embedDim;
  const [, height, width] = x.shape as [number, number, number, number];
  const ws = cfg.globalAttnIndexes.includes(i) ? 0 : cfg.windowSize;

  let y = g.layerNorm(x, `${prefix}.norm1`, dim, cfg.eps);
  if (ws > 0) {
    // window_partition: pad to a multiple of the window, then [nW, ws, ws, C].
    const ph = (ws - (height % ws)) % ws;
    const pw = (ws - (width % ws)) % ws;
    const hp = height + ph;
    const wp = width + pw;
    if (ph > 0 || pw > 0) y = g.padEnd(y, [0, ph, pw, 0]);
    y = g.reshape(g.transpose(g.reshape(y, [1, hp / ws, ws, wp / ws, ws, dim]), [0, 1, 3, 2, 4, 5]), [(hp / ws) * (wp / ws), ws, ws, dim]);
    y = attention(g, y, `${prefix}.attn`, cfg);
    // window_unpartition
    y = g.reshape(g.transpose(g.reshape(y, [1, hp / ws, wp / ws, ws, ws, dim]), [0, 1, 3, 2, 4, 5]), [1, hp, wp, dim]);
    if (ph > 0 || pw > 0) y = g.sliceTo(y, [1, 2], [height, width]);
  } else {
    y = attention(g, y, `${prefix}.attn`, cfg);
  }
  x = g.binary("Add", x, y);

  const hidden = Math.trunc(dim * cfg.mlpRatio);
  let m = g.layerNorm(x, `${prefix}.norm2`, dim, cfg.eps);
  m = g.linear(m, `${prefix}.mlp.lin1`, dim, hidden);
  m = g.gelu(m);
  m = g.linear(m, `${prefix}.mlp.lin2`, hidden, dim);
  return g.binary("Add", x, m);
}

/**
 * samexporter's --use-preprocess front: (x - mean) / std on HWC, to CHW, zero-pad the bottom/right
 * to side x side (pads computed from the runtime shape), add the batch axis. Shapes past the Pad
 * are static again.
 */
function preprocessHwc(g: GraphBuilder, input: Value, side: number): Value {
  const nrm = g.binary("Div", g.binary("Sub", input, g.floats(SAM_PIXEL_MEAN)), g.floats(SAM_PIXEL_STD));
  const chw = g.node("Transpose", [nrm], [3, -1, -1], { perm: [2, 0, 1] });
  const shape: Value = g.node("Shape", [chw], [3]);
  const padEnd = g.node("Sub", [g.ints([3, side, side]), shape], [3]);
  const pads = g.node("Concat", [g.ints([0, 0, 0]), padEnd], [6], { axis: 0 });
  const padded = g.node("Pad", [chw, pads], [3, side, side], { mode: "constant" });
  return g.unsqueeze(padded, 0);
}

function buildGraph(cfg: VitBEncoderConfig): { g: GraphBuilder; input: Value; output: Value } {
  const g = new GraphBuilder(cfg.seed);
  const hwc = cfg.encoderLayout === "hwc";
  const input: Value = { name: ENCODER_INPUT.name, shape: hwc ? [-1, -1, cfg.inChans] : [1, cfg.inChans, cfg.imgSize, cfg.imgSize], dtype: "float32" };
  const image = hwc ? preprocessHwc(g, input, cfg.imgSize) : input;
  const p = cfg.patchSize;
  const grid = cfg.imgSize / p;
  const dim = cfg.embedDim;

  const patchW = g.param("patch_embed.proj.weight", [dim, cfg.inChans, p, p], { kind: "normal", mean: 0, std: 0.02 });
  const patchB = g.param("patch_embed.proj.bias", [dim], { kind: "normal", mean: 0, std: 0.02 });
  let x = g.transpose(g.conv(image, patchW, patchB, p, 0), [0, 2, 3, 1]);
  x = g.binary("Add", x, g.param("pos_embed", [1, grid, grid, dim], { kind: "normal", mean: 0, std: 0.02 }));

  for (let i = 0; i < cfg.depth; i++) x = block(g, x, i, cfg);

  let y = g.transpose(x, [0, 3, 1, 2]);
  y = g.conv(y, g.param("neck.0.weight", [cfg.outChans, dim, 1, 1], { kind: "normal", mean: 0, std: 0.02 }), null, 1, 0);
  y = g.layerNorm2d(y, "neck.1", cfg.outChans, cfg.eps);
  y = g.conv(y, g.param("neck.2.weight", [cfg.outChans, cfg.outChans, 3, 3], { kind: "normal", mean: 0, std: 0.02 }), null, 1, 1);
  const output = g.layerNorm2d(y, "neck.3", cfg.outChans, cfg.eps, ENCODER_OUTPUT.name);
  const want = ENCODER_OUTPUT.dims;
  if (output.shape.join(",") !== want.join(",")) throw new Error(`output shape [${output.shape.join(",")}], expected [${want.join(",")}]`);
  return { g, input, output };
}

export interface VitBEncoderStats {
  /** Learned parameters (float initializers other than constants). */
  params: number;
  /** Multiply-adds of all MatMul and Conv nodes for one image. */
  macs: number;
  /** 2 x macs / 1e9. */
  gflop: number;
  nodes: number;
}

/** Parameter and FLOP count of the encoder graph, computed from the graph itself without any weights. */
export function vitBEncoderStats(opts: VitBEncoderOptions = {}): VitBEncoderStats {
  const { g } = buildGraph(vitBConfig(opts));
  return { params: g.params, macs: g.macs, gflop: (2 * g.macs) / 1e9, nodes: g.nodes.length };
}

/** Parameter count of the encoder (12 blocks unless opts.depth says otherwise). */
export function countVitBEncoderParams(opts: VitBEncoderOptions = {}): number {
  return vitBEncoderStats(opts).params;
}

/** The encoded ModelProto bytes. */
export function encodeVitBEncoder(opts: VitBEncoderOptions = {}): Uint8Array {
  const cfg = vitBConfig(opts);
  const { g, input, output } = buildGraph(cfg);
  return encodeModel(g, {
    graphName: "sam_vit_b_image_encoder_random",
    producerName: "maskfleet tools/make-vit-b-encoder.ts",
    docString:
      `SAM ViT-B image encoder architecture (depth ${cfg.depth}, ${cfg.encoderLayout} input, global attention in [${cfg.globalAttnIndexes.join(", ")}]) ` +
      `with random weights (seed ${cfg.seed}); for benchmarks only, its embeddings mean nothing.`,
    inputs: [valueInfo(input.name, cfg.encoderLayout === "hwc" ? ENCODER_INPUT.hwcDims : input.shape)],
    outputs: [valueInfo(output.name, output.shape)],
  });
}

/** Writes <dir>/sam-vit-b-random/encoder.onnx and returns its path. */
export async function makeVitBEncoder(dir: string, opts: VitBEncoderOptions = {}): Promise<string> {
  const outDir = path.join(dir, "sam-vit-b-random");
  await mkdir(outDir, { recursive: true });
  const file = path.join(outDir, "encoder.onnx");
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, encodeVitBEncoder(opts));
  await rename(tmp, file);
  return file;
}

// ---------------------------------------------------------------------------------------------
// CLI

/**
 * A seeded random input for the encoder: HWC raw RGB 0-255 of a photo resized to longest side
 * 1024 (height x 1024, default 768 x 1024), or NCHW [1, 3, 1024, 1024] normalised-looking values.
 */
export function randomEncoderInput(layout: EncoderLayout = "hwc", height = 768, seed = 7): { data: Float32Array; dims: number[] } {
  const rand = sfc32(seed);
  if (layout === "hwc") {
    const dims = [height, ENCODER_INPUT.nchwDims[3], 3];
    const data = new Float32Array(numel(dims));
    for (let i = 0; i < data.length; i++) data[i] = Math.floor(rand() * 256);
    return { data, dims };
  }
  const dims = [...ENCODER_INPUT.nchwDims];
  const data = new Float32Array(numel(dims));
  for (let i = 0; i < data.length; i++) data[i] = (rand() - 0.5) * 4;
  return { data, dims };
}

async function bench(file: string, layout: EncoderLayout, stats: VitBEncoderStats, runs: number): Promise<void> {
  const ort = await import("onnxruntime-node");
  const { data, dims } = randomEncoderInput(layout);
  const feeds = { [ENCODER_INPUT.name]: new ort.Tensor("float32", data, dims) };
  console.log(`bench: ${ENCODER_INPUT.name} [${dims.join(",")}], graphOptimizationLevel "all", 1 warm-up + ${runs} timed runs per setting`);
  for (const threads of [1, 2, 0]) {
    const t0 = performance.now();
    const session = await ort.InferenceSession.create(file, {
      graphOptimizationLevel: "all",
      ...(threads > 0 ? { intraOpNumThreads: threads } : {}),
    });
    const loadMs = performance.now() - t0;
    const warm0 = performance.now();
    const first = await session.run(feeds);
    const firstMs = performance.now() - warm0;
    const out = first[ENCODER_OUTPUT.name];
    if (!out) throw new Error(`no output named ${ENCODER_OUTPUT.name}`);
    const values = out.data as Float32Array;
    let finite = true;
    let sum = 0;
    let sq = 0;
    for (const v of values) {
      if (!Number.isFinite(v)) finite = false;
      sum += v;
      sq += v * v;
    }
    const mean = sum / values.length;
    const std = Math.sqrt(sq / values.length - mean * mean);
    if (out.dims.join(",") !== ENCODER_OUTPUT.dims.join(",") || !finite) {
      throw new Error(`bad output: dims [${out.dims.join(",")}], finite ${finite}`);
    }
    const times: number[] = [];
    for (let r = 0; r < runs; r++) {
      const s = performance.now();
      await session.run(feeds);
      times.push(performance.now() - s);
    }
    const best = Math.min(...times);
    const median = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)] as number;
    const label = threads > 0 ? `${threads} thread${threads > 1 ? "s" : ""}` : "default threads";
    console.log(
      `${label.padEnd(16)} load ${(loadMs / 1000).toFixed(1)} s, warm-up ${(firstMs / 1000).toFixed(2)} s, ` +
        `runs ${times.map((t) => (t / 1000).toFixed(2)).join("/")} s, median ${(median / 1000).toFixed(2)} s ` +
        `(${(stats.gflop / (median / 1000)).toFixed(1)} GFLOP/s), best ${(best / 1000).toFixed(2)} s ` +
        `(${(stats.gflop / (best / 1000)).toFixed(1)} GFLOP/s); output [${out.dims.join(",")}] finite, mean ${mean.toFixed(4)} std ${std.toFixed(4)}`,
    );
    await session.release();
  }
}

const USAGE = "usage: npx tsx tools/make-vit-b-encoder.ts <dir> [--depth N] [--seed N] [--layout hwc|nchw] [--bench [runs]]";

async function main(argv: string[]): Promise<void> {
  const args = [...argv];
  let depth: number | undefined;
  let seed: number | undefined;
  let layout: EncoderLayout = "hwc";
  let benchRuns = 0;
  const rest: string[] = [];
  while (args.length > 0) {
    const a = args.shift() as string;
    if (a === "--depth") depth = Number(args.shift());
    else if (a === "--seed") seed = Number(args.shift());
    else if (a === "--layout") {
      const l = args.shift();
      if (l !== "hwc" && l !== "nchw") throw new Error(`--layout: expected hwc or nchw, got ${l}`);
      layout = l;
    } else if (a === "--bench") benchRuns = /^\d+$/.test(args[0] ?? "") ? Number(args.shift()) : 3;
    else rest.push(a);
  }
  const dir = rest[0];
  if (!dir || rest.length > 1) {
    console.error(USAGE);
    process.exitCode = 2;
    return;
  }
  const opts: VitBEncoderOptions = { encoderLayout: layout, ...(depth !== undefined ? { depth } : {}), ...(seed !== undefined ? { seed } : {}) };
  const stats = vitBEncoderStats(opts);
  const t0 = performance.now();
  const file = await makeVitBEncoder(dir, opts);
  const size = (await stat(file)).size;
  console.log(`${file}: ${(size / 1e6).toFixed(1)} MB written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  console.log(
    `params ${stats.params.toLocaleString("en-US")} (SAM ViT-B encoder ${SAM_VIT_B_ENCODER_PARAMS.toLocaleString("en-US")}), ` +
      `${stats.gflop.toFixed(1)} GFLOP per image (${(stats.macs / 1e9).toFixed(1)} G multiply-adds), ${stats.nodes} nodes; ` +
      `input ${ENCODER_INPUT.name} [${(layout === "hwc" ? ENCODER_INPUT.hwcDims : ENCODER_INPUT.nchwDims).join(",")}] float32, output ${ENCODER_OUTPUT.name} [${ENCODER_OUTPUT.dims.join(",")}] float32`,
  );
  if (benchRuns > 0) await bench(file, layout, stats, benchRuns);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
