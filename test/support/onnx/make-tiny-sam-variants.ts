/**
 * TINY ONNX graphs (opset 17) with the real input/output names, dtypes and ranks of two more SAM
 * export formats, for tests of their adapters through the real loader and pre/post-processing:
 *
 *   <dir>/sam2-tiny/    encoder.onnx, decoder.onnx, model.json  (format "sam2": samexporter's SAM 2 export)
 *   <dir>/hf-sam-tiny/  encoder.onnx, decoder.onnx, model.json  (format "hf-sam": transformers.js SAM)
 *   <dir>/samexporter-all-masks-tiny/  (format "samexporter", a decoder exported without
 *                       return_single_mask: mask 0 and the three multimask candidates)
 *
 * Both decoders compute their logits on the 256 x 256 low-res grid (cell = 4 px of the 1024 frame)
 * from the prompt points (see promptLogits), as three multimask candidates of which one is right:
 * the others are shrunk or grown by SHIFT cells, and the IoU scores prefer the right one
 * (SAM2_BEST, HF_SAM_BEST). The SAM 2 decoder also adds has_mask_input * (mask_input + MASK_BIAS), so
 * a refine pass that feeds back the first pass's logits grows the box by MASK_BIAS / 2 cells per
 * side (and zeros with has_mask_input = 1 would grow it by MASK_BIAS cells).
 *
 * Run: `npx tsx test/support/onnx/make-tiny-sam-variants.ts <dir>`, or import makeTinySamVariants. Test graphs only.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import onnxProto, { type onnx as Onnx } from "onnx-proto";
import { encodeModel, Graph, tinySamEncoder, valueInfo } from "./make-tiny-models.js";

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

/** Half-width, in low-res cells, of the square a positive point adds / a negative point cuts. */
export const POINT_RADIUS = 8;
/** How far, in cells, the wrong candidates are shrunk / grown. */
export const SHIFT = 12;
/** Added with the mask input when has_mask_input = 1 (SAM 2 decoder). */
export const MASK_BIAS = 10;
/** SAM 2 decoder: candidate offsets and IoU scores; index 1 is the right mask. */
export const SAM2_OFFSETS = [-SHIFT, 0, SHIFT];
export const SAM2_IOU = [0.3, 0.9, 0.6];
export const SAM2_BEST = 1;
/** transformers.js decoder: index 2 is the right mask. */
export const HF_SAM_OFFSETS = [SHIFT, -SHIFT, 0];
export const HF_SAM_IOU = [0.5, 0.2, 0.95];
export const HF_SAM_BEST = 2;
/** samexporter decoder with all four masks: mask 0 is the box itself, the best-scored multimask candidate (index 2) is grown. */
export const ALL_MASKS_OFFSETS = [0, -SHIFT, SHIFT, SHIFT / 2];
export const ALL_MASKS_IOU = [0.5, 0.3, 0.95, 0.6];
export const ALL_MASKS_BEST = 2;

function int64Info(name: string, dims: (number | string)[]): Onnx.IValueInfoProto {
  const info = valueInfo(name, dims);
  return { ...info, type: { tensorType: { ...info.type?.tensorType, elemType: INT64 } } };
}

/** x -> AveragePool k x k / k -> 1 x 1 Conv of every input channel with weight w, bias b. */
function poolConv(g: Graph, x: string, k: number, channels: number, w: number, b: number, out: string): string {
  const pooled = g.op("AveragePool", [x], { kernel_shape: [k, k], strides: [k, k] });
  return g.op("Conv", [pooled, g.f32(new Float32Array(channels * 3).fill(w), [channels, 3, 1, 1]), g.f32(new Float32Array(channels).fill(b))], {}, out);
}

/**
 * Low-res logits [B, 1, 256, 256] of prompts `coords` [B, N, 2] (model frame, 1024 scale) with float
 * `labels` [B, N]: inside the box of the points labelled 2 (top-left) and 3 (bottom-right), the
 * distance to its nearest edge in cells (negative outside); united with a square of POINT_RADIUS
 * cells around each label-1 point and cut by one around each label-0 point. Other labels (padding)
 * are ignored.
 */
