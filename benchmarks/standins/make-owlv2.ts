/**
 * A benchmark stand-in for OWLv2 base patch16 ensemble (google/owlv2-base-patch16-ensemble) as
 * Xenova / Transformers.js export it (onnx/model.onnx, optimum task zero-shot-object-detection):
 * the same architecture and sizes as transformers' Owlv2ForObjectDetection, written as an ONNX
 * (opset 17) graph with seeded random weights, so src/detectors/owlv2.ts loads it and it costs
 * what the real 614 MB file costs, without the download. Its detections mean nothing.
 *
 *   npx tsx benchmarks/standins/make-owlv2.ts <dir> [base-patch16-ensemble] [--seed N]
 *
 * writes <dir>/owlv2-base-patch16-ensemble/ with model.onnx, tokenizer.json, model.json (format
 * "owlv2") and build.json (the build stamp: a folder already holding the same build is kept).
 *
 * What the graph computes (transformers modeling_owlv2.py):
 * - vision (CLIP ViT-B/16 at 960 x 960): 16 x 16 / 16 patch conv without bias -> 3600 tokens,
 *   class token, learned position embedding (3601), pre_layernorm, 12 pre-LN encoder layers
 *   (hidden 768, 12 heads, separate q/k/v/out projections, MLP 3072 with quick_gelu),
 *   post_layernorm over every token;
 * - image features: patch tokens x class token, layer_norm -> image_embeds [1, 60, 60, 768];
 * - text (CLIP text transformer): token embedding 49408 x 512, position embedding 16, 12 layers
 *   (hidden 512, 8 heads, MLP 2048, quick_gelu) under the causal mask plus the padding mask,
 *   final_layer_norm, pooled at the argmax of input_ids (<|endoftext|> has the largest id),
 *   text_projection 512 -> 512 without bias, L2-normalised -> text_embeds [1, Q, 512];
 * - class head: dense0 768 -> 512, both sides L2-normalised (+1e-6), dot products, plus
 *   logit_shift (768 -> 1), times elu(logit_scale (768 -> 1)) + 1; queries whose first token is
 *   the pad id 0 get float32 min -> logits [1, 3600, Q];
 * - box head: 768 -> 768 -> 768 -> 4 with exact GELU, plus the grid box bias, sigmoid ->
 *   pred_boxes [1, 3600, 4] (cx, cy, w, h).
 * Not in the graph, as in the export (its outputs do not need them, so the tracer drops them):
 * visual_projection (768 x 512), logit_scale and the objectness head. With them the PyTorch model
 * has 154,966,792 parameters; without them 153,391,622 (613.6 MB of float32, the "about 614 MB"
 * file).
 *
 * I/O as the optimum export declares it: input_ids int64 [text_batch_size, sequence_length],
 * pixel_values float32 [batch_size, num_channels, height, width], attention_mask int64
 * [text_batch_size, sequence_length] -> logits [image_batch_size, 3600, num_queries],
 * pred_boxes [image_batch_size, num_boxes, 4], text_embeds [text_batch_size, max_text_queries,
 * 512], image_embeds [image_batch_size, 60, 60, 768]. The graph itself only works for one image at
 * 960 x 960 and 16 tokens, like the traced export. A reduced build (imageSize other than 960, for
 * tests) declares pixel_values [1, 3, size, size] so the adapter reads the size from the file.
 *
 * The tokenizer.json is a synthetic CLIP-shaped byte-level BPE (clipTokenizerJson): the 512 byte
 * symbols in CLIP's order ("!" = 0), 48,894 generated merges of letters, <|startoftext|> = 49406,
 * <|endoftext|> = 49407: the real vocabulary's size and special ids, so every id is in range of the
 * 49408-row embedding and the argmax pooling finds <|endoftext|>.
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import onnxProto from "onnx-proto";
import type { onnx as OnnxTypes } from "onnx-proto";
import { byteAlphabet } from "../../src/detectors/clip-tokenizer.js";
import { encodeModel, GraphBuilder, sfc32, valueInfo, writeFileAtomic, writeModel, type BuiltModel, type ModelInfo, type Value } from "../../test/support/onnx/onnx-graph.js";

const { onnx } = onnxProto;

export const OWLV2_VARIANTS = ["base-patch16-ensemble"] as const;
export type Owlv2Variant = (typeof OWLV2_VARIANTS)[number];

export type { BuiltModel };

/** Published figures of google/owlv2-base-patch16-ensemble. */
export const OWLV2_PUBLISHED = {
  /** Owlv2ForObjectDetection in PyTorch (with visual_projection, logit_scale, objectness head). */
  torchParams: 154_966_792,
  /** What the ONNX export keeps (the rest is dead code for its outputs): ~613.6 MB of float32. */
  exportParams: 153_391_622,
  exportBytesApprox: 614e6,
} as const;

