/**
 * Benchmark stand-ins for Segment Anything v1's image encoders (segment_anything's ImageEncoderViT,
 * build_sam's vit_b / vit_l / vit_h): patch embed, absolute pos embed, transformer blocks with
 * 14 x 14 window attention and global attention in four blocks, decomposed relative position bias,
 * MLP ratio 4, then the 256-channel neck; written as ONNX (opset 17) models with seeded random
 * weights. Speed does not depend on the weight values, so these have the cost of the real encoders
 * without their downloads (360 MB, 1.2 GB, 2.5 GB).
 *
 *   npx tsx benchmarks/standins/make-sam-vit-encoder.ts <dir> [sam-vit-b|sam-vit-l|sam-vit-h] [--seed N] [--depth N]
 *   npx tsx benchmarks/standins/make-sam-vit-encoder.ts <dir> --encoder-only [--variant vit_b|vit_l|vit_h] [--depth N] [--seed N] [--layout hwc|nchw] [--bench [runs]]
 *
 * The first form writes a samexporter model folder <dir>/<sam-vit-b|l|h>/ that
 * src/segmenters/samexporter.ts loads: the encoder and decoder under the published file names
 * (sam_vit_h_4b8939.encoder.onnx + sam_vit_h_4b8939.encoder_data.bin for ViT-H, whose 2.5 GB of
 * weights are ONNX external data as in the published export), the full-size decoder of
 * benchmarks/standins/make-sam-decoder.ts, and model.json. The second form writes only the encoder
 * (<dir>/sam-vit-b-random/encoder.onnx for vit_b, as makeVitBEncoder always did), and --bench
 * times it with onnxruntime-node at 1, 2 and the default number of threads.
 *
 * Encoder I/O as the samexporter encoders: input_image float32 [image_height, image_width, 3] (raw
 * RGB, preprocessing inside; or [1, 3, 1024, 1024] with --layout nchw) -> image_embeddings float32
 * [1, 256, 64, 64]. The graph builder (samVitEncoderGraph) is also used by benchmarks/standins/make-hf-sam.ts.
 */