function promptLogits(g: Graph, coords: string, labels: string): string {
  const BIG = 1e4;
  const isLabel = (label: number) => g.op("Cast", [g.op("Equal", [labels, g.f32([label], [])])], { to: FLOAT }); // [B, N]
  const cell = (axis: number) => g.op("Mul", [g.op("Gather", [coords, g.i64([axis], [])], { axis: 2 }), g.f32([0.25], [])]); // [B, N]
  const cx = cell(0);
  const cy = cell(1);
  const corner = (c: string, label: number) => g.op("Unsqueeze", [g.op("ReduceSum", [g.op("Mul", [c, isLabel(label)]), g.i64([1])], { keepdims: 1 }), g.i64([2, 3])]);
  const centres = Array.from({ length: 256 }, (_, i) => i + 0.5);
  const gx = g.f32(centres, [1, 1, 1, 256]);
  const gy = g.f32(centres, [1, 1, 256, 1]);
  const geo = g.op("Min", [g.op("Sub", [gx, corner(cx, 2)]), g.op("Sub", [corner(cx, 3), gx]), g.op("Sub", [gy, corner(cy, 2)]), g.op("Sub", [corner(cy, 3), gy])]);
  const per = (v: string) => g.op("Unsqueeze", [v, g.i64([2, 3])]); // [B, N, 1, 1]
  const cheb = g.op("Max", [g.op("Abs", [g.op("Sub", [gx, per(cx)])]), g.op("Abs", [g.op("Sub", [gy, per(cy)])])]); // [B, N, 256, 256]
  const notLabel = (label: number) => g.op("Mul", [per(g.op("Sub", [g.f32([1], []), isLabel(label)])), g.f32([BIG], [])]);
  const pos = g.op("ReduceMax", [g.op("Sub", [g.op("Sub", [g.f32([POINT_RADIUS], []), cheb]), notLabel(1)])], { axes: [1], keepdims: 1 });
  const neg = g.op("ReduceMin", [g.op("Add", [g.op("Sub", [cheb, g.f32([POINT_RADIUS], [])]), notLabel(0)])], { axes: [1], keepdims: 1 });
  return g.op("Min", [g.op("Max", [geo, pos]), neg]);
}

/** K candidates [B, K, 256, 256] = logits + offsets, and IoU scores [B, K] = the constants (+ 0 x `used`, so every input is read). */
function candidates(g: Graph, logits: string, offsets: number[], iou: number[], used: string[], masksOut: string | undefined, iouOut: string | undefined) {
  const k = offsets.length;
  const masks = g.op("Add", [logits, g.f32(offsets, [1, k, 1, 1])], {}, masksOut);
  const zero = g.op("Mul", [
    g.op(
      "Sum",
      used.map((u) => g.op("ReduceMean", [u], { keepdims: 0 })),
    ),
    g.f32([0], []),
  ]);
  const batchK = g.op("Concat", [g.op("Slice", [g.op("Shape", [logits]), g.i64([0]), g.i64([1])]), g.i64([k])], { axis: 0 });
  const scores = g.op("Expand", [g.op("Add", [g.f32(iou, [1, k]), zero]), batchK], {}, iouOut);
  return { masks, scores };
}

/** SAM 2 encoder (samexporter): image [1, 3, 1024, 1024] -> 16/4/8-px block means of the channel mean. */
export function tinySam2Encoder(): Uint8Array {
  const g = new Graph();
  poolConv(g, "image", 4, 32, 1 / 3, 0, "high_res_feats_0");
  poolConv(g, "image", 8, 64, 1 / 3, 0, "high_res_feats_1");
  poolConv(g, "image", 16, 256, 1 / 3, 0, "image_embed");
  return encodeModel(
    g,
    "tiny_sam2_encoder",
    [valueInfo("image", [1, 3, 1024, 1024])],
    [valueInfo("high_res_feats_0", [1, 32, 256, 256]), valueInfo("high_res_feats_1", [1, 64, 128, 128]), valueInfo("image_embed", [1, 256, 64, 64])],
  );
}

/** SAM 2 decoder (samexporter's export_sam2.py I/O, multimask): see the file comment. */
export function tinySam2Decoder(): Uint8Array {
  const g = new Graph();
  const inputs = [
    valueInfo("image_embed", [1, 256, 64, 64]),
    valueInfo("high_res_feats_0", [1, 32, 256, 256]),
    valueInfo("high_res_feats_1", [1, 64, 128, 128]),
    valueInfo("point_coords", ["num_labels", "num_points", 2]),
    valueInfo("point_labels", ["num_labels", "num_points"]),
    valueInfo("mask_input", ["num_labels", 1, 256, 256]),
    valueInfo("has_mask_input", ["num_labels"]),
  ];
  const base = promptLogits(g, "point_coords", "point_labels");
  const has = g.op("Reshape", ["has_mask_input", g.i64([-1, 1, 1, 1])]);
  const withMask = g.op("Add", [base, g.op("Mul", [has, g.op("Add", ["mask_input", g.f32([MASK_BIAS], [])])])]);
  candidates(g, withMask, SAM2_OFFSETS, SAM2_IOU, ["image_embed", "high_res_feats_0", "high_res_feats_1"], "masks", "iou_predictions");
  const outputs = [valueInfo("masks", ["num_labels", 3, 256, 256]), valueInfo("iou_predictions", ["num_labels", 3])];
  return encodeModel(g, "tiny_sam2_decoder", inputs, outputs);
}