const BUILT_BY = "benchmarks/standins/make-owlv2.ts@1";
const DEFAULT_SEED = 20240601;
const FLOAT_MIN = -3.4028234663852886e38;
const CLIP_VOCAB = 49408;

/** Sizes; the defaults are OWLv2 base patch16. The small knobs are for tests. */
export interface Owlv2Options {
  seed?: number;
  imageSize?: number;
  patchSize?: number;
  visionLayers?: number;
  visionWidth?: number;
  visionHeads?: number;
  visionMlp?: number;
  textLayers?: number;
  textWidth?: number;
  textHeads?: number;
  textMlp?: number;
}

export interface Owlv2Config {
  seed: number;
  imageSize: number;
  patchSize: number;
  visionLayers: number;
  visionWidth: number;
  visionHeads: number;
  visionMlp: number;
  textLayers: number;
  textWidth: number;
  textHeads: number;
  textMlp: number;
  /** 512 in OWLv2 base (projection_dim = text hidden size). */
  projectionDim: number;
  vocabSize: number;
  textLength: number;
  eps: number;
}

export function owlv2Config(variant: Owlv2Variant = "base-patch16-ensemble", opts: Owlv2Options = {}): Owlv2Config {
  if (!OWLV2_VARIANTS.includes(variant)) throw new RangeError(`unknown OWLv2 variant ${String(variant)} (${OWLV2_VARIANTS.join(", ")})`);
  const textWidth = opts.textWidth ?? 512;
  const cfg: Owlv2Config = {
    seed: opts.seed ?? DEFAULT_SEED,
    imageSize: opts.imageSize ?? 960,
    patchSize: opts.patchSize ?? 16,
    visionLayers: opts.visionLayers ?? 12,
    visionWidth: opts.visionWidth ?? 768,
    visionHeads: opts.visionHeads ?? 12,
    visionMlp: opts.visionMlp ?? 3072,
    textLayers: opts.textLayers ?? 12,
    textWidth,
    textHeads: opts.textHeads ?? 8,
    textMlp: opts.textMlp ?? 2048,
    projectionDim: textWidth,
    vocabSize: CLIP_VOCAB,
    textLength: 16,
    eps: 1e-5,
  };
  const ints = Object.entries(cfg).filter(([k]) => k !== "eps");
  for (const [k, v] of ints) if (!Number.isInteger(v) || v < 0) throw new RangeError(`${k} must be a non-negative integer, got ${v}`);
  if (cfg.imageSize % cfg.patchSize !== 0) throw new RangeError(`imageSize ${cfg.imageSize} is not a multiple of patchSize ${cfg.patchSize}`);
  if (cfg.visionWidth % cfg.visionHeads !== 0 || cfg.textWidth % cfg.textHeads !== 0) throw new RangeError("width must be a multiple of heads");
  return cfg;
}

/** Closed-form parameter count of the exported graph (independent of the builder, for tests and the CLI). */
export function owlv2ParamCount(cfg: Owlv2Config): number {
  const layer = (d: number, mlp: number) => 4 * (d * d + d) + 2 * 2 * d + (d * mlp + mlp) + (mlp * d + d);
  const v = cfg.visionWidth;
  const t = cfg.textWidth;
  const grid = cfg.imageSize / cfg.patchSize;
  const vision = v * 3 * cfg.patchSize ** 2 + v + (grid * grid + 1) * v + 2 * v + cfg.visionLayers * layer(v, cfg.visionMlp) + 2 * v;
  const text = cfg.vocabSize * t + cfg.textLength * t + cfg.textLayers * layer(t, cfg.textMlp) + 2 * t + t * cfg.projectionDim;
  const heads = 2 * v /* layer_norm */ + (v * cfg.projectionDim + cfg.projectionDim) + 2 * (v + 1) + 2 * (v * v + v) + (v * 4 + 4);
  return vision + text + heads;
}

