/**
 * Full-size benchmark stand-ins for SAM 2.1 (Hiera tiny / small / base-plus / large) in
 * samexporter's SAM 2 ONNX format (samexporter/export_sam2.py, the files the manifest entries
 * sam2.1-hiera-* point at), with seeded random weights: the same architecture, layer shapes and
 * multiply-adds as the real exports, so the same cost on a CPU, without the downloads. Speed does
 * not depend on the weight values; the masks these graphs produce mean nothing.
 *
 *   npx tsx benchmarks/standins/make-sam2.ts <dir> <tiny|small|base-plus|large|all> [--seed N]
 *
 * writes <dir>/sam2.1-hiera-<variant>/{sam2.1_hiera_<v>.encoder.onnx, sam2.1_hiera_<v>.decoder.onnx,
 * model.json (format "sam2")}, which src/segmenters/sam2.ts loads (timed by benchmarks/models.ts).
 *
 * Encoder (samexporter's SAM2ImageEncoder; sam2/modeling/backbones/hieradet.py, image_encoder.py):
 * image float32 [1, 3, 1024, 1024] (normalised by the caller) ->
 * - Hiera trunk: PatchEmbed (conv 7 x 7 / 4, pad 3) to [1, 256, 256, C]; plus the windowed
 *   positional embedding (pos_embed [1, C, bh, bw] resized bicubic to 256 x 256 plus
 *   pos_embed_window [1, C, 8, 8] tiled; parameters in the graph, folded by onnxruntime at load);
 *   four stages of MultiScaleBlocks (pre-LayerNorm eps 1e-6, MLP ratio 4 with GELU), window
 *   attention (window_spec per stage, padded windows as window_partition does, global attention in
 *   global_att_blocks); at each stage change the first block doubles the width and the heads, max
 *   pools the queries 2 x 2 inside each window and the shortcut (proj + max pool);
 * - FpnNeck (d_model 256): 1 x 1 lateral convs of the four stage outputs, top-down nearest 2x
 *   upsampling into level 2 only (fpn_top_down_levels [2, 3]), scalp 1 (the 32 x 32 level is
 *   dropped; its lateral conv still feeds level 2); the sine position encodings of the neck are
 *   not outputs and vanish from the export;
 * - sam_mask_decoder.conv_s0 / conv_s1 (1 x 1, 256 -> 32 / 64) on levels 0 / 1, and no_mem_embed
 *   added to level 2 (as the flatten / permute / add / permute / reshape the export traces):
 *   -> high_res_feats_0 [1, 32, 256, 256], high_res_feats_1 [1, 64, 128, 128], image_embed [1, 256, 64, 64].
 *
 * Decoder (SAM2ImageDecoder, multimask): image_embed, high_res_feats_0, high_res_feats_1,
 * point_coords [num_labels, num_points, 2], point_labels [num_labels, num_points], mask_input
 * [num_labels, 1, 256, 256], has_mask_input [num_labels] (fed as [1]) -> masks [num_labels, 3, 256, 256]
 * (clamped to +-32), iou_predictions [num_labels, 3]:
 * - _embed_points: (coords + 0.5) plus the padding point (0, 0) labelled -1, / 1024, the random
 *   Fourier encoding (2 x 128 Gaussian matrix, sin / cos), zeroed for label -1, plus the learned
 *   embedding of each label (-1, 0, 1, 2, 3);
 * - _embed_masks: has_mask_input x mask_downscaling(mask_input) (2 x 2 / 2 convs 1 -> 4 -> 16 with
 *   LayerNorm2d + GELU, 1 x 1 conv to 256) + (1 - has_mask_input) x no_mask_embed;
 * - MaskDecoder.predict_masks with pred_obj_scores (6 output tokens: object score, IoU, 4 masks,
 *   before the prompt tokens), repeat_image False (image_embed broadcast against the per-box dense
 *   embedding), the TwoWayTransformer (depth 2, 256, 8 heads, MLP 2048 ReLU, cross attention
 *   downsampled 2x), the high-res upscaling path (ConvTranspose 256 -> 64 + high_res_feats_1,
 *   LayerNorm2d, GELU, ConvTranspose 64 -> 32 + high_res_feats_0, GELU), four hypernetwork MLPs,
 *   the IoU head (sigmoid), masks 1..3 kept. The object-score head's output is not an output of
 *   the export, so it is traced away (its token stays in the transformer). The dense positional
 *   encoding of the 64 x 64 grid is a constant, as the export folds get_dense_pe().
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { encodeModel, GraphBuilder, sfc32, valueInfo, writeModel, type BuiltModel, type ModelInfo, type Value } from "../../test/support/onnx/onnx-graph.js";
import { attention, DOWNSAMPLE, mlp, reshapeTo, twoWayBlock } from "./sam-two-way.js";

/** Bumped whenever the graphs change, so older builds are rebuilt. */
const TOOL_VERSION = 1;
const TOOL = `benchmarks/standins/make-sam2.ts@${TOOL_VERSION}`;
const DEFAULT_SEED = 20240729;

export type Sam2Variant = "tiny" | "small" | "base-plus" | "large";
export const SAM2_VARIANTS: readonly Sam2Variant[] = ["tiny", "small", "base-plus", "large"];

