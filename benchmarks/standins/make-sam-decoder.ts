/**
 * A benchmark stand-in for SAM's prompt encoder + mask decoder as Meta's SamOnnxModel exports them
 * (samexporter's decoder files), with seeded random weights: the same operators and sizes, so the
 * same cost per box, without the download. With benchmarks/standins/make-sam-vit-encoder.ts it makes a full-size
 * random-weight SAM ViT-B model folder that src/segmenters/samexporter.ts loads
 * (benchmarks/standins/make-sam-vit-b.ts). What the graph computes (segment_anything 1.0):
 *
 * - points: PositionEmbeddingRandom of (coords + 0.5) / 1024 (a 2 x 128 Gaussian matrix, sin and
 *   cos), zeroed for label -1, plus the learned embedding of each label (-1 "not a point", 0, 1,
 *   2 and 3 = box corners);
 * - mask_input: mask_downscaling (2 x 2 / 2 convs 1 -> 4 -> 16 channels with LayerNorm2d + GELU,
 *   1 x 1 conv to 256), times has_mask_input, plus (1 - has_mask_input) x no_mask_embed;
 * - MaskDecoder.predict_masks: 5 output tokens (IoU + 4 masks) before the prompt tokens; the image
 *   embedding repeated per box plus the dense embedding; the TwoWayTransformer (depth 2, dim 256,
 *   8 heads, MLP 2048 with ReLU, token-to-image and image-to-token attention downsampled 2x,
 *   LayerNorms, the final token-to-image attention); output upscaling (ConvTranspose 256 -> 64,
 *   LayerNorm2d, GELU, ConvTranspose 64 -> 32, GELU: 256 x 256); four hypernetwork MLPs
 *   (256-256-256-32) and the IoU head (256-256-256-4).
 *
 * I/O: image_embeddings [1, 256, 64, 64], point_coords [batch, num_points, 2], point_labels
 * [batch, num_points], mask_input [mask_batch, 1, 256, 256], has_mask_input [mask_batch] (1 or
 * batch), orig_im_size [2] (unused: only the `masks` output needs it, and this file has none) ->
 * iou_predictions [batch, 4], low_res_masks [batch, 4, 256, 256] (all four masks, as an export
 * without return_single_mask; the adapter picks one). The dense positional encoding of the 64 x 64
 * grid is a constant, as the traced export makes it.
 */
import { encodeModel, GraphBuilder, valueInfo, type Value } from "../../test/support/onnx/onnx-graph.js";
import { attention, DIM, DOWNSAMPLE, mlp, reshapeTo, twoWayBlock } from "./sam-two-way.js";

const DEPTH = 2;
const MASK_TOKENS = 4;
const GRID = 64;
const LOW_RES = 256;
/** Prompt points counted for the cost figures: a box is two corner points. */
const COUNTED_POINTS = 2;

export const DECODER_IO = {
  inputs: {
    image_embeddings: [1, DIM, GRID, GRID],
    point_coords: ["batch", "num_points", 2],
    point_labels: ["batch", "num_points"],
    mask_input: ["mask_batch", 1, LOW_RES, LOW_RES],
    has_mask_input: ["mask_batch"],
    orig_im_size: [2],
  },
  outputs: { iou_predictions: ["batch", MASK_TOKENS], low_res_masks: ["batch", MASK_TOKENS, LOW_RES, LOW_RES] },
} as const;