// ---------------------------------------------------------------------------------------------
// Graph pieces (free functions on the shared GraphBuilder).

/**
 * MatMul whose row or column count is the run-time query count (-1): GraphBuilder.matmul takes
 * the absolute value of the batch dims only, so an m or n of -1 would subtract; count it once.
 */
function matmulPerQuery(g: GraphBuilder, a: Value, b: Value): Value {
  const before = g.macs;
  const y = g.matmul(a, b);
  g.macs = before + Math.abs(g.macs - before);
  return y;
}

function linearNoBias(g: GraphBuilder, x: Value, name: string, inDim: number, outDim: number): Value {
  return matmulPerQuery(g, x, g.param(name, [inDim, outDim], { kind: "normal", mean: 0, std: inDim ** -0.5 }));
}

/** transformers' quick_gelu: x * sigmoid(1.702 x). */
function quickGelu(g: GraphBuilder, x: Value): Value {
  return g.binary("Mul", x, g.node("Sigmoid", [g.binary("Mul", x, g.scalar(1.702))], x.shape));
}

/** x[:, start:end] on axis 1. */
function sliceAxis1(g: GraphBuilder, x: Value, start: number, end: number): Value {
  const shape = [...x.shape];
  shape[1] = end - start;
  return g.node("Slice", [x, g.ints([start]), g.ints([end]), g.ints([1])], shape);
}

/** x / (||x||_2 over the last axis + eps). */
function l2Normalise(g: GraphBuilder, x: Value, eps: number): Value {
  const norm = g.node("ReduceL2", [x], [...x.shape.slice(0, -1), 1], { axes: [-1], keepdims: 1 });
  return g.binary("Div", x, eps > 0 ? g.binary("Add", norm, g.scalar(eps)) : norm);
}

/**
 * Owlv2Attention on x [B, T, D] (B may be -1, the number of text queries): q/k/v projections, q
 * scaled, 4-D [B, H, T, hd] matmuls, masks [B or 1, 1, T, T] added in order, softmax, out_proj.
 */
function attention(g: GraphBuilder, x: Value, prefix: string, heads: number, masks: readonly Value[]): Value {
  const [b, t, d] = x.shape as [number, number, number];
  const hd = d / heads;
  const split = (v: Value) => g.transpose(g.reshape(v, [b, t, heads, hd]), [0, 2, 1, 3]);
  const q = split(g.binary("Mul", g.linear(x, `${prefix}.q_proj`, d, d), g.scalar(hd ** -0.5)));
  const k = g.transpose(g.reshape(g.linear(x, `${prefix}.k_proj`, d, d), [b, t, heads, hd]), [0, 2, 3, 1]);
  const v = split(g.linear(x, `${prefix}.v_proj`, d, d));
  let w = g.matmul(q, k); // [b, h, t, t]
  for (const m of masks) w = g.binary("Add", w, m);
  const out = g.matmul(g.softmax(w), v); // [b, h, t, hd]
  return g.linear(g.reshape(g.transpose(out, [0, 2, 1, 3]), [b, t, d]), `${prefix}.out_proj`, d, d);
}

function encoderLayer(g: GraphBuilder, x: Value, prefix: string, heads: number, mlp: number, eps: number, masks: readonly Value[]): Value {
  const d = x.shape[2] as number;
  x = g.binary("Add", x, attention(g, g.layerNorm(x, `${prefix}.layer_norm1`, d, eps), `${prefix}.self_attn`, heads, masks));
  let h = g.layerNorm(x, `${prefix}.layer_norm2`, d, eps);
  h = g.linear(quickGelu(g, g.linear(h, `${prefix}.mlp.fc1`, d, mlp)), `${prefix}.mlp.fc2`, mlp, d);
  return g.binary("Add", x, h);
}