/** The Hiera trunk settings of sam2/configs/sam2.1/sam2.1_hiera_{t,s,b+,l}.yaml (defaults of hieradet.Hiera where the yaml is silent). */
export interface HieraConfig {
  embedDim: number;
  numHeads: number;
  stages: readonly number[];
  globalAttBlocks: readonly number[];
  windowSpec: readonly number[];
  windowPosEmbedBkg: readonly [number, number];
}

export const HIERA_CONFIGS: Readonly<Record<Sam2Variant, HieraConfig>> = {
  tiny: { embedDim: 96, numHeads: 1, stages: [1, 2, 7, 2], globalAttBlocks: [5, 7, 9], windowSpec: [8, 4, 14, 7], windowPosEmbedBkg: [7, 7] },
  small: { embedDim: 96, numHeads: 1, stages: [1, 2, 11, 2], globalAttBlocks: [7, 10, 13], windowSpec: [8, 4, 14, 7], windowPosEmbedBkg: [7, 7] },
  "base-plus": { embedDim: 112, numHeads: 2, stages: [2, 3, 16, 3], globalAttBlocks: [12, 16, 20], windowSpec: [8, 4, 14, 7], windowPosEmbedBkg: [14, 14] },
  large: { embedDim: 144, numHeads: 2, stages: [2, 6, 36, 4], globalAttBlocks: [23, 33, 43], windowSpec: [8, 4, 16, 8], windowPosEmbedBkg: [7, 7] },
};

/** Parameter counts of the whole SAM2Base the SAM 2.1 README gives (video parts included). */
export const SAM2_PUBLISHED_PARAMS: Readonly<Record<Sam2Variant, number>> = { tiny: 38.9e6, small: 46e6, "base-plus": 80.8e6, large: 224.4e6 };

/**
 * Parameters of SAM2Base (2.1 configs) that samexporter's image-only export leaves out, the same
 * for every variant: memory attention (4 RoPE layers, d_model 256, FFN 2048, cross attention from
 * 64-d memories), memory encoder (mask downsampler 1 -> 4 -> 16 -> 64 -> 256 with 3 x 3 / 2 convs,
 * pix_feat_proj, two ConvNeXt fuser blocks, out_proj to 64), the object-pointer parts
 * (mask_downsample, obj_ptr_proj MLP, obj_ptr_tpos_proj, no_obj_ptr, maskmem_tpos_enc,
 * no_mem_pos_enc, no_obj_embed_spatial) and the mask decoder's object-score MLP head.
 */
export function sam2VideoOnlyParams(): number {
  const lin = (i: number, o: number) => i * o + o;
  const ln = (d: number) => 2 * d;
  const conv = (i: number, o: number, k: number) => i * o * k * k + o;
  const memAttnLayer = 4 * lin(256, 256) + (lin(256, 256) + 2 * lin(64, 256) + lin(256, 256)) + lin(256, 2048) + lin(2048, 256) + 3 * ln(256);
  const memoryAttention = 4 * memAttnLayer + ln(256);
  const downsampler = conv(1, 4, 3) + ln(4) + conv(4, 16, 3) + ln(16) + conv(16, 64, 3) + ln(64) + conv(64, 256, 3) + ln(256) + conv(256, 256, 1);
  const cxBlock = 256 * 49 + 256 + ln(256) + lin(256, 1024) + lin(1024, 256) + 256;
  const memoryEncoder = downsampler + conv(256, 256, 1) + 2 * cxBlock + conv(256, 64, 1);
  const base = conv(1, 1, 4) + 7 * 64 + 256 + 256 + 3 * lin(256, 256) + lin(256, 64) + 64;
  const objScoreHead = 2 * lin(256, 256) + lin(256, 1);
  return memoryAttention + memoryEncoder + base + objScoreHead;
}

export interface Sam2Options {
  /** PRNG seed of the weights. */
  seed?: number;
  /** Test knobs (a reduced trunk through the same code): blocks per stage (four stages). */
  stages?: readonly number[];
  /** Blocks with global attention; default: the variant's, those below the depth. */
  globalAttBlocks?: readonly number[];
  /** Initial trunk width (doubles per stage). */
  embedDim?: number;
  /** Initial heads (double per stage). */
  numHeads?: number;
}

export interface Sam2Built extends BuiltModel {
  encoderParams: number;
  decoderParams: number;
  encoderMacs: number;
  /** One decoder run for one box (two corners + the padding point). */
  decoderMacsPerBox: number;
  encoderFile: string;
  decoderFile: string;
  /** Whether this call wrote the files (false: an identical build was already there). */
  built: boolean;
}

interface ResolvedConfig extends HieraConfig {
  seed: number;
  custom: boolean;
}

function resolveConfig(variant: Sam2Variant, opts: Sam2Options): ResolvedConfig {
  const base = HIERA_CONFIGS[variant];
  if (!base) throw new RangeError(`unknown SAM 2 variant ${String(variant)}; expected one of ${SAM2_VARIANTS.join(", ")}`);
  const stages = opts.stages ?? base.stages;
  if (stages.length !== 4 || stages.some((s) => !Number.isInteger(s) || s < 1)) throw new RangeError(`stages must be four positive integers, got [${stages.join(", ")}]`);
  const depth = stages.reduce((a, b) => a + b, 0);
  const globalAttBlocks = opts.globalAttBlocks ?? base.globalAttBlocks.filter((b) => b < depth);
  const embedDim = opts.embedDim ?? base.embedDim;
  const numHeads = opts.numHeads ?? base.numHeads;
  if (embedDim % numHeads !== 0) throw new RangeError(`embedDim ${embedDim} is not a multiple of numHeads ${numHeads}`);
  const custom = opts.stages !== undefined || opts.globalAttBlocks !== undefined || opts.embedDim !== undefined || opts.numHeads !== undefined;
  return { ...base, stages, globalAttBlocks, embedDim, numHeads, seed: opts.seed ?? DEFAULT_SEED, custom };
}