/** transformers.js SAM vision encoder: image_embeddings as the SAM 2 image_embed; positional embeddings all 1. */
export function tinyHfSamEncoder(): Uint8Array {
  const g = new Graph();
  poolConv(g, "pixel_values", 16, 256, 1 / 3, 0, "image_embeddings");
  poolConv(g, "pixel_values", 16, 256, 0, 1, "image_positional_embeddings");
  return encodeModel(
    g,
    "tiny_hf_sam_encoder",
    [valueInfo("pixel_values", [1, 3, 1024, 1024])],
    [valueInfo("image_embeddings", [1, 256, 64, 64]), valueInfo("image_positional_embeddings", [1, 256, 64, 64])],
  );
}

/** transformers.js SAM prompt encoder + mask decoder: input_labels int64; see the file comment. */
export function tinyHfSamDecoder(): Uint8Array {
  const g = new Graph();
  const inputs = [
    valueInfo("input_points", ["batch_size", "point_batch_size", "num_points", 2]),
    int64Info("input_labels", ["batch_size", "point_batch_size", "num_points"]),
    valueInfo("image_embeddings", ["batch_size", 256, 64, 64]),
    valueInfo("image_positional_embeddings", ["batch_size", 256, 64, 64]),
  ];
  const coords = g.op("Squeeze", ["input_points", g.i64([0])]);
  const labels = g.op("Squeeze", [g.op("Cast", ["input_labels"], { to: FLOAT }), g.i64([0])]);
  const { masks, scores } = candidates(g, promptLogits(g, coords, labels), HF_SAM_OFFSETS, HF_SAM_IOU, ["image_embeddings", "image_positional_embeddings"], undefined, undefined);
  g.op("Unsqueeze", [masks, g.i64([0])], {}, "pred_masks");
  g.op("Unsqueeze", [scores, g.i64([0])], {}, "iou_scores");
  const outputs = [valueInfo("iou_scores", ["batch_size", "point_batch_size", 3]), valueInfo("pred_masks", ["batch_size", "point_batch_size", 3, 256, 256])];
  return encodeModel(g, "tiny_hf_sam_decoder", inputs, outputs);
}

/**
 * Meta's SamOnnxModel decoder I/O exported without return_single_mask: iou_predictions [1, 4] and
 * low_res_masks [1, 4, 256, 256] (ALL_MASKS_OFFSETS / ALL_MASKS_IOU); mask_input and orig_im_size are read, not used.
 */
export function tinyAllMasksDecoder(): Uint8Array {
  const g = new Graph();
  const inputs = [
    valueInfo("image_embeddings", [1, 256, 64, 64]),
    valueInfo("point_coords", [1, "num_points", 2]),
    valueInfo("point_labels", [1, "num_points"]),
    valueInfo("mask_input", [1, 1, 256, 256]),
    valueInfo("has_mask_input", [1]),
    valueInfo("orig_im_size", [2]),
  ];
  candidates(
    g,
    promptLogits(g, "point_coords", "point_labels"),
    ALL_MASKS_OFFSETS,
    ALL_MASKS_IOU,
    ["image_embeddings", "mask_input", "has_mask_input", "orig_im_size"],
    "low_res_masks",
    "iou_predictions",
  );
  const outputs = [valueInfo("iou_predictions", [1, 4]), valueInfo("low_res_masks", [1, 4, 256, 256])];
  return encodeModel(g, "tiny_sam_all_masks_decoder", inputs, outputs);
}

export interface TinySamVariantDirs {
  sam2: string;
  hfSam: string;
  allMasks: string;
}

async function writeFolder(dir: string, format: string, encoder: Uint8Array, decoder: Uint8Array): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "encoder.onnx"), encoder);
  await writeFile(join(dir, "decoder.onnx"), decoder);
  await writeFile(join(dir, "model.json"), JSON.stringify({ format, task: "segment", files: { encoder: "encoder.onnx", decoder: "decoder.onnx" } }, null, 2) + "\n");
}

/** Writes sam2-tiny/ and hf-sam-tiny/ under `dir` (model.json + .onnx files, loadable by path). */
export async function makeTinySamVariants(dir: string): Promise<TinySamVariantDirs> {
  const out = { sam2: join(dir, "sam2-tiny"), hfSam: join(dir, "hf-sam-tiny"), allMasks: join(dir, "samexporter-all-masks-tiny") };
  await writeFolder(out.sam2, "sam2", tinySam2Encoder(), tinySam2Decoder());
  await writeFolder(out.hfSam, "hf-sam", tinyHfSamEncoder(), tinyHfSamDecoder());
  await writeFolder(out.allMasks, "samexporter", tinySamEncoder(), tinyAllMasksDecoder());
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write("usage: make-tiny-sam-variants <dir>\n");
    process.exit(2);
  }
  const out = await makeTinySamVariants(resolve(dir));
  process.stdout.write(`${out.sam2}\n${out.hfSam}\n${out.allMasks}\n`);
}