/** OwlViTForObjectDetection.compute_box_bias for a grid x grid feature map, [grid * grid, 4]. */
export function boxBias(grid: number): number[] {
  const logit = (p: number) => Math.log(p + 1e-4) - Math.log1p(-p + 1e-4);
  const size = logit(1 / grid);
  const out: number[] = [];
  for (let y = 1; y <= grid; y++) for (let x = 1; x <= grid; x++) out.push(logit(Math.min(x / grid, 1)), logit(Math.min(y / grid, 1)), size, size);
  return out;
}

interface BuiltGraph {
  g: GraphBuilder;
  inputs: OnnxTypes.IValueInfoProto[];
  outputs: OnnxTypes.IValueInfoProto[];
  /** Multiply-adds of the image side (vision tower, box head, class head's dense0). */
  imageMacs: number;
  /** Multiply-adds per text query (text tower, projection, one column of the class logits). */
  queryMacs: number;
}

function int64Info(name: string, dims: readonly (number | string)[]): OnnxTypes.IValueInfoProto {
  const info = valueInfo(name, dims);
  const tensorType = info.type?.tensorType;
  if (tensorType) tensorType.elemType = onnx.TensorProto.DataType.INT64;
  return info;
}

function buildGraph(cfg: Owlv2Config): BuiltGraph {
  const g = new GraphBuilder(cfg.seed);
  const v = cfg.visionWidth;
  const t = cfg.textWidth;
  const grid = cfg.imageSize / cfg.patchSize;
  const patches = grid * grid;
  const L = cfg.textLength;
  const normal = (std: number) => ({ kind: "normal", mean: 0, std }) as const;

  // --- vision tower
  const pixels: Value = { name: "pixel_values", shape: [1, 3, cfg.imageSize, cfg.imageSize], dtype: "float32" };
  const patchW = g.param("owlv2.vision_model.embeddings.patch_embedding.weight", [v, 3, cfg.patchSize, cfg.patchSize], normal(0.02));
  let x = g.transpose(g.reshape(g.conv(pixels, patchW, null, cfg.patchSize, 0), [1, v, patches]), [0, 2, 1]);
  const cls = g.reshape(g.param("owlv2.vision_model.embeddings.class_embedding", [v], normal(0.02)), [1, 1, v]);
  x = g.node("Concat", [cls, x], [1, patches + 1, v], { axis: 1 });
  x = g.binary("Add", x, g.param("owlv2.vision_model.embeddings.position_embedding.weight", [patches + 1, v], normal(0.02)));
  x = g.layerNorm(x, "owlv2.vision_model.pre_layernorm", v, cfg.eps);
  for (let i = 0; i < cfg.visionLayers; i++) x = encoderLayer(g, x, `owlv2.vision_model.encoder.layers.${i}`, cfg.visionHeads, cfg.visionMlp, cfg.eps, []);
  x = g.layerNorm(x, "owlv2.vision_model.post_layernorm", v, cfg.eps);
  let feats = g.binary("Mul", sliceAxis1(g, x, 1, patches + 1), sliceAxis1(g, x, 0, 1));
  feats = g.layerNorm(feats, "layer_norm", v, cfg.eps);
  const featureMap = g.node("Reshape", [feats, g.ints([1, grid, grid, v])], [1, grid, grid, v], {}, "image_embeds");
  const imageFeats = g.reshape(featureMap, [1, patches, v]);

  // --- box head
  let box = g.gelu(g.linear(imageFeats, "box_head.dense0", v, v));
  box = g.gelu(g.linear(box, "box_head.dense1", v, v));
  box = g.binary("Add", g.linear(box, "box_head.dense2", v, 4), g.floats(boxBias(grid), [patches, 4]));
  g.node("Sigmoid", [box], box.shape, {}, "pred_boxes");

  // --- class head, image side
  const classEmbeds = l2Normalise(g, g.linear(imageFeats, "class_head.dense0", v, cfg.projectionDim), 1e-6);
  const logitShift = g.linear(imageFeats, "class_head.logit_shift", v, 1);
  const logitScale = g.binary("Add", g.node("Elu", [g.linear(imageFeats, "class_head.logit_scale", v, 1)], [1, patches, 1], { alpha: 1 }), g.scalar(1));
  const imageMacs = g.macs;

  // --- text tower ([Q, 16], Q known at run time: -1)
  const ids: Value = { name: "input_ids", shape: [-1, L], dtype: "int64" };
  const attnMask: Value = { name: "attention_mask", shape: [-1, L], dtype: "int64" };
  const tokEmb = g.param("owlv2.text_model.embeddings.token_embedding.weight", [cfg.vocabSize, t], normal(0.02));
  let h = g.node("Gather", [tokEmb, ids], [-1, L, t], { axis: 0 });
  h = g.binary("Add", h, g.param("owlv2.text_model.embeddings.position_embedding.weight", [L, t], normal(0.01)));
  const causal: number[] = [];
  for (let i = 0; i < L; i++) for (let j = 0; j < L; j++) causal.push(j > i ? FLOAT_MIN : 0);
  const causalMask = g.floats(causal, [1, 1, L, L]);
  const maskF = g.node("Cast", [attnMask], [-1, L], { to: onnx.TensorProto.DataType.FLOAT });
  const padMask = g.reshape(g.binary("Mul", g.binary("Sub", g.scalar(1), maskF), g.scalar(FLOAT_MIN)), [-1, 1, 1, L]);
  for (let i = 0; i < cfg.textLayers; i++) h = encoderLayer(g, h, `owlv2.text_model.encoder.layers.${i}`, cfg.textHeads, cfg.textMlp, cfg.eps, [causalMask, padMask]);
  h = g.layerNorm(h, "owlv2.text_model.final_layer_norm", t, cfg.eps);
  const eos = g.node("ArgMax", [g.node("Cast", [ids], [-1, L], { to: onnx.TensorProto.DataType.INT32 })], [-1, 1], { axis: -1, keepdims: 1 });
  const pooled = g.node("GatherND", [h, eos], [-1, t], { batch_dims: 1 });
  const textEmbeds = l2Normalise(g, linearNoBias(g, pooled, "owlv2.text_projection.weight", t, cfg.projectionDim), 0);
  const queryEmbeds = g.node("Reshape", [textEmbeds, g.ints([1, -1, cfg.projectionDim])], [1, -1, cfg.projectionDim], {}, "text_embeds");

  // --- class logits [1, P, Q]
  const q = g.transpose(l2Normalise(g, queryEmbeds, 1e-6), [0, 2, 1]);
  const logits = g.binary("Mul", g.binary("Add", matmulPerQuery(g, classEmbeds, q), logitShift), logitScale);
  const first = g.node("Gather", [g.reshape(ids, [1, -1, L]), g.ints([0], [])], [1, -1], { axis: 2 });
  const queryMask = g.unsqueeze(g.node("Greater", [first, g.ints([0], [])], [1, -1]), 1); // [1, 1, Q]
  g.node("Where", [queryMask, logits, g.scalar(FLOAT_MIN)], [1, patches, -1], {}, "logits");
  const queryMacs = g.macs - imageMacs;

  const full = cfg.imageSize === 960;
  return {
    g,
    inputs: [
      int64Info("input_ids", ["text_batch_size", "sequence_length"]),
      valueInfo("pixel_values", full ? ["batch_size", "num_channels", "height", "width"] : [1, 3, cfg.imageSize, cfg.imageSize]),
      int64Info("attention_mask", ["text_batch_size", "sequence_length"]),
    ],
    outputs: [
      valueInfo("logits", ["image_batch_size", patches, "num_queries"]),
      valueInfo("pred_boxes", ["image_batch_size", "num_boxes", 4]),
      valueInfo("text_embeds", ["text_batch_size", "max_text_queries", cfg.projectionDim]),
      valueInfo("image_embeds", ["image_batch_size", grid, grid, v]),
    ],
    imageMacs,
    queryMacs,
  };
}