// ---------------------------------------------------------------------------------------------
// Shared pieces.

const IMAGE_SIDE = 1024;
const PATCH_STRIDE = 4;
const D_MODEL = 256;
const GRID = 64;
const LOW_RES = 256;
const HIERA_EPS = 1e-6;
const LN2D_EPS = 1e-6;
const LN_EPS = 1e-5;
const NORMAL = { kind: "normal", mean: 0, std: 0.02 } as const;
/** An absent optional input (Resize's roi / scales). */
const NONE: Value = { name: "", shape: [0], dtype: "float32" };

function conv1x1(g: GraphBuilder, x: Value, prefix: string, cin: number, cout: number): Value {
  return g.conv(x, g.param(`${prefix}.weight`, [cout, cin, 1, 1], NORMAL), g.param(`${prefix}.bias`, [cout], NORMAL), 1, 0);
}

/** nn.MaxPool2d(2, 2) on NCHW (floor). */
function maxPool2(g: GraphBuilder, x: Value): Value {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  return g.node("MaxPool", [x], [n, c, Math.floor(h / 2), Math.floor(w / 2)], { kernel_shape: [2, 2], strides: [2, 2] });
}

/** hieradet.do_pool: [B, H, W, C] -> NCHW -> max pool 2 x 2 -> [B, H/2, W/2, C]. */
function poolNhwc(g: GraphBuilder, x: Value): Value {
  return g.transpose(maxPool2(g, g.transpose(x, [0, 3, 1, 2])), [0, 2, 3, 1]);
}

// ---------------------------------------------------------------------------------------------
// The image encoder.

/** backbones/utils.window_partition: [1, H, W, C] -> zero-pad to a multiple of ws -> [nW, ws, ws, C]. */
function windowPartition(g: GraphBuilder, x: Value, ws: number): { windows: Value; hp: number; wp: number } {
  const [b, h, w, c] = x.shape as [number, number, number, number];
  const ph = (ws - (h % ws)) % ws;
  const pw = (ws - (w % ws)) % ws;
  const hp = h + ph;
  const wp = w + pw;
  const padded = ph > 0 || pw > 0 ? g.padEnd(x, [0, ph, pw, 0]) : x;
  const six = g.reshape(padded, [b, hp / ws, ws, wp / ws, ws, c]);
  return { windows: g.reshape(g.transpose(six, [0, 1, 3, 2, 4, 5]), [b * (hp / ws) * (wp / ws), ws, ws, c]), hp, wp };
}

/** backbones/utils.window_unpartition: [nW, ws, ws, C] -> [1, Hp, Wp, C] -> crop to [1, H, W, C]. */
function windowUnpartition(g: GraphBuilder, windows: Value, ws: number, hp: number, wp: number, h: number, w: number): Value {
  const c = windows.shape[3] as number;
  const six = g.reshape(windows, [1, hp / ws, wp / ws, ws, ws, c]);
  const full = g.reshape(g.transpose(six, [0, 1, 3, 2, 4, 5]), [1, hp, wp, c]);
  return hp > h || wp > w ? g.sliceTo(full, [1, 2], [h, w]) : full;
}

/** hieradet.MultiScaleAttention on [B, H, W, dim] (B = windows): qkv, optional 2 x 2 max pool of q, attention, proj. */
function multiScaleAttention(g: GraphBuilder, x: Value, prefix: string, dim: number, dimOut: number, heads: number, qPool: boolean): Value {
  const [b, h, w] = x.shape as [number, number, number, number];
  const hd = dimOut / heads;
  const qkv = g.reshape(g.linear(x, `${prefix}.qkv`, dim, 3 * dimOut), [b, h * w, 3, heads, hd]);
  const part = (i: number) => g.node("Gather", [qkv, g.ints([i], [])], [b, h * w, heads, hd], { axis: 2 }); // torch.unbind(qkv, 2)
  let q = part(0);
  const k = part(1);
  const v = part(2);
  let [ho, wo] = [h, w];
  if (qPool) {
    const pooled = maxPool2(g, g.transpose(g.reshape(q, [b, h, w, dimOut]), [0, 3, 1, 2]));
    [ho, wo] = [pooled.shape[2] as number, pooled.shape[3] as number];
    q = g.reshape(g.transpose(pooled, [0, 2, 3, 1]), [b, ho * wo, heads, hd]);
  }
  // F.scaled_dot_product_attention on [B, heads, T, hd].
  const qh = g.binary("Mul", g.transpose(q, [0, 2, 1, 3]), g.scalar(hd ** -0.5));
  const kh = g.transpose(k, [0, 2, 3, 1]);
  const vh = g.transpose(v, [0, 2, 1, 3]);
  const out = g.matmul(g.softmax(g.matmul(qh, kh)), vh);
  const merged = g.reshape(g.transpose(out, [0, 2, 1, 3]), [b, ho, wo, dimOut]);
  return g.linear(merged, `${prefix}.proj`, dimOut, dimOut);
}

