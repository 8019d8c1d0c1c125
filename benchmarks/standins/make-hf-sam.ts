/**
 * Benchmark stand-ins for the transformers.js (Xenova) SAM exports that src/segmenters/hf-sam.ts
 * loads, with seeded random weights and the real architecture and I/O:
 *
 *   <dir>/sam-vit-base-hf/      Xenova/sam-vit-base: SAM ViT-B (transformers SamModel)
 *   <dir>/slimsam-77-uniform/   Xenova/slimsam-77-uniform: SlimSAM-77 (uniform local pruning of ViT-B)
 *
 * each with onnx/-less file names as the manifest lists them (vision_encoder.onnx,
 * prompt_encoder_mask_decoder.onnx) and model.json {format: "hf-sam"}.
 *
 *   npx tsx benchmarks/standins/make-hf-sam.ts <dir> [sam-vit-base-hf|slimsam-77-uniform] [--seed N] [--depth N] [--force]
 *
 * vision_encoder: pixel_values float32 [1, 3, 1024, 1024] (normalised and padded by the caller)
 * -> image_embeddings [1, 256, 64, 64] (SamVisionEncoder: the same ViT as segment_anything's,
 * built by benchmarks/standins/make-sam-vit-encoder.ts) and image_positional_embeddings [1, 256, 64, 64]
 * (SamModel.get_image_wide_positional_embeddings: the random-Fourier encoding of the 64 x 64 grid
 * centres with the shared 2 x 128 Gaussian matrix).
 *
 * prompt_encoder_mask_decoder (SamPromptEncoder points path + SamMaskDecoder, multimask):
 * input_points float32 [batch_size, point_batch_size, num_points, 2], input_labels int64 [same
 * without the 2], image_embeddings, image_positional_embeddings -> iou_scores [batch_size,
 * point_batch_size, 3], pred_masks [batch_size, point_batch_size, 3, 256, 256]. What it computes:
 * a padding point (0, 0) with label -1 appended (no boxes input, so _embed_points pads), the
 * shared positional encoding of (points + 0.5) / 1024, not_a_point_embed for label -1, zero for
 * -10, + point_embed[0] / [1] for labels 0 / 1; dense embedding = no_mask_embed (no mask input);
 * output tokens (IoU + 4 masks) before the prompt tokens; image embeddings + dense, repeated per
 * point batch; the two-way transformer (depth 2, dim 256, 8 heads, MLP 2048 ReLU, cross attention
 * downsampled 2x), output upscaling (ConvTranspose 256 -> 64, LayerNorm2d, GELU, ConvTranspose
 * 64 -> 32, GELU), 4 hypernetwork MLPs and the IoU head; masks 1..3 and their scores kept
 * (multimask_output). The batch_size dimension is 1 inside (as the adapter feeds it).
 *
 * SlimSAM-77-uniform's size, from its config.json (Zigeng/SlimSAM-uniform-77, nielsr/ and
 * Xenova/slimsam-77-uniform: vision_config {hidden_size: 168, mlp_dim: 696}, every other field
 * transformers' SamVisionConfig default: 12 layers, 12 heads, global attention in 2/5/8/11,
 * window 14, output 256 channels). transformers' SamVisionAttention makes qkv hidden -> 3 x hidden,
 * so 12 heads of 14 channels; the prompt encoder and mask decoder are SAM's, unpruned.
 */