export interface Owlv2Stats {
  params: number;
  /** Multiply-adds for one image and one query (imageMacs + queryMacs). */
  macs: number;
  imageMacs: number;
  queryMacs: number;
  nodes: number;
}

/** Counts from the graph itself, without generating any weight. */
export function owlv2Stats(variant: Owlv2Variant = "base-patch16-ensemble", opts: Owlv2Options = {}): Owlv2Stats {
  const b = buildGraph(owlv2Config(variant, opts));
  return { params: b.g.params, macs: b.g.macs, imageMacs: b.imageMacs, queryMacs: b.queryMacs, nodes: b.g.nodes.length };
}

function modelInfo(variant: Owlv2Variant, cfg: Owlv2Config, b: BuiltGraph): ModelInfo {
  return {
    graphName: "owlv2_random",
    producerName: `maskfleet ${BUILT_BY}`,
    docString: `OWLv2 ${variant} architecture (Owlv2ForObjectDetection as optimum exports it) with random weights (seed ${cfg.seed}); for benchmarks only.`,
    inputs: b.inputs,
    outputs: b.outputs,
  };
}

/** The encoded ModelProto bytes (in memory; makeOwlv2 streams the same model to disk with writeModel). */
export function encodeOwlv2(variant: Owlv2Variant = "base-patch16-ensemble", opts: Owlv2Options = {}): Uint8Array {
  const cfg = owlv2Config(variant, opts);
  const b = buildGraph(cfg);
  return encodeModel(b.g, modelInfo(variant, cfg, b));
}