export interface BlockSpec {
  index: number;
  dim: number;
  dimOut: number;
  heads: number;
  qStride: boolean;
  windowSize: number;
}

/** Hiera's block list (hieradet.Hiera.__init__): window size lags a block at stage changes, width and heads double there. */
export function hieraBlocks(cfg: HieraConfig): BlockSpec[] {
  const stageEnds = cfg.stages.map((_, i) => cfg.stages.slice(0, i + 1).reduce((a, b) => a + b, 0) - 1);
  const qPoolBlocks = stageEnds.slice(0, -1).map((e) => e + 1);
  const depth = stageEnds[stageEnds.length - 1]! + 1;
  const blocks: BlockSpec[] = [];
  let dim = cfg.embedDim;
  let heads = cfg.numHeads;
  let stage = 1;
  for (let i = 0; i < depth; i++) {
    let dimOut = dim;
    const windowSize = cfg.globalAttBlocks.includes(i) ? 0 : (cfg.windowSpec[stage - 1] as number);
    if (stageEnds.includes(i - 1)) {
      dimOut = dim * 2;
      heads *= 2;
      stage++;
    }
    blocks.push({ index: i, dim, dimOut, heads, qStride: qPoolBlocks.includes(i), windowSize });
    dim = dimOut;
  }
  return blocks;
}

/** hieradet.MultiScaleBlock on [1, H, W, dim]. */
function multiScaleBlock(g: GraphBuilder, x: Value, s: BlockSpec): Value {
  const p = `image_encoder.trunk.blocks.${s.index}`;
  const [, h, w] = x.shape as [number, number, number, number];
  const xn = g.layerNorm(x, `${p}.norm1`, s.dim, HIERA_EPS);
  let shortcut = x;
  if (s.dim !== s.dimOut) {
    shortcut = g.linear(xn, `${p}.proj`, s.dim, s.dimOut);
    if (s.qStride) shortcut = poolNhwc(g, shortcut);
  }
  let y: Value;
  if (s.windowSize > 0) {
    const { windows, hp, wp } = windowPartition(g, xn, s.windowSize);
    y = multiScaleAttention(g, windows, `${p}.attn`, s.dim, s.dimOut, s.heads, s.qStride);
    let ws = s.windowSize;
    let [ho, wo, hpo, wpo] = [h, w, hp, wp];
    if (s.qStride) {
      if (ws % 2 !== 0) throw new Error(`block ${s.index}: q pooling inside odd windows of ${ws}`);
      ws /= 2;
      [ho, wo] = [shortcut.shape[1] as number, shortcut.shape[2] as number];
      [hpo, wpo] = [ho + ((ws - (ho % ws)) % ws), wo + ((ws - (wo % ws)) % ws)];
      if (hpo * 2 !== hp || wpo * 2 !== wp) throw new Error(`block ${s.index}: pooled windows ${hp / 2} x ${wp / 2} vs padded ${hpo} x ${wpo}`);
    }
    y = windowUnpartition(g, y, ws, hpo, wpo, ho, wo);
  } else {
    y = multiScaleAttention(g, xn, `${p}.attn`, s.dim, s.dimOut, s.heads, s.qStride);
  }
  x = g.binary("Add", shortcut, y);
  let m = g.layerNorm(x, `${p}.norm2`, s.dimOut, HIERA_EPS);
  m = g.linear(g.gelu(g.linear(m, `${p}.mlp.layers.0`, s.dimOut, 4 * s.dimOut)), `${p}.mlp.layers.1`, 4 * s.dimOut, s.dimOut);
  return g.binary("Add", x, m);
}

export const ENCODER_IO = {
  inputs: { image: [1, 3, IMAGE_SIDE, IMAGE_SIDE] },
  outputs: { high_res_feats_0: [1, 32, 256, 256], high_res_feats_1: [1, 64, 128, 128], image_embed: [1, D_MODEL, GRID, GRID] },
} as const;