function buildDecoder(seed: number): GraphBuilder {
  const g = new GraphBuilder(seed);
  const B = -1;
  const N = COUNTED_POINTS;
  const T = 1 + MASK_TOKENS + N;
  const image: Value = { name: "image_embeddings", shape: [1, DIM, GRID, GRID], dtype: "float32" };
  const coords: Value = { name: "point_coords", shape: [B, N, 2], dtype: "float32" };
  const labels: Value = { name: "point_labels", shape: [B, N], dtype: "float32" };
  const maskInput: Value = { name: "mask_input", shape: [1, 1, LOW_RES, LOW_RES], dtype: "float32" };
  const hasMask: Value = { name: "has_mask_input", shape: [1], dtype: "float32" };
  const normal = { kind: "normal", mean: 0, std: 0.02 } as const;

  // Sparse prompt embedding (PromptEncoder._embed_points as SamOnnxModel inlines it).
  const gauss = g.param("pe_layer.positional_encoding_gaussian_matrix", [2, DIM / 2], { kind: "normal", mean: 0, std: 1 });
  const unit = g.binary("Sub", g.binary("Mul", g.binary("Add", coords, g.scalar(0.5)), g.scalar(2 / 1024)), g.scalar(1));
  const proj = g.binary("Mul", g.matmul(unit, gauss), g.scalar(2 * Math.PI));
  const pe = g.node("Concat", [g.unary("Sin", proj), g.unary("Cos", proj)], [B, N, DIM], { axis: -1 });
  const oneHot = g.node("Cast", [g.node("Equal", [g.unsqueeze(labels, 2), g.floats([-1, 0, 1, 2, 3])], [B, N, 5])], [B, N, 5], { to: 1 });
  const notPoint = g.node("Slice", [oneHot, g.ints([0]), g.ints([1]), g.ints([2])], [B, N, 1]);
  const labelEmbed = g.param("prompt_encoder.label_embeddings", [5, DIM], normal); // not_a_point, point_embeddings[0..3]
  const sparse = g.binary("Add", g.binary("Mul", pe, g.binary("Sub", g.scalar(1), notPoint)), g.matmul(oneHot, labelEmbed));

  // Dense prompt embedding (_embed_masks).
  let md = g.conv(maskInput, g.param("mask_downscaling.0.weight", [4, 1, 2, 2], normal), g.param("mask_downscaling.0.bias", [4], normal), 2, 0);
  md = g.gelu(g.layerNorm2d(md, "mask_downscaling.1", 4, 1e-6));
  md = g.conv(md, g.param("mask_downscaling.3.weight", [16, 4, 2, 2], normal), g.param("mask_downscaling.3.bias", [16], normal), 2, 0);
  md = g.gelu(g.layerNorm2d(md, "mask_downscaling.4", 16, 1e-6));
  md = g.conv(md, g.param("mask_downscaling.6.weight", [DIM, 16, 1, 1], normal), g.param("mask_downscaling.6.bias", [DIM], normal), 1, 0);
  const has = reshapeTo(g, hasMask, [-1, 1, 1, 1], [1, 1, 1, 1]);
  const noMask = g.param("no_mask_embed", [1, DIM, 1, 1], normal);
  const dense = g.binary("Add", g.binary("Mul", md, has), g.binary("Mul", g.binary("Sub", g.scalar(1), has), noMask));

  // predict_masks: tokens, the image embedding repeated per box, the transformer.
  const batchDim = g.node("Slice", [g.node("Shape", [coords], [3]), g.ints([0]), g.ints([1])], [1]);
  const expandTo = (dims: readonly number[]) => g.node("Concat", [batchDim, g.ints(dims)], [1 + dims.length], { axis: 0 });
  const outTokens = g.node("Expand", [g.param("output_tokens", [1, 1 + MASK_TOKENS, DIM], normal), expandTo([1 + MASK_TOKENS, DIM])], [B, 1 + MASK_TOKENS, DIM]);
  const tokens = g.node("Concat", [outTokens, sparse], [B, T, DIM], { axis: 1 });
  const src = g.binary("Add", g.node("Expand", [image, expandTo([DIM, GRID, GRID])], [B, DIM, GRID, GRID]), dense);
  const imagePe = g.param("image_pe", [1, DIM, GRID * GRID], { kind: "normal", mean: 0, std: 0.5 }); // constant-folded get_dense_pe()
  let keys = g.transpose(reshapeTo(g, src, [0, DIM, GRID * GRID], [B, DIM, GRID * GRID]), [0, 2, 1]);
  const keyPe = g.transpose(imagePe, [0, 2, 1]);
  let queries = tokens;
  for (let i = 0; i < DEPTH; i++)
    [queries, keys] = twoWayBlock(g, queries, keys, tokens, keyPe, `transformer.layers.${i}`, i === 0, {
      norms: ["norm1", "norm2", "norm3", "norm4"],
      mlp: ["mlp.lin1", "mlp.lin2"],
    });
  const fq = g.binary("Add", queries, tokens);
  const fk = g.binary("Add", keys, keyPe);
  queries = g.layerNorm(g.binary("Add", queries, attention(g, fq, fk, keys, "transformer.final_attn_token_to_image", DOWNSAMPLE)), "transformer.norm_final_attn", DIM, 1e-5);

  // Output upscaling and hypernetworks.
  let up = reshapeTo(g, g.transpose(keys, [0, 2, 1]), [0, DIM, GRID, GRID], [B, DIM, GRID, GRID]);
  up = g.convTranspose(up, g.param("output_upscaling.0.weight", [DIM, DIM / 4, 2, 2], normal), g.param("output_upscaling.0.bias", [DIM / 4], normal), 2);
  up = g.gelu(g.layerNorm2d(up, "output_upscaling.1", DIM / 4, 1e-6));
  up = g.convTranspose(up, g.param("output_upscaling.3.weight", [DIM / 4, DIM / 8, 2, 2], normal), g.param("output_upscaling.3.bias", [DIM / 8], normal), 2);
  up = g.gelu(up);
  const token = (i: number) => g.node("Gather", [queries, g.ints([i], [])], [B, DIM], { axis: 1 });
  const hyper = Array.from({ length: MASK_TOKENS }, (_, i) => g.unsqueeze(mlp(g, token(1 + i), `output_hypernetworks_mlps.${i}`, [DIM, DIM, DIM, DIM / 8]), 1));
  const hyperIn = g.node("Concat", hyper, [B, MASK_TOKENS, DIM / 8], { axis: 1 });
  const flat = reshapeTo(g, up, [0, DIM / 8, LOW_RES * LOW_RES], [B, DIM / 8, LOW_RES * LOW_RES]);
  reshapeTo(g, g.matmul(hyperIn, flat), [0, MASK_TOKENS, LOW_RES, LOW_RES], [B, MASK_TOKENS, LOW_RES, LOW_RES], "low_res_masks");
  const iou = mlp(g, token(0), "iou_prediction_head", [DIM, DIM, DIM, MASK_TOKENS]);
  g.node("Identity", [iou], iou.shape, {}, "iou_predictions");
  return g;
}

export interface SamDecoderStats {
  params: number;
  /** Multiply-adds of MatMul, Conv and ConvTranspose for one box (two points). */
  macsPerBox: number;
  gflopPerBox: number;
  nodes: number;
}

export function samDecoderStats(seed = 20230406): SamDecoderStats {
  const g = buildDecoder(seed);
  return { params: g.params, macsPerBox: g.macs, gflopPerBox: (2 * g.macs) / 1e9, nodes: g.nodes.length };
}

export function encodeSamDecoder(seed = 20230406): Uint8Array {
  const g = buildDecoder(seed);
  const info = (io: Record<string, readonly (number | string)[]>) => Object.entries(io).map(([name, dims]) => valueInfo(name, dims));
  return encodeModel(g, {
    graphName: "sam_mask_decoder_random",
    producerName: "maskfleet benchmarks/standins/make-sam-decoder.ts",
    docString: `SAM prompt encoder + mask decoder architecture (SamOnnxModel I/O, batched prompts) with random weights (seed ${seed}); for benchmarks only.`,
    inputs: info(DECODER_IO.inputs),
    outputs: info(DECODER_IO.outputs),
  });
}