// ---------------------------------------------------------------------------------------------
// A CLIP-shaped tokenizer.json

/**
 * A byte-level BPE tokenizer.json shaped like CLIP's (openai/clip-vit-base-patch32, as OWLv2
 * ships it): 512 byte symbols (plain, then with "</w>"), merges up to vocabSize - 2, then
 * <|startoftext|> and <|endoftext|> as the last two ids. The merges are generated (letter
 * bigrams, trigrams, then a fixed spread of 4-grams), so real words split differently from CLIP's;
 * ids, sizes and the tokenizer's work per text are alike.
 */
export function clipTokenizerJson(vocabSize = CLIP_VOCAB): object {
  const symbols = byteAlphabet().map((a) => a.char);
  const vocab: Record<string, number> = {};
  let next = 0;
  for (const s of symbols) vocab[s] = next++;
  for (const s of symbols) vocab[`${s}</w>`] = next++;
  const merges: string[] = [];
  const target = vocabSize - 2;
  const add = (a: string, b: string) => {
    if (next >= target) return;
    merges.push(`${a} ${b}`);
    vocab[a + b] = next++;
  };
  const letters = [..."abcdefghijklmnopqrstuvwxyz"];
  const bigrams = letters.flatMap((a) => letters.map((b) => a + b));
  for (const ab of bigrams) {
    add(ab[0]!, ab[1]!);
    add(ab[0]!, `${ab[1]!}</w>`);
  }
  for (const ab of bigrams) {
    for (const c of letters) {
      add(ab, c);
      add(ab, `${c}</w>`);
    }
  }
  const trigrams = bigrams.flatMap((ab) => letters.map((c) => ab + c));
  const pairs = trigrams.length * letters.length;
  for (let k = 0; next < target && k < pairs; k++) {
    const p = (k * 104_729) % pairs; // 104729 is prime, so k -> p visits every pair once
    const abc = trigrams[Math.floor(p / letters.length)]!;
    const d = letters[p % letters.length]!;
    add(abc, d);
    add(abc, `${d}</w>`);
  }
  if (next !== target) throw new Error(`tokenizer: ${next} ids before the special tokens, expected ${target}`);
  const bos = "<|startoftext|>";
  const eos = "<|endoftext|>";
  vocab[bos] = target;
  vocab[eos] = target + 1;
  return {
    version: "1.0",
    added_tokens: [
      { id: target, content: bos, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true },
      { id: target + 1, content: eos, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true },
    ],
    model: { type: "BPE", dropout: null, unk_token: eos, continuing_subword_prefix: "", end_of_word_suffix: "</w>", fuse_unk: false, vocab, merges },
  };
}

// ---------------------------------------------------------------------------------------------
// Writing the folder

export const OWLV2_FOLDER = "owlv2-base-patch16-ensemble";
const FILES = { model: "model.onnx", tokenizer: "tokenizer.json" } as const;