function buildEncoder(cfg: ResolvedConfig): GraphBuilder {
  const g = new GraphBuilder(cfg.seed);
  const image: Value = { name: "image", shape: ENCODER_IO.inputs.image, dtype: "float32" };
  const c0 = cfg.embedDim;
  const t = "image_encoder.trunk";

  // PatchEmbed, then the windowed positional embedding (interpolated background + tiled window embedding).
  const patch = g.conv(image, g.param(`${t}.patch_embed.proj.weight`, [c0, 3, 7, 7], NORMAL), g.param(`${t}.patch_embed.proj.bias`, [c0], NORMAL), PATCH_STRIDE, 3);
  let x = g.transpose(patch, [0, 2, 3, 1]);
  const [, side] = x.shape as [number, number];
  const [bh, bw] = cfg.windowPosEmbedBkg;
  const win = cfg.windowSpec[0] as number;
  const bkg = g.param(`${t}.pos_embed`, [1, c0, bh, bw], NORMAL);
  const resized = g.node("Resize", [bkg, NONE, NONE, g.ints([1, c0, side, side])], [1, c0, side, side], {
    mode: "cubic",
    coordinate_transformation_mode: "pytorch_half_pixel",
    cubic_coeff_a: -0.75,
  });
  const tiled = g.node("Tile", [g.param(`${t}.pos_embed_window`, [1, c0, win, win], NORMAL), g.ints([1, 1, side / win, side / win])], [1, c0, side, side]);
  x = g.binary("Add", x, g.transpose(g.binary("Add", resized, tiled), [0, 2, 3, 1]));

  // Trunk: the output of each stage's last block, NCHW.
  const blocks = hieraBlocks(cfg);
  const stageEnds = cfg.stages.map((_, i) => cfg.stages.slice(0, i + 1).reduce((a, b) => a + b, 0) - 1);
  const feats: Value[] = [];
  for (const s of blocks) {
    x = multiScaleBlock(g, x, s);
    if (stageEnds.includes(s.index)) feats.push(g.transpose(x, [0, 3, 1, 2]));
  }

  // FpnNeck: convs[n - i] on level i, top-down (nearest 2x) into level 2 only; scalp 1 drops level 3.
  const n = feats.length - 1;
  const lateral = (i: number) => conv1x1(g, feats[i] as Value, `image_encoder.neck.convs.${n - i}.conv`, feats[i]!.shape[1] as number, D_MODEL);
  const level3 = lateral(3);
  const up = g.node("Resize", [level3, NONE, g.floats([1, 1, 2, 2])], [1, D_MODEL, GRID, GRID], {
    mode: "nearest",
    coordinate_transformation_mode: "asymmetric",
    nearest_mode: "floor",
  });
  const level2 = g.binary("Add", lateral(2), up);
  const level1 = lateral(1);
  const level0 = lateral(0);

  // SAM2ImageEncoder: conv_s0 / conv_s1 of the mask decoder on the high-res levels, no_mem_embed on the lowest-res one.
  g.node("Identity", [conv1x1(g, level0, "sam_mask_decoder.conv_s0", D_MODEL, D_MODEL / 8)], ENCODER_IO.outputs.high_res_feats_0, {}, "high_res_feats_0");
  g.node("Identity", [conv1x1(g, level1, "sam_mask_decoder.conv_s1", D_MODEL, D_MODEL / 4)], ENCODER_IO.outputs.high_res_feats_1, {}, "high_res_feats_1");
  const hwNc = g.transpose(g.reshape(level2, [1, D_MODEL, GRID * GRID]), [2, 0, 1]); // flatten(2).permute(2, 0, 1)
  const withMem = g.binary("Add", hwNc, g.param("no_mem_embed", [1, 1, D_MODEL], NORMAL));
  reshapeTo(g, g.transpose(withMem, [1, 2, 0]), [1, D_MODEL, GRID, GRID], ENCODER_IO.outputs.image_embed, "image_embed");

  const want = (v: Value, side: number) => {
    if (v.shape.join(",") !== [1, D_MODEL, side, side].join(",")) throw new Error(`neck level [${v.shape.join(",")}], expected [1, ${D_MODEL}, ${side}, ${side}]`);
  };
  want(level0, 256);
  want(level1, 128);
  want(level2, GRID);
  return g;
}

// ---------------------------------------------------------------------------------------------
// The prompt encoder + mask decoder.

const DEPTH = 2;
const MASK_TOKENS = 4;
const OUTPUT_TOKENS = 2 + MASK_TOKENS; // object score, IoU, masks
const MULTIMASK = 3;
/** Prompt points counted for the cost figures: a box is its two corners (the decoder adds the padding point). */
const COUNTED_POINTS = 2;

export const DECODER_IO = {
  inputs: {
    image_embed: [1, D_MODEL, GRID, GRID],
    high_res_feats_0: [1, 32, 256, 256],
    high_res_feats_1: [1, 64, 128, 128],
    point_coords: ["num_labels", "num_points", 2],
    point_labels: ["num_labels", "num_points"],
    mask_input: ["num_labels", 1, LOW_RES, LOW_RES],
    has_mask_input: ["num_labels"],
  },
  outputs: { masks: ["num_labels", MULTIMASK, LOW_RES, LOW_RES], iou_predictions: ["num_labels", MULTIMASK] },
} as const;

/** PositionEmbeddingRandom's [2, 128] N(0, 1) matrix, seeded. */
function gaussianMatrix(seed: number): number[] {
  const rand = sfc32(seed ^ 0x5a3d);
  const gauss: number[] = [];
  for (let i = 0; i < D_MODEL; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rand()));
    const th = 2 * Math.PI * rand();
    gauss.push(r * Math.cos(th), r * Math.sin(th));
  }
  return gauss;
}

/**
 * PromptEncoder.get_dense_pe() of the 64 x 64 grid as [1, 4096, 256] (the key PE of the
 * transformer): the random Fourier encoding of the cell centres. The export folds it into a
 * constant; here it is computed from constants, so onnxruntime folds it at load (and its MatMul is
 * left out of the multiply-add count).
 */
function densePe(g: GraphBuilder, gauss: Value): Value {
  const centres: number[] = [];
  for (let y = 0; y < GRID; y++) for (let x = 0; x < GRID; x++) centres.push((2 * (x + 0.5)) / GRID - 1, (2 * (y + 0.5)) / GRID - 1);
  const grid = g.floats(centres, [1, GRID * GRID, 2]);
  const proj = g.binary("Mul", g.node("MatMul", [grid, gauss], [1, GRID * GRID, D_MODEL / 2]), g.scalar(2 * Math.PI));
  return g.node("Concat", [g.unary("Sin", proj), g.unary("Cos", proj)], [1, GRID * GRID, D_MODEL], { axis: -1 });
}