import { mkdir, readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { ENCODER_OUTPUT, samVitConfig, samVitEncoderGraph, type SamVitEncoderOptions } from "./make-sam-vit-encoder.js";
import { encodeModel, GraphBuilder, valueInfo, writeModel, type BuiltModel, type Value, writeFileAtomic, fileExists } from "../../test/support/onnx/onnx-graph.js";
import onnxProto from "onnx-proto";
import { attention, DIM, DOWNSAMPLE, mlp, reshapeTo, twoWayBlock } from "./sam-two-way.js";

const { onnx } = onnxProto;

export type HfSamVariant = "sam-vit-base-hf" | "slimsam-77-uniform";

/** The vision encoder of each variant (SamVisionConfig), and published sizes to compare with. */
export const HF_SAM_VARIANTS: Record<HfSamVariant, { encoder: SamVitEncoderOptions; published: { encoder: number | null; total: number | null; note: string } }> = {
  "sam-vit-base-hf": {
    encoder: { variant: "vit_b" },
    published: { encoder: 89_670_912, total: 93_735_472, note: "SAM ViT-B image encoder 89.67 M; SamModel facebook/sam-vit-base 93.7 M" },
  },
  "slimsam-77-uniform": {
    encoder: { variant: "vit_b", embedDim: 168, mlpDim: 696, numHeads: 12 },
    published: {
      encoder: 5.7e6,
      total: 9.1e6,
      note: "SlimSAM model card: 5.7 M parameters, 21 G MACs (image encoder; MACs of its Linear/Conv layers); paper v1: 9.1 M",
    },
  },
};

const DEPTH = 2;
const MASK_TOKENS = 4;
const MULTIMASK = 3;
const GRID = 64;
const LOW_RES = 256;
const IMAGE = 1024;
/** Prompt points counted for the cost figures: a box as two corners, plus the padding point. */
const COUNTED_POINTS = 2;
const normal = { kind: "normal", mean: 0, std: 0.02 } as const;

// ---------------------------------------------------------------------------------------------
// Vision encoder.

/** SamPositionalEmbedding of [..., 2] coordinates already in 0-1: [..., 256] (sin | cos of 2 pi (2c - 1) @ G). */
function randomFourier(g: GraphBuilder, unit: Value, gauss: Value): Value {
  const centred = g.binary("Sub", g.binary("Mul", unit, g.scalar(2)), g.scalar(1));
  const proj = g.binary("Mul", g.matmul(centred, gauss), g.scalar(2 * Math.PI));
  const shape = [...proj.shape.slice(0, -1), DIM];
  return g.node("Concat", [g.unary("Sin", proj), g.unary("Cos", proj)], shape, { axis: -1 });
}

function buildVisionEncoder(seed: number, encoder: SamVitEncoderOptions): GraphBuilder {
  const cfg = samVitConfig({ ...encoder, seed, encoderLayout: "nchw" });
  const g = new GraphBuilder(cfg.seed);
  const pixels: Value = { name: "pixel_values", shape: [1, 3, IMAGE, IMAGE], dtype: "float32" };
  samVitEncoderGraph(g, pixels, cfg, "image_embeddings");
  // get_image_wide_positional_embeddings: grid centres ((i + 0.5) / 64) as (x, y), encoded, to [1, 256, 64, 64].
  const gauss = g.param("shared_image_embedding.positional_embedding", [2, DIM / 2], { kind: "normal", mean: 0, std: 1 });
  const centres: number[] = [];
  for (let y = 0; y < GRID; y++) for (let x = 0; x < GRID; x++) centres.push((x + 0.5) / GRID, (y + 0.5) / GRID);
  const pe = randomFourier(g, g.floats(centres, [GRID, GRID, 2]), gauss);
  g.node("Unsqueeze", [g.transpose(pe, [2, 0, 1]), g.ints([0])], [1, DIM, GRID, GRID], {}, "image_positional_embeddings");
  return g;
}

// ---------------------------------------------------------------------------------------------
// Prompt encoder + mask decoder.

function buildDecoder(seed: number): GraphBuilder {
  const g = new GraphBuilder(seed);
  const PB = -1; // point_batch_size, dynamic
  const N = COUNTED_POINTS;
  const NP = N + 1; // with the padding point
  const T = 1 + MASK_TOKENS + NP;
  const points: Value = { name: "input_points", shape: [1, PB, N, 2], dtype: "float32" };
  const labelsIn: Value = { name: "input_labels", shape: [1, PB, N], dtype: "int64" };
  const image: Value = { name: "image_embeddings", shape: [1, DIM, GRID, GRID], dtype: "float32" };
  const imagePe: Value = { name: "image_positional_embeddings", shape: [1, DIM, GRID, GRID], dtype: "float32" };

  // SamPromptEncoder._embed_points with pad=True: a (0, 0) point labelled -1 appended.
  const coords0 = g.node("Squeeze", [points, g.ints([0])], [PB, N, 2]);
  const labels0 = g.node("Cast", [g.node("Squeeze", [labelsIn, g.ints([0])], [PB, N])], [PB, N], { to: onnx.TensorProto.DataType.FLOAT });
  const pbDim = g.node("Slice", [g.node("Shape", [coords0], [3]), g.ints([0]), g.ints([1])], [1]);
  const withPb = (dims: readonly number[]) => g.node("Concat", [pbDim, g.ints(dims)], [1 + dims.length], { axis: 0 });
  const padPoint = g.node("Expand", [g.floats([0, 0], [1, 1, 2]), withPb([1, 2])], [PB, 1, 2]);
  const padLabel = g.node("Expand", [g.floats([-1], [1, 1]), withPb([1])], [PB, 1]);
  const coords = g.node("Concat", [coords0, padPoint], [PB, NP, 2], { axis: 1 });
  const labels = g.node("Concat", [labels0, padLabel], [PB, NP], { axis: 1 });

  const gauss = g.param("shared_image_embedding.positional_embedding", [2, DIM / 2], { kind: "normal", mean: 0, std: 1 });
  const pe = randomFourier(g, g.binary("Div", g.binary("Add", coords, g.scalar(0.5)), g.scalar(IMAGE)), gauss);
  // One-hot of labels -1, 0, 1 (and -10 = padding): pe kept unless -1 or -10; the label's embedding added.
  const oneHot = g.node("Cast", [g.node("Equal", [g.unsqueeze(labels, 2), g.floats([-1, 0, 1, -10])], [PB, NP, 4])], [PB, NP, 4], { to: onnx.TensorProto.DataType.FLOAT });
  const dropped = g.node("ReduceSum", [g.node("Gather", [oneHot, g.ints([0, 3])], [PB, NP, 2], { axis: 2 }), g.ints([2])], [PB, NP, 1], { keepdims: 1 });
  const table = g.node(
    "Concat",
    [
      g.param("prompt_encoder.not_a_point_embed.weight", [1, DIM], normal),
      g.param("prompt_encoder.point_embed.0.weight", [1, DIM], normal),
      g.param("prompt_encoder.point_embed.1.weight", [1, DIM], normal),
      g.floats(new Array<number>(DIM).fill(0), [1, DIM]),
    ],
    [4, DIM],
    { axis: 0 },
  );
  const sparse = g.binary("Add", g.binary("Mul", pe, g.binary("Sub", g.scalar(1), dropped)), g.matmul(oneHot, table)); // [PB, NP, 256]

  // No mask input: the dense embedding is no_mask_embed everywhere.
  const dense = g.param("prompt_encoder.no_mask_embed.weight", [1, DIM, 1, 1], normal);

  // SamMaskDecoder: output tokens before the prompt tokens, image embeddings repeated per point batch.
  const outTokens = g.node(
    "Concat",
    [g.param("mask_decoder.iou_token.weight", [1, DIM], normal), g.param("mask_decoder.mask_tokens.weight", [MASK_TOKENS, DIM], normal)],
    [1 + MASK_TOKENS, DIM],
    { axis: 0 },
  );
  const tokens = g.node("Concat", [g.node("Expand", [g.unsqueeze(outTokens, 0), withPb([1 + MASK_TOKENS, DIM])], [PB, 1 + MASK_TOKENS, DIM]), sparse], [PB, T, DIM], { axis: 1 });
  const src = g.node("Expand", [g.binary("Add", image, dense), withPb([DIM, GRID, GRID])], [PB, DIM, GRID, GRID]);
  const pos = g.node("Expand", [imagePe, withPb([DIM, GRID, GRID])], [PB, DIM, GRID, GRID]);
  let keys = g.transpose(reshapeTo(g, src, [0, DIM, GRID * GRID], [PB, DIM, GRID * GRID]), [0, 2, 1]);
  const keyPe = g.transpose(reshapeTo(g, pos, [0, DIM, GRID * GRID], [PB, DIM, GRID * GRID]), [0, 2, 1]);
  let queries = tokens;
  for (let i = 0; i < DEPTH; i++)
    [queries, keys] = twoWayBlock(g, queries, keys, tokens, keyPe, `mask_decoder.transformer.layers.${i}`, i === 0, {
      norms: ["layer_norm1", "layer_norm2", "layer_norm3", "layer_norm4"],
      mlp: ["mlp.lin1", "mlp.lin2"],
    });
  const fq = g.binary("Add", queries, tokens);
  const fk = g.binary("Add", keys, keyPe);
  const final = attention(g, fq, fk, keys, "mask_decoder.transformer.final_attn_token_to_image", DOWNSAMPLE);
  queries = g.layerNorm(g.binary("Add", queries, final), "mask_decoder.transformer.layer_norm_final_attn", DIM, 1e-5);

  let up = reshapeTo(g, g.transpose(keys, [0, 2, 1]), [0, DIM, GRID, GRID], [PB, DIM, GRID, GRID]);
  up = g.convTranspose(up, g.param("mask_decoder.upscale_conv1.weight", [DIM, DIM / 4, 2, 2], normal), g.param("mask_decoder.upscale_conv1.bias", [DIM / 4], normal), 2);
  up = g.gelu(g.layerNorm2d(up, "mask_decoder.upscale_layer_norm", DIM / 4, 1e-6));
  up = g.convTranspose(up, g.param("mask_decoder.upscale_conv2.weight", [DIM / 4, DIM / 8, 2, 2], normal), g.param("mask_decoder.upscale_conv2.bias", [DIM / 8], normal), 2);
  up = g.gelu(up);
  const token = (i: number) => g.node("Gather", [queries, g.ints([i], [])], [PB, DIM], { axis: 1 });
  const hyper = Array.from({ length: MASK_TOKENS }, (_, i) => g.unsqueeze(mlp(g, token(1 + i), `mask_decoder.output_hypernetworks_mlps.${i}`, [DIM, DIM, DIM, DIM / 8]), 1));
  const hyperIn = g.node("Concat", hyper, [PB, MASK_TOKENS, DIM / 8], { axis: 1 });
  const flat = reshapeTo(g, up, [0, DIM / 8, LOW_RES * LOW_RES], [PB, DIM / 8, LOW_RES * LOW_RES]);
  const masks = reshapeTo(g, g.matmul(hyperIn, flat), [0, MASK_TOKENS, LOW_RES, LOW_RES], [PB, MASK_TOKENS, LOW_RES, LOW_RES]);
  const iou = mlp(g, token(0), "mask_decoder.iou_prediction_head", [DIM, DIM, DIM, MASK_TOKENS]);
  // multimask_output: masks 1..3.
  const keptMasks = g.node("Slice", [masks, g.ints([1]), g.ints([MASK_TOKENS]), g.ints([1])], [PB, MULTIMASK, LOW_RES, LOW_RES]);
  const keptIou = g.node("Slice", [iou, g.ints([1]), g.ints([MASK_TOKENS]), g.ints([1])], [PB, MULTIMASK]);
  g.node("Unsqueeze", [keptMasks, g.ints([0])], [1, PB, MULTIMASK, LOW_RES, LOW_RES], {}, "pred_masks");
  g.node("Unsqueeze", [keptIou, g.ints([0])], [1, PB, MULTIMASK], {}, "iou_scores");
  return g;
}

export const HF_SAM_IO = {
  encoder: {
    inputs: { pixel_values: [1, 3, IMAGE, IMAGE] },
    outputs: { image_embeddings: [...ENCODER_OUTPUT.dims], image_positional_embeddings: [1, DIM, GRID, GRID] },
  },
  decoder: {
    inputs: {
      input_points: ["batch_size", "point_batch_size", "num_points", 2],
      input_labels: ["batch_size", "point_batch_size", "num_points"],
      image_embeddings: ["batch_size", DIM, GRID, GRID],
      image_positional_embeddings: ["batch_size", DIM, GRID, GRID],
    },
    outputs: { iou_scores: ["batch_size", "point_batch_size", MULTIMASK], pred_masks: ["batch_size", "point_batch_size", MULTIMASK, LOW_RES, LOW_RES] },
  },
} as const;

function infos(io: Record<string, readonly (number | string)[]>, int64: readonly string[] = []) {
  return Object.entries(io).map(([name, dims]) => {
    const info = valueInfo(name, dims);
    if (!int64.includes(name)) return info;
    return { ...info, type: { tensorType: { ...info.type?.tensorType, elemType: onnx.TensorProto.DataType.INT64 } } };
  });
}

export interface HfSamStats {
  encoderParams: number;
  /** Encoder multiply-adds per image. */
  encoderMacs: number;
  decoderParams: number;
  /** Decoder multiply-adds for one box (two corners + the padding point). */
  decoderMacsPerBox: number;
}

export interface HfSamOptions {
  /** Vision encoder weight seed (the decoder's is seed + 1). */
  seed?: number;
  /** Test knobs: fewer blocks / other global blocks than the variant's. */
  depth?: number;
  globalAttnIndexes?: readonly number[];
  /** Rebuild even when the folder holds a complete build with the same stamp. */
  force?: boolean;
}

function encoderOptions(variant: HfSamVariant, opts: HfSamOptions): SamVitEncoderOptions {
  const spec = HF_SAM_VARIANTS[variant];
  if (!spec) throw new RangeError(`variant must be one of ${Object.keys(HF_SAM_VARIANTS).join(", ")}, got ${String(variant)}`);
  return {
    ...spec.encoder,
    ...(opts.depth !== undefined && { depth: opts.depth }),
    ...(opts.globalAttnIndexes && { globalAttnIndexes: opts.globalAttnIndexes }),
  };
}

export function hfSamStats(variant: HfSamVariant, opts: HfSamOptions = {}): HfSamStats {
  const seed = opts.seed ?? 20230405;
  const enc = buildVisionEncoder(seed, encoderOptions(variant, opts));
  const dec = buildDecoder(seed + 1);
  return { encoderParams: enc.params, encoderMacs: enc.macs, decoderParams: dec.params, decoderMacsPerBox: dec.macs };
}

/** The encoded prompt_encoder_mask_decoder (16 MB, in memory). */
export function encodeHfSamDecoder(seed = 20230406): Uint8Array {
  const g = buildDecoder(seed);
  return encodeModel(g, {
    graphName: "hf_sam_prompt_encoder_mask_decoder_random",
    producerName: "maskfleet benchmarks/standins/make-hf-sam.ts",
    docString: `transformers SamPromptEncoder (points) + SamMaskDecoder (multimask) architecture with random weights (seed ${seed}); for benchmarks only.`,
    inputs: infos(HF_SAM_IO.decoder.inputs, ["input_labels"]),
    outputs: infos(HF_SAM_IO.decoder.outputs),
  });
}

const TOOL_VERSION = 1;

/**
 * A loadable random-weight hf-sam folder <outDir>/<variant>/: vision_encoder.onnx (streamed to
 * disk), prompt_encoder_mask_decoder.onnx and model.json {format: hf-sam}, whose "name" is the
 * build stamp (model.json written last, removed first; a folder with the same stamp is reused).
 * params: encoder + decoder; macs: encoder (one image) + decoder (one box).
 */
export async function makeHfSam(outDir: string, variant: HfSamVariant, opts: HfSamOptions = {}): Promise<BuiltModel> {
  const seed = opts.seed ?? 20230405;
  const encOpts = encoderOptions(variant, opts);
  const cfg = samVitConfig(encOpts);
  const stamp =
    `${variant} random weights: benchmarks/standins/make-hf-sam.ts@${TOOL_VERSION} width ${cfg.embedDim} depth ${cfg.depth} heads ${cfg.numHeads} ` +
    `mlp ${cfg.mlpDim} global [${cfg.globalAttnIndexes.join(",")}] seed ${seed}`;
  const dir = path.join(outDir, variant);
  const files = { encoder: "vision_encoder.onnx", decoder: "prompt_encoder_mask_decoder.onnx" };
  const jsonPath = path.join(dir, "model.json");
  const stats = hfSamStats(variant, opts);
  const built: BuiltModel = { dir, params: stats.encoderParams + stats.decoderParams, macs: stats.encoderMacs + stats.decoderMacsPerBox };

  const previous = await readFile(jsonPath, "utf8").then(
    (t) => JSON.parse(t) as { name?: unknown },
    () => undefined,
  );
  if (!opts.force && previous?.name === stamp && (await fileExists(path.join(dir, files.encoder))) && (await fileExists(path.join(dir, files.decoder)))) return built;
  await mkdir(dir, { recursive: true });
  await rm(jsonPath, { force: true });
  const g = buildVisionEncoder(seed, encOpts);
  await writeModel(path.join(dir, files.encoder), g, {
    graphName: "hf_sam_vision_encoder_random",
    producerName: "maskfleet benchmarks/standins/make-hf-sam.ts",
    docString:
      `transformers SamVisionEncoder (width ${cfg.embedDim}, depth ${cfg.depth}, ${cfg.numHeads} heads, MLP ${cfg.mlpDim}) + image-wide positional ` +
      `embeddings, random weights (seed ${seed}); for benchmarks only.`,
    inputs: infos(HF_SAM_IO.encoder.inputs),
    outputs: infos(HF_SAM_IO.encoder.outputs),
  });
  await writeFileAtomic(path.join(dir, files.decoder), encodeHfSamDecoder(seed + 1));
  await writeFileAtomic(jsonPath, JSON.stringify({ format: "hf-sam", task: "segment", name: stamp, files }, null, 2) + "\n");
  return built;
}

// ---------------------------------------------------------------------------------------------
// CLI

async function main(argv: string[]): Promise<void> {
  const { parseArgs } = await import("node:util");
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { seed: { type: "string" }, depth: { type: "string" }, force: { type: "boolean" } },
  });
  const [dir, variant = "sam-vit-base-hf"] = positionals;
  if (!dir || positionals.length > 2 || !(variant in HF_SAM_VARIANTS)) {
    console.error("usage: npx tsx benchmarks/standins/make-hf-sam.ts <dir> [sam-vit-base-hf|slimsam-77-uniform] [--seed N] [--depth N] [--force]");
    process.exitCode = 2;
    return;
  }
  const opts: HfSamOptions = {
    ...(values.seed !== undefined && { seed: Number(values.seed) }),
    ...(values.depth !== undefined && { depth: Number(values.depth) }),
    ...(values.force && { force: true }),
  };
  const v = variant as HfSamVariant;
  const t0 = performance.now();
  const built = await makeHfSam(dir, v, opts);
  const s = hfSamStats(v, opts);
  const size = async (f: string) => `${f} ${((await stat(path.join(built.dir, f))).size / 1e6).toFixed(1)} MB`;
  const pub = HF_SAM_VARIANTS[v].published;
  const M = (n: number) => `${(n / 1e6).toFixed(2)} M`;
  console.log(`${built.dir} (${((performance.now() - t0) / 1000).toFixed(1)} s): ${await size("vision_encoder.onnx")}, ${await size("prompt_encoder_mask_decoder.onnx")}`);
  console.log(
    `vision encoder: params ${s.encoderParams.toLocaleString("en-US")} (${M(s.encoderParams)}; published ${pub.encoder ? M(pub.encoder) : "?"}), ${((2 * s.encoderMacs) / 1e9).toFixed(1)} GFLOP per image (${(s.encoderMacs / 1e9).toFixed(2)} G multiply-adds)`,
  );
  console.log(`decoder:        params ${s.decoderParams.toLocaleString("en-US")}, ${((2 * s.decoderMacsPerBox) / 1e9).toFixed(2)} GFLOP per box`);
  console.log(`total:          params ${built.params.toLocaleString("en-US")} (${M(built.params)}; published ${pub.total ? M(pub.total) : "?"}: ${pub.note})`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