import { mkdir, readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { encodeSamDecoder, samDecoderStats } from "./make-sam-decoder.js";
import {
  encodeModel,
  GraphBuilder,
  numel,
  OPSET,
  sfc32,
  valueInfo,
  writeModel,
  type BuiltModel,
  type ExternalDataOptions,
  type Value,
  type WrittenModel,
  writeFileAtomic,
  fileExists,
} from "../../test/support/onnx/onnx-graph.js";

export { OPSET };

/**
 * Encoder input, as the samexporter-format encoders that src/segmenters/samexporter.ts loads (and as
 * test/support/onnx/make-tiny-models.ts writes them): "input_image" float32, either
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

export type SamVitVariant = "vit_b" | "vit_l" | "vit_h";

/** segment_anything build_sam's image encoders (all: patch 16, window 14, MLP ratio 4, 256 output channels). */
export const SAM_VIT_VARIANTS: Record<SamVitVariant, { embedDim: number; depth: number; numHeads: number; globalAttnIndexes: readonly number[] }> = {
  vit_b: { embedDim: 768, depth: 12, numHeads: 12, globalAttnIndexes: [2, 5, 8, 11] },
  vit_l: { embedDim: 1024, depth: 24, numHeads: 16, globalAttnIndexes: [5, 11, 17, 23] },
  vit_h: { embedDim: 1280, depth: 32, numHeads: 16, globalAttnIndexes: [7, 15, 23, 31] },
};

/**
 * Published sizes to compare ours with. `quoted`: the image encoder's size as usually quoted
 * (ViT-B 89.67 M; ViT-L 308.3 M; ViT-H 636 M, the manifest's figure); `checkpoint`: the whole
 * segment_anything model (encoder + the 4,064,560-parameter prompt encoder and mask decoder; ViT-B's
 * 93,735,472 is the figure published for facebook/sam-vit-base). `exact`: the count a published
 * file pins: sam_vit_h_4b8939.encoder_data.bin is 2,548,104,192 bytes = exactly 637,026,048
 * float32 weights (onnx.save_model packs them without padding). `fileBound`: the most float32 a
 * published encoder .onnx (weights + graph) can hold: ViT-L 1,234,264,293 bytes, ViT-B 359,217,309.
 */
export const SAM_VIT_PUBLISHED: Record<SamVitVariant, { quoted: number; checkpoint: number; exact: number | null; fileBound: number | null }> = {
  vit_b: { quoted: SAM_VIT_B_ENCODER_PARAMS, checkpoint: 93_735_472, exact: null, fileBound: Math.floor(359_217_309 / 4) },
  vit_l: { quoted: 308.3e6, checkpoint: 312_342_832, exact: null, fileBound: Math.floor(1_234_264_293 / 4) },
  vit_h: { quoted: 636e6, checkpoint: 641_090_608, exact: 2_548_104_192 / 4, fileBound: null },
};

export interface VitBEncoderOptions {
  /** Number of transformer blocks (the variant's: 12 for vit_b); fewer for quick tests. */
  depth?: number;
  /** Blocks with global attention; default: the variant's (vit_b: [2, 5, 8, 11]) below depth. */
  globalAttnIndexes?: readonly number[];
  /** PRNG seed for the weights. */
  seed?: number;
  /** Input layout (see ENCODER_INPUT); "hwc" by default. */
  encoderLayout?: EncoderLayout;
}

export interface SamVitEncoderOptions extends VitBEncoderOptions {
  /** build_sam variant (default vit_b): width, depth, heads and global blocks. */
  variant?: SamVitVariant;
  /** Pruned encoders (SlimSAM): embedding width, MLP hidden width and heads instead of the variant's. */
  embedDim?: number;
  mlpDim?: number;
  numHeads?: number;
}

export interface SamVitEncoderConfig {
  variant: SamVitVariant;
  imgSize: number;
  patchSize: number;
  inChans: number;
  embedDim: number;
  depth: number;
  numHeads: number;
  mlpDim: number;
  outChans: number;
  windowSize: number;
  globalAttnIndexes: readonly number[];
  eps: number;
  seed: number;
  encoderLayout: EncoderLayout;
}
export type VitBEncoderConfig = SamVitEncoderConfig;

export function samVitConfig(opts: SamVitEncoderOptions = {}): SamVitEncoderConfig {
  const variant = opts.variant ?? "vit_b";
  const v = SAM_VIT_VARIANTS[variant];
  if (!v) throw new RangeError(`variant must be one of ${Object.keys(SAM_VIT_VARIANTS).join(", ")}, got ${String(variant)}`);
  const depth = opts.depth ?? v.depth;
  if (!Number.isInteger(depth) || depth < 0 || depth > 64) throw new RangeError(`depth must be an integer in 0..64, got ${depth}`);
  const embedDim = opts.embedDim ?? v.embedDim;
  const numHeads = opts.numHeads ?? v.numHeads;
  if (!Number.isInteger(embedDim / numHeads)) throw new RangeError(`embedDim ${embedDim} is not a multiple of numHeads ${numHeads}`);
  const globalAttnIndexes = (opts.globalAttnIndexes ?? v.globalAttnIndexes).filter((i) => i < depth);
  return {
    variant,
    imgSize: ENCODER_INPUT.nchwDims[2],
    patchSize: 16,
    inChans: 3,
    embedDim,
    depth,
    numHeads,
    mlpDim: opts.mlpDim ?? 4 * embedDim,
    outChans: ENCODER_OUTPUT.dims[1],
    windowSize: 14,
    globalAttnIndexes,
    eps: 1e-6,
    seed: opts.seed ?? 20230405,
    encoderLayout: opts.encoderLayout ?? "hwc",
  };
}

export function vitBConfig(opts: VitBEncoderOptions = {}): VitBEncoderConfig {
  return samVitConfig({ ...opts, variant: "vit_b" });
}

// ---------------------------------------------------------------------------------------------
// The encoder graph.

/** segment_anything get_rel_pos index table (q_size == k_size, so no interpolation or scaling). */
function relPosIndex(size: number): number[] {
  const idx: number[] = [];
  for (let q = 0; q < size; q++) for (let k = 0; k < size; k++) idx.push(q - k + size - 1);
  return idx;
}

function attention(g: GraphBuilder, x: Value, prefix: string, cfg: SamVitEncoderConfig): Value {
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

function block(g: GraphBuilder, x: Value, i: number, cfg: SamVitEncoderConfig): Value {
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

  let m = g.layerNorm(x, `${prefix}.norm2`, dim, cfg.eps);
  m = g.linear(m, `${prefix}.mlp.lin1`, dim, cfg.mlpDim);
  m = g.gelu(m);
  m = g.linear(m, `${prefix}.mlp.lin2`, cfg.mlpDim, dim);
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

/**
 * Adds the image encoder to `g`: `image` [1, 3, 1024, 1024] (normalised and padded) -> patch
 * embed, pos embed, the blocks, the neck -> [1, 256, 64, 64] named `outName`.
 */
export function samVitEncoderGraph(g: GraphBuilder, image: Value, cfg: SamVitEncoderConfig, outName: string = ENCODER_OUTPUT.name): Value {
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
  const output = g.layerNorm2d(y, "neck.3", cfg.outChans, cfg.eps, outName);
  const want = ENCODER_OUTPUT.dims;
  if (output.shape.join(",") !== want.join(",")) throw new Error(`output shape [${output.shape.join(",")}], expected [${want.join(",")}]`);
  return output;
}

function buildGraph(cfg: SamVitEncoderConfig): { g: GraphBuilder; input: Value; output: Value } {
  const g = new GraphBuilder(cfg.seed);
  const hwc = cfg.encoderLayout === "hwc";
  const input: Value = { name: ENCODER_INPUT.name, shape: hwc ? [-1, -1, cfg.inChans] : [1, cfg.inChans, cfg.imgSize, cfg.imgSize], dtype: "float32" };
  const image = hwc ? preprocessHwc(g, input, cfg.imgSize) : input;
  return { g, input, output: samVitEncoderGraph(g, image, cfg) };
}

export interface SamVitEncoderStats {
  /** Learned parameters (float initializers other than constants). */
  params: number;
  /** Multiply-adds of all MatMul and Conv nodes for one image. */
  macs: number;
  /** 2 x macs / 1e9. */
  gflop: number;
  nodes: number;
}
export type VitBEncoderStats = SamVitEncoderStats;

/** Parameter and FLOP count of the encoder graph, computed from the graph itself without any weights. */
export function samVitEncoderStats(opts: SamVitEncoderOptions = {}): SamVitEncoderStats {
  const { g } = buildGraph(samVitConfig(opts));
  return { params: g.params, macs: g.macs, gflop: (2 * g.macs) / 1e9, nodes: g.nodes.length };
}

export function vitBEncoderStats(opts: VitBEncoderOptions = {}): VitBEncoderStats {
  return samVitEncoderStats({ ...opts, variant: "vit_b" });
}

/** Parameter count of the ViT-B encoder (12 blocks unless opts.depth says otherwise). */
export function countVitBEncoderParams(opts: VitBEncoderOptions = {}): number {
  return vitBEncoderStats(opts).params;
}

function encoderInfo(cfg: SamVitEncoderConfig, input: Value, output: Value) {
  return {
    graphName: `sam_${cfg.variant}_image_encoder_random`,
    producerName: "maskfleet benchmarks/standins/make-sam-vit-encoder.ts",
    docString:
      `SAM ${cfg.variant} image encoder architecture (width ${cfg.embedDim}, depth ${cfg.depth}, ${cfg.numHeads} heads, MLP ${cfg.mlpDim}, ` +
      `${cfg.encoderLayout} input, global attention in [${cfg.globalAttnIndexes.join(", ")}]) ` +
      `with random weights (seed ${cfg.seed}); for benchmarks only, its embeddings mean nothing.`,
    inputs: [valueInfo(input.name, cfg.encoderLayout === "hwc" ? ENCODER_INPUT.hwcDims : input.shape)],
    outputs: [valueInfo(output.name, output.shape)],
  };
}

/** The encoded ModelProto bytes (in memory: vit_b only fits comfortably; see writeSamVitEncoder). */
export function encodeSamVitEncoder(opts: SamVitEncoderOptions = {}): Uint8Array {
  const cfg = samVitConfig(opts);
  const { g, input, output } = buildGraph(cfg);
  return encodeModel(g, encoderInfo(cfg, input, output));
}

export function encodeVitBEncoder(opts: VitBEncoderOptions = {}): Uint8Array {
  return encodeSamVitEncoder({ ...opts, variant: "vit_b" });
}

/**
 * Streams the encoder to `file` (temp name + rename), its weights in the side file
 * `externalData.location` next to it when given (see writeModel).
 */
export async function writeSamVitEncoder(file: string, opts: SamVitEncoderOptions = {}, externalData?: ExternalDataOptions): Promise<WrittenModel & SamVitEncoderStats> {
  const cfg = samVitConfig(opts);
  const { g, input, output } = buildGraph(cfg);
  const written = await writeModel(file, g, encoderInfo(cfg, input, output), externalData ? { externalData } : {});
  return { ...written, params: g.params, macs: g.macs, gflop: (2 * g.macs) / 1e9, nodes: g.nodes.length };
}

/** Writes <dir>/sam-vit-b-random/encoder.onnx (the ViT-B encoder alone) and returns its path. */
export async function makeVitBEncoder(dir: string, opts: VitBEncoderOptions = {}): Promise<string> {
  const outDir = path.join(dir, "sam-vit-b-random");
  await mkdir(outDir, { recursive: true });
  const file = path.join(outDir, "encoder.onnx");
  await writeSamVitEncoder(file, { ...opts, variant: "vit_b" });
  return file;
}

// ---------------------------------------------------------------------------------------------
// samexporter model folders: sam-vit-b/, sam-vit-l/, sam-vit-h/.

/** Bumped when the graphs change, so an old build is not taken for a current one. */
const TOOL_VERSION = 1;

export type SamVitFolder = "sam-vit-b" | "sam-vit-l" | "sam-vit-h";

/** Each manifest model: its encoder variant and the published file names (src/models/manifest.json). */
export const SAM_VIT_FOLDERS: Record<SamVitFolder, { variant: SamVitVariant; encoder: string; decoder: string; encoderData: string | null }> = {
  "sam-vit-b": { variant: "vit_b", encoder: "sam_vit_b_01ec64.encoder.onnx", decoder: "sam_vit_b_01ec64.decoder.onnx", encoderData: null },
  "sam-vit-l": { variant: "vit_l", encoder: "sam_vit_l_0b3195.encoder.onnx", decoder: "sam_vit_l_0b3195.decoder.onnx", encoderData: null },
  "sam-vit-h": {
    variant: "vit_h",
    encoder: "sam_vit_h_4b8939.encoder.onnx",
    decoder: "sam_vit_h_4b8939.decoder.onnx",
    encoderData: "sam_vit_h_4b8939.encoder_data.bin",
  },
};

export interface SamVitFolderOptions {
  /** Encoder weight seed (the decoder's is seed + 1). */
  seed?: number;
  /** Test knobs: fewer blocks / other global blocks than the variant's. */
  depth?: number;
  globalAttnIndexes?: readonly number[];
  /**
   * Encoders with external data (sam-vit-h): weights of at least this many bytes go to the side
   * file (default 1024, as onnx.save_model; a test sets it low to send every weight there).
   */
  externalDataThreshold?: number;
  /** Rebuild even when the folder holds a complete build with the same stamp. */
  force?: boolean;
}

/**
 * A loadable full-size random-weight samexporter folder <outDir>/<variant>/: the encoder (HWC input
 * with the preprocessing inside, as the published --use-preprocess files; ViT-H's weights as
 * external data in sam_vit_h_4b8939.encoder_data.bin, packed as onnx.save_model writes them, so
 * the file has the published file's exact size), the decoder of benchmarks/standins/make-sam-decoder.ts and
 * model.json {format: samexporter, files}, whose "name" is the build stamp (model.json is written
 * last and removed first, so a folder with a matching stamp is complete and is not rebuilt).
 * params: encoder + decoder; macs: encoder (one image) + decoder (one box).
 */
export async function makeSamVit(outDir: string, variant: SamVitFolder, opts: SamVitFolderOptions = {}): Promise<BuiltModel> {
  const spec = SAM_VIT_FOLDERS[variant];
  if (!spec) throw new RangeError(`variant must be one of ${Object.keys(SAM_VIT_FOLDERS).join(", ")}, got ${String(variant)}`);
  const seed = opts.seed ?? 20230405;
  const encOpts: SamVitEncoderOptions = {
    variant: spec.variant,
    seed,
    encoderLayout: "hwc",
    ...(opts.depth !== undefined && { depth: opts.depth }),
    ...(opts.globalAttnIndexes && { globalAttnIndexes: opts.globalAttnIndexes }),
  };
  const cfg = samVitConfig(encOpts);
  const threshold = opts.externalDataThreshold ?? 1024;
  const ext: ExternalDataOptions | undefined = spec.encoderData ? { location: spec.encoderData, threshold, align: 1 } : undefined;
  const stamp =
    `${variant} random weights: benchmarks/standins/make-sam-vit-encoder.ts@${TOOL_VERSION} ${cfg.variant} depth ${cfg.depth} ` +
    `global [${cfg.globalAttnIndexes.join(",")}] seed ${seed}${ext ? ` external >= ${threshold} B` : ""}`;
  const dir = path.join(outDir, variant);
  const files: Record<string, string> = { encoder: spec.encoder, decoder: spec.decoder, ...(spec.encoderData && { "encoder-data": spec.encoderData }) };
  const jsonPath = path.join(dir, "model.json");

  const enc = samVitEncoderStats(encOpts);
  const dec = samDecoderStats(seed + 1);
  const built: BuiltModel = { dir, params: enc.params + dec.params, macs: enc.macs + dec.macsPerBox };

  const previous = await readFile(jsonPath, "utf8").then(
    (t) => JSON.parse(t) as { name?: unknown },
    () => undefined,
  );
  if (!opts.force && previous?.name === stamp && (await Promise.all(Object.values(files).map((f) => fileExists(path.join(dir, f))))).every(Boolean)) {
    return built;
  }
  await mkdir(dir, { recursive: true });
  await rm(jsonPath, { force: true });
  await writeSamVitEncoder(path.join(dir, spec.encoder), encOpts, ext);
  await writeFileAtomic(path.join(dir, spec.decoder), encodeSamDecoder(seed + 1));
  await writeFileAtomic(jsonPath, JSON.stringify({ format: "samexporter", task: "segment", name: stamp, files }, null, 2) + "\n");
  return built;
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

const USAGE =
  "usage: npx tsx benchmarks/standins/make-sam-vit-encoder.ts <dir> [sam-vit-b|sam-vit-l|sam-vit-h] [--seed N] [--depth N] [--force]\n" +
  "       npx tsx benchmarks/standins/make-sam-vit-encoder.ts <dir> --encoder-only [--variant vit_b|vit_l|vit_h] [--depth N] [--seed N] [--layout hwc|nchw] [--bench [runs]]";

const M = (n: number) => `${(n / 1e6).toFixed(2)} M`;

function published(variant: SamVitVariant, encoderParams: number): string {
  const p = SAM_VIT_PUBLISHED[variant];
  const pct = (ours: number, ref: number) => `${ours >= ref ? "+" : ""}${(((ours - ref) / ref) * 100).toFixed(1)} %`;
  const parts = [`published encoder ~${M(p.quoted)} (ours ${pct(encoderParams, p.quoted)})`];
  if (p.exact !== null)
    parts.push(`exact from the published external data file ${p.exact.toLocaleString("en-US")} (ours ${encoderParams === p.exact ? "equal" : pct(encoderParams, p.exact)})`);
  if (p.fileBound !== null)
    parts.push(`published encoder file holds at most ${p.fileBound.toLocaleString("en-US")} float32 (ours ${encoderParams <= p.fileBound ? "within" : "OVER"})`);
  return parts.join("; ");
}

async function mainFolder(dir: string, variant: SamVitFolder, opts: SamVitFolderOptions): Promise<void> {
  const t0 = performance.now();
  const built = await makeSamVit(dir, variant, opts);
  const spec = SAM_VIT_FOLDERS[variant];
  const enc = samVitEncoderStats({
    variant: spec.variant,
    ...(opts.depth !== undefined && { depth: opts.depth }),
    ...(opts.globalAttnIndexes && { globalAttnIndexes: opts.globalAttnIndexes }),
  });
  const dec = samDecoderStats((opts.seed ?? 20230405) + 1);
  const sizes: string[] = [];
  for (const f of [spec.encoder, spec.encoderData, spec.decoder]) {
    if (f) sizes.push(`${f} ${((await stat(path.join(built.dir, f))).size / 1e6).toFixed(1)} MB`);
  }
  const p = SAM_VIT_PUBLISHED[spec.variant];
  console.log(`${built.dir} (${((performance.now() - t0) / 1000).toFixed(1)} s): ${sizes.join(", ")}`);
  console.log(`encoder: params ${enc.params.toLocaleString("en-US")} (${M(enc.params)}); ${published(spec.variant, enc.params)}`);
  console.log(`         ${enc.gflop.toFixed(1)} GFLOP per image (${(enc.macs / 1e9).toFixed(1)} G multiply-adds), ${enc.nodes} nodes`);
  console.log(`decoder: params ${dec.params.toLocaleString("en-US")}, ${dec.gflopPerBox.toFixed(2)} GFLOP per box`);
  console.log(
    `total:   params ${built.params.toLocaleString("en-US")} (${M(built.params)}; segment_anything checkpoint ${M(p.checkpoint)}), ${(built.macs / 1e9).toFixed(1)} G multiply-adds for one image + one box`,
  );
}

async function mainEncoderOnly(dir: string, variant: SamVitVariant, layout: EncoderLayout, depth: number | undefined, seed: number | undefined, benchRuns: number): Promise<void> {
  const opts: SamVitEncoderOptions = { variant, encoderLayout: layout, ...(depth !== undefined ? { depth } : {}), ...(seed !== undefined ? { seed } : {}) };
  const t0 = performance.now();
  const outDir = path.join(dir, variant === "vit_b" ? "sam-vit-b-random" : `sam-${variant.replace("_", "-")}-random`);
  await mkdir(outDir, { recursive: true });
  const file = path.join(outDir, "encoder.onnx");
  const ext: ExternalDataOptions | undefined = variant === "vit_h" ? { location: "encoder_data.bin", align: 1 } : undefined;
  const stats = await writeSamVitEncoder(file, opts, ext);
  console.log(
    `${file}: ${(stats.bytes / 1e6).toFixed(1)} MB${stats.dataFile ? ` + ${path.basename(stats.dataFile)} ${(stats.dataBytes / 1e6).toFixed(1)} MB` : ""} ` +
      `written in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  console.log(
    `params ${stats.params.toLocaleString("en-US")}; ${published(variant, stats.params)}; ` +
      `${stats.gflop.toFixed(1)} GFLOP per image (${(stats.macs / 1e9).toFixed(1)} G multiply-adds), ${stats.nodes} nodes; ` +
      `input ${ENCODER_INPUT.name} [${(layout === "hwc" ? ENCODER_INPUT.hwcDims : ENCODER_INPUT.nchwDims).join(",")}] float32, output ${ENCODER_OUTPUT.name} [${ENCODER_OUTPUT.dims.join(",")}] float32`,
  );
  if (benchRuns > 0) await bench(file, layout, stats, benchRuns);
}

async function main(argv: string[]): Promise<void> {
  const args = [...argv];
  let depth: number | undefined;
  let seed: number | undefined;
  let layout: EncoderLayout = "hwc";
  let variant: SamVitVariant = "vit_b";
  let benchRuns = 0;
  let encoderOnly = false;
  let force = false;
  const rest: string[] = [];
  while (args.length > 0) {
    const a = args.shift() as string;
    if (a === "--depth") depth = Number(args.shift());
    else if (a === "--seed") seed = Number(args.shift());
    else if (a === "--encoder-only") encoderOnly = true;
    else if (a === "--force") force = true;
    else if (a === "--variant") {
      const v = args.shift();
      if (v !== "vit_b" && v !== "vit_l" && v !== "vit_h") throw new Error(`--variant: expected vit_b, vit_l or vit_h, got ${v}`);
      variant = v;
    } else if (a === "--layout") {
      const l = args.shift();
      if (l !== "hwc" && l !== "nchw") throw new Error(`--layout: expected hwc or nchw, got ${l}`);
      layout = l;
    } else if (a === "--bench") benchRuns = /^\d+$/.test(args[0] ?? "") ? Number(args.shift()) : 3;
    else rest.push(a);
  }
  const dir = rest[0];
  const folder = rest[1] ?? "sam-vit-b";
  if (!dir || rest.length > 2 || (encoderOnly && rest.length > 1) || !(folder in SAM_VIT_FOLDERS)) {
    console.error(USAGE);
    process.exitCode = 2;
    return;
  }
  if (encoderOnly) await mainEncoderOnly(dir, variant, layout, depth, seed, benchRuns);
  else await mainFolder(dir, folder as SamVitFolder, { force, ...(depth !== undefined && { depth }), ...(seed !== undefined && { seed }) });
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