function buildDecoder(seed: number): GraphBuilder {
  const g = new GraphBuilder(seed + 1);
  const B = -1;
  const N = COUNTED_POINTS + 1; // + the padding point
  const T = OUTPUT_TOKENS + N;
  const image: Value = { name: "image_embed", shape: DECODER_IO.inputs.image_embed, dtype: "float32" };
  const hr0: Value = { name: "high_res_feats_0", shape: DECODER_IO.inputs.high_res_feats_0, dtype: "float32" };
  const hr1: Value = { name: "high_res_feats_1", shape: DECODER_IO.inputs.high_res_feats_1, dtype: "float32" };
  const coords: Value = { name: "point_coords", shape: [B, COUNTED_POINTS, 2], dtype: "float32" };
  const labels: Value = { name: "point_labels", shape: [B, COUNTED_POINTS], dtype: "float32" };
  const maskInput: Value = { name: "mask_input", shape: [B, 1, LOW_RES, LOW_RES], dtype: "float32" };
  const hasMask: Value = { name: "has_mask_input", shape: [1], dtype: "float32" };

  // _embed_points: + 0.5, the padding point (0, 0) labelled -1, / image size, random Fourier features.
  const shifted = g.binary("Add", coords, g.scalar(0.5));
  const padded = g.node("Pad", [shifted, g.ints([0, 0, 0, 0, 1, 0]), g.scalar(0)], [B, N, 2], { mode: "constant" });
  const padLabels = g.node("Pad", [labels, g.ints([0, 0, 0, 1]), g.scalar(-1)], [B, N], { mode: "constant" });
  // positional_encoding_gaussian_matrix is a buffer, not a parameter, of PositionEmbeddingRandom: a constant here too.
  const gauss = g.floats(gaussianMatrix(seed), [2, D_MODEL / 2]);
  const unit = g.binary("Sub", g.binary("Mul", g.binary("Div", padded, g.scalar(IMAGE_SIDE)), g.scalar(2)), g.scalar(1));
  const proj = g.binary("Mul", g.matmul(unit, gauss), g.scalar(2 * Math.PI));
  const pe = g.node("Concat", [g.unary("Sin", proj), g.unary("Cos", proj)], [B, N, D_MODEL], { axis: -1 });
  const oneHot = g.node("Cast", [g.node("Equal", [g.unsqueeze(padLabels, 2), g.floats([-1, 0, 1, 2, 3])], [B, N, 5])], [B, N, 5], { to: 1 });
  const notPoint = g.node("Slice", [oneHot, g.ints([0]), g.ints([1]), g.ints([2])], [B, N, 1]);
  const labelEmbed = g.param("sam_prompt_encoder.label_embeddings", [5, D_MODEL], NORMAL); // not_a_point_embed, point_embeddings[0..3]
  const sparse = g.binary("Add", g.binary("Mul", pe, g.binary("Sub", g.scalar(1), notPoint)), g.matmul(oneHot, labelEmbed));

  // _embed_masks.
  const md0 = "sam_prompt_encoder.mask_downscaling";
  let md = g.conv(maskInput, g.param(`${md0}.0.weight`, [4, 1, 2, 2], NORMAL), g.param(`${md0}.0.bias`, [4], NORMAL), 2, 0);
  md = g.gelu(g.layerNorm2d(md, `${md0}.1`, 4, LN2D_EPS));
  md = g.conv(md, g.param(`${md0}.3.weight`, [16, 4, 2, 2], NORMAL), g.param(`${md0}.3.bias`, [16], NORMAL), 2, 0);
  md = g.gelu(g.layerNorm2d(md, `${md0}.4`, 16, LN2D_EPS));
  md = conv1x1(g, md, `${md0}.6`, 16, D_MODEL);
  const noMask = g.param("sam_prompt_encoder.no_mask_embed.weight", [1, D_MODEL, 1, 1], NORMAL);
  const dense = g.binary("Add", g.binary("Mul", hasMask, md), g.binary("Mul", g.binary("Sub", g.scalar(1), hasMask), noMask));

  // predict_masks: output tokens before the prompt tokens; image_embed + dense embedding per box.
  const batchDim = g.node("Slice", [g.node("Shape", [coords], [3]), g.ints([0]), g.ints([1])], [1]);
  const expandTo = (dims: readonly number[]) => g.node("Concat", [batchDim, g.ints(dims)], [1 + dims.length], { axis: 0 });
  const outTokens = g.node(
    "Expand",
    [g.param("sam_mask_decoder.output_tokens", [1, OUTPUT_TOKENS, D_MODEL], NORMAL), expandTo([OUTPUT_TOKENS, D_MODEL])],
    [B, OUTPUT_TOKENS, D_MODEL],
  );
  const tokens = g.node("Concat", [outTokens, sparse], [B, T, D_MODEL], { axis: 1 });
  const src = g.binary("Add", image, dense);
  const keyPe = densePe(g, gauss);
  let keys = g.transpose(reshapeTo(g, src, [0, D_MODEL, GRID * GRID], [B, D_MODEL, GRID * GRID]), [0, 2, 1]);
  let queries = tokens;
  for (let i = 0; i < DEPTH; i++)
    [queries, keys] = twoWayBlock(g, queries, keys, tokens, keyPe, `sam_mask_decoder.transformer.layers.${i}`, i === 0, {
      norms: ["norm1", "norm2", "norm3", "norm4"],
      mlp: ["mlp.layers.0", "mlp.layers.1"],
    });
  const fq = g.binary("Add", queries, tokens);
  const fk = g.binary("Add", keys, keyPe);
  const tp = "sam_mask_decoder.transformer";
  queries = g.layerNorm(g.binary("Add", queries, attention(g, fq, fk, keys, `${tp}.final_attn_token_to_image`, DOWNSAMPLE)), `${tp}.norm_final_attn`, D_MODEL, LN_EPS);

  // Upscaling with the high-res features, hypernetworks, IoU head.
  const ou = "sam_mask_decoder.output_upscaling";
  let up = reshapeTo(g, g.transpose(keys, [0, 2, 1]), [0, D_MODEL, GRID, GRID], [B, D_MODEL, GRID, GRID]);
  up = g.convTranspose(up, g.param(`${ou}.0.weight`, [D_MODEL, D_MODEL / 4, 2, 2], NORMAL), g.param(`${ou}.0.bias`, [D_MODEL / 4], NORMAL), 2);
  up = g.gelu(g.layerNorm2d(g.binary("Add", up, hr1), `${ou}.1`, D_MODEL / 4, LN2D_EPS));
  up = g.convTranspose(up, g.param(`${ou}.3.weight`, [D_MODEL / 4, D_MODEL / 8, 2, 2], NORMAL), g.param(`${ou}.3.bias`, [D_MODEL / 8], NORMAL), 2);
  up = g.gelu(g.binary("Add", up, hr0));
  const token = (i: number) => g.node("Gather", [queries, g.ints([i], [])], [B, D_MODEL], { axis: 1 });
  const hyper = Array.from({ length: MASK_TOKENS }, (_, i) =>
    g.unsqueeze(mlp(g, token(2 + i), `sam_mask_decoder.output_hypernetworks_mlps.${i}`, [D_MODEL, D_MODEL, D_MODEL, D_MODEL / 8]), 1),
  );
  const hyperIn = g.node("Concat", hyper, [B, MASK_TOKENS, D_MODEL / 8], { axis: 1 });
  const flat = reshapeTo(g, up, [0, D_MODEL / 8, LOW_RES * LOW_RES], [B, D_MODEL / 8, LOW_RES * LOW_RES]);
  const masks = reshapeTo(g, g.matmul(hyperIn, flat), [0, MASK_TOKENS, LOW_RES, LOW_RES], [B, MASK_TOKENS, LOW_RES, LOW_RES]);
  const iou = mlp(g, token(1), "sam_mask_decoder.iou_prediction_head", [D_MODEL, 256, 256, MASK_TOKENS], true);

  // Multimask output: candidates 1..3, logits clamped to +-32.
  const multi = g.node("Slice", [masks, g.ints([1]), g.ints([MASK_TOKENS]), g.ints([1])], [B, MULTIMASK, LOW_RES, LOW_RES]);
  g.node("Clip", [multi, g.scalar(-32), g.scalar(32)], multi.shape, {}, "masks");
  g.node("Slice", [iou, g.ints([1]), g.ints([MASK_TOKENS]), g.ints([1])], [B, MULTIMASK], {}, "iou_predictions");
  return g;
}