function stampOf(variant: Owlv2Variant, cfg: Owlv2Config): string {
  const { seed, ...sizes } = cfg;
  return `${BUILT_BY} ${variant} seed ${seed} ${JSON.stringify(sizes)}`;
}

/**
 * Writes <outDir>/owlv2-base-patch16-ensemble/ (model.onnx, tokenizer.json, model.json, build.json)
 * unless it already holds the same build (same variant, sizes and seed). macs: one image and one
 * text query.
 */
export async function makeOwlv2(outDir: string, variant: Owlv2Variant = "base-patch16-ensemble", opts: Owlv2Options = {}): Promise<BuiltModel> {
  const cfg = owlv2Config(variant, opts);
  const dir = path.join(outDir, OWLV2_FOLDER);
  const stats = owlv2Stats(variant, opts);
  const stamp = stampOf(variant, cfg);
  const stampFile = path.join(dir, "build.json");
  const complete = [FILES.model, FILES.tokenizer, "model.json"].every((f) => existsSync(path.join(dir, f)));
  if (complete && existsSync(stampFile)) {
    const prev = JSON.parse(await readFile(stampFile, "utf8")) as { builtBy?: string };
    if (prev.builtBy === stamp) return { dir, params: stats.params, macs: stats.macs };
  }
  await mkdir(dir, { recursive: true });
  const b = buildGraph(cfg);
  await writeModel(path.join(dir, FILES.model), b.g, modelInfo(variant, cfg, b));
  await writeFileAtomic(path.join(dir, FILES.tokenizer), JSON.stringify(clipTokenizerJson(cfg.vocabSize)));
  await writeFileAtomic(path.join(dir, "model.json"), JSON.stringify({ format: "owlv2", task: "detect", files: FILES }, null, 2) + "\n");
  // Last: a folder with a stamp is complete.
  await writeFileAtomic(stampFile, JSON.stringify({ builtBy: stamp, params: stats.params, macs: stats.macs }, null, 2) + "\n");
  return { dir, params: stats.params, macs: stats.macs };
}

// ---------------------------------------------------------------------------------------------
// CLI

/** A seeded random photo-like RGB image. */
export function randomImage(width: number, height: number, seed = 7): { data: Uint8Array; width: number; height: number } {
  const rand = sfc32(seed);
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(rand() * 256);
  return { data, width, height };
}

const USAGE = "usage: npx tsx benchmarks/standins/make-owlv2.ts <dir> [base-patch16-ensemble] [--seed N]";

async function main(argv: string[]): Promise<void> {
  const { values, positionals: rest } = parseArgs({ args: argv, allowPositionals: true, options: { seed: { type: "string" } } });
  const seed = values.seed !== undefined ? Number(values.seed) : undefined;
  const [dir, variantArg = "base-patch16-ensemble"] = rest;
  if (!dir || rest.length > 2 || !OWLV2_VARIANTS.includes(variantArg as Owlv2Variant)) {
    console.error(USAGE);
    process.exitCode = 2;
    return;
  }
  const variant = variantArg as Owlv2Variant;
  const opts: Owlv2Options = seed !== undefined ? { seed } : {};
  const t0 = performance.now();
  const built = await makeOwlv2(dir, variant, opts);
  const stats = owlv2Stats(variant, opts);
  const sizes = await Promise.all(Object.values(FILES).map(async (f) => `${f} ${((await stat(path.join(built.dir, f))).size / 1e6).toFixed(1)} MB`));
  console.log(`${built.dir}: ${sizes.join(", ")} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  console.log(
    `params ${built.params.toLocaleString("en-US")} (published: export ${OWLV2_PUBLISHED.exportParams.toLocaleString("en-US")}, ` +
      `PyTorch with visual_projection + objectness head ${OWLV2_PUBLISHED.torchParams.toLocaleString("en-US")}); ` +
      `${(stats.imageMacs / 1e9).toFixed(1)} G multiply-adds per image + ${(stats.queryMacs / 1e9).toFixed(3)} G per query ` +
      `(${((2 * stats.macs) / 1e9).toFixed(1)} GFLOP for one image and one query), ${stats.nodes} nodes`,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