// ---------------------------------------------------------------------------------------------
// Files.

const fileStem = (variant: Sam2Variant) => `sam2.1_hiera_${variant.replace("-", "_")}`;
export const sam2FolderName = (variant: Sam2Variant) => `sam2.1-hiera-${variant}`;

export interface Sam2Stats {
  encoderParams: number;
  decoderParams: number;
  encoderMacs: number;
  decoderMacsPerBox: number;
  encoderNodes: number;
  decoderNodes: number;
}

/** Parameter and multiply-add counts from the graphs themselves (no weights are generated). */
export function sam2Stats(variant: Sam2Variant, opts: Sam2Options = {}): Sam2Stats {
  const cfg = resolveConfig(variant, opts);
  const enc = buildEncoder(cfg);
  const dec = buildDecoder(cfg.seed);
  return {
    encoderParams: enc.params,
    decoderParams: dec.params,
    encoderMacs: enc.macs,
    decoderMacsPerBox: dec.macs,
    encoderNodes: enc.nodes.length,
    decoderNodes: dec.nodes.length,
  };
}

function stampOf(variant: Sam2Variant, cfg: ResolvedConfig): string {
  const knobs = cfg.custom ? ` stages [${cfg.stages.join(",")}] global [${cfg.globalAttBlocks.join(",")}] embed ${cfg.embedDim} heads ${cfg.numHeads}` : "";
  return `${sam2FolderName(variant)} random-weight stand-in (${TOOL} seed ${cfg.seed}${knobs})`;
}

const ioInfo = (o: Record<string, readonly (number | string)[]>) => Object.entries(o).map(([name, dims]) => valueInfo(name, dims));

function encoderInfo(variant: Sam2Variant, cfg: ResolvedConfig): ModelInfo {
  return {
    graphName: `${fileStem(variant)}_encoder_random`,
    producerName: `maskfleet ${TOOL}`,
    docString: `SAM 2.1 image encoder (Hiera + FpnNeck + conv_s0/conv_s1 + no_mem_embed, samexporter I/O): ${stampOf(variant, cfg)}; for benchmarks only.`,
    inputs: ioInfo(ENCODER_IO.inputs),
    outputs: ioInfo(ENCODER_IO.outputs),
  };
}

function decoderInfo(variant: Sam2Variant, cfg: ResolvedConfig): ModelInfo {
  return {
    graphName: `${fileStem(variant)}_decoder_random`,
    producerName: `maskfleet ${TOOL}`,
    docString: `SAM 2.1 prompt encoder + mask decoder (samexporter SAM2ImageDecoder I/O, multimask): ${stampOf(variant, cfg)}; for benchmarks only.`,
    inputs: ioInfo(DECODER_IO.inputs),
    outputs: ioInfo(DECODER_IO.outputs),
  };
}

/** The encoder's ModelProto bytes, in memory (small test builds). */
export function encodeSam2Encoder(variant: Sam2Variant, opts: Sam2Options = {}): Uint8Array {
  const cfg = resolveConfig(variant, opts);
  return encodeModel(buildEncoder(cfg), encoderInfo(variant, cfg));
}

/** The decoder's ModelProto bytes, in memory. */
export function encodeSam2Decoder(variant: Sam2Variant, opts: Sam2Options = {}): Uint8Array {
  const cfg = resolveConfig(variant, opts);
  return encodeModel(buildDecoder(cfg.seed), decoderInfo(variant, cfg));
}

/**
 * Writes <outDir>/sam2.1-hiera-<variant>/ (encoder and decoder streamed to temporary names and
 * renamed, model.json last). model.json's "name" carries the build stamp (the strict model.json
 * schema has no other free field): a folder whose stamp matches, with both files present, is kept.
 */
export async function makeSam2(outDir: string, variant: Sam2Variant, opts: Sam2Options = {}): Promise<Sam2Built> {
  const cfg = resolveConfig(variant, opts);
  const dir = path.join(outDir, sam2FolderName(variant));
  const encoderFile = path.join(dir, `${fileStem(variant)}.encoder.onnx`);
  const decoderFile = path.join(dir, `${fileStem(variant)}.decoder.onnx`);
  const jsonFile = path.join(dir, "model.json");
  const stamp = stampOf(variant, cfg);
  const enc = buildEncoder(cfg);
  const dec = buildDecoder(cfg.seed);

  const existing = existsSync(jsonFile) ? ((JSON.parse(await readFile(jsonFile, "utf8")) as { name?: unknown }).name ?? null) : null;
  const built = existing !== stamp || !existsSync(encoderFile) || !existsSync(decoderFile);
  if (built) {
    await mkdir(dir, { recursive: true });
    await rm(jsonFile, { force: true });
    await writeModel(encoderFile, enc, encoderInfo(variant, cfg));
    await writeModel(decoderFile, dec, decoderInfo(variant, cfg));
    const json = { format: "sam2", task: "segment", name: stamp, files: { encoder: path.basename(encoderFile), decoder: path.basename(decoderFile) } };
    const tmp = `${jsonFile}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(json, null, 2) + "\n");
    await rename(tmp, jsonFile);
  }
  return {
    dir,
    params: enc.params + dec.params,
    macs: enc.macs + dec.macs,
    encoderParams: enc.params,
    decoderParams: dec.params,
    encoderMacs: enc.macs,
    decoderMacsPerBox: dec.macs,
    encoderFile,
    decoderFile,
    built,
  };
}

// ---------------------------------------------------------------------------------------------
// CLI

async function main(argv: string[]): Promise<void> {
  const { parseArgs } = await import("node:util");
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { seed: { type: "string" } } });
  const [dir, which] = positionals;
  const variants = which === "all" ? SAM2_VARIANTS : SAM2_VARIANTS.filter((v) => v === which);
  if (!dir || positionals.length !== 2 || variants.length === 0) {
    console.error(`usage: npx tsx benchmarks/standins/make-sam2.ts <dir> <${SAM2_VARIANTS.join("|")}|all> [--seed N]`);
    process.exitCode = 2;
    return;
  }
  const opts: Sam2Options = values.seed !== undefined ? { seed: Number(values.seed) } : {};
  const video = sam2VideoOnlyParams();
  for (const variant of variants) {
    const t0 = performance.now();
    const b = await makeSam2(dir, variant, opts);
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    const [encSize, decSize] = await Promise.all([stat(b.encoderFile), stat(b.decoderFile)]).then((s) => s.map((x) => x.size / 1e6));
    const published = SAM2_PUBLISHED_PARAMS[variant];
    const m = (x: number) => (x / 1e6).toFixed(2);
    console.log(
      `${b.dir}: ${b.built ? `written in ${secs} s` : "already built"}; encoder ${encSize!.toFixed(1)} MB, decoder ${decSize!.toFixed(1)} MB\n` +
        `  params: encoder ${m(b.encoderParams)} M + decoder ${m(b.decoderParams)} M = ${m(b.params)} M in the export; ` +
        `+ ${m(video)} M video-only modules not exported = ${m(b.params + video)} M vs published ${m(published)} M (${(((b.params + video) / published - 1) * 100).toFixed(1)} %)\n` +
        `  multiply-adds: encoder ${(b.encoderMacs / 1e9).toFixed(2)} G per image, decoder ${(b.decoderMacsPerBox / 1e9).toFixed(2)} G per box`,
    );
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
