/**
 * Writes TINY ONNX graphs (a few KB, opset 17) with exactly the input/output names, dtypes and
 * shapes of the real models, so tests and offline sample runs exercise the real loaders and the
 * real pre/post-processing. They compute simple, documented things (see each builder):
 *
 *   <dir>/sam-tiny/   encoder.onnx, decoder.onnx, model.json  (format "samexporter")
 *   <dir>/face-tiny/  model.onnx, model.json                  (format "ultraface")
 *
 * Run: `npx tsx test/support/onnx/make-tiny-models.ts <dir>` (prints the two folders), or import makeTinyModels.
 * These are test graphs, never a default: nothing in the manifest points at them.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import onnxProto, { type onnx as Onnx } from "onnx-proto";

const { onnx } = onnxProto;
type Dim = number | string;

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;
const A = onnx.AttributeProto.AttributeType;

/** Accumulates nodes and initializers; every op returns the name of its (first) output. */
export class Graph {
  readonly nodes: Onnx.INodeProto[] = [];
  readonly initializers: Onnx.ITensorProto[] = [];
  private n = 0;

  private fresh(prefix: string): string {
    return `${prefix}_${this.n++}`;
  }

  f32(values: number[] | Float32Array, dims: number[] = [values.length]): string {
    const name = this.fresh("c");
    this.initializers.push({ name, dataType: FLOAT, dims, floatData: Array.from(values) });
    return name;
  }

  i64(values: number[], dims: number[] = [values.length]): string {
    const name = this.fresh("c");
    this.initializers.push({ name, dataType: INT64, dims, int64Data: values });
    return name;
  }

  op(type: string, inputs: string[], attrs: Record<string, number | number[] | string> = {}, output?: string): string {
    const out = output ?? this.fresh(type.toLowerCase());
    const attribute: Onnx.IAttributeProto[] = Object.entries(attrs).map(([name, v]) => {
      if (typeof v === "string") return { name, type: A.STRING, s: new TextEncoder().encode(v) };
      if (Array.isArray(v)) return { name, type: A.INTS, ints: v };
      return Number.isInteger(v) ? { name, type: A.INT, i: v } : { name, type: A.FLOAT, f: v };
    });
    this.nodes.push({ opType: type, input: inputs, output: [out], name: this.fresh("n"), attribute });
    return out;
  }

  /** Split has several outputs. */
  split(input: string, parts: number, axis: number): string[] {
    const outs = Array.from({ length: parts }, () => this.fresh("split"));
    this.nodes.push({ opType: "Split", input: [input], output: outs, name: this.fresh("n"), attribute: [{ name: "axis", type: A.INT, i: axis }] });
    return outs;
  }
}

export function valueInfo(name: string, dims: Dim[]): Onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) } } },
  };
}

export function encodeModel(g: Graph, name: string, inputs: Onnx.IValueInfoProto[], outputs: Onnx.IValueInfoProto[]): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: "maskfleet test/support/onnx/make-tiny-models.ts",
    opsetImport: [{ domain: "", version: 17 }],
    graph: { name, node: g.nodes, initializer: g.initializers, input: inputs, output: outputs },
  });
  return onnx.ModelProto.encode(model).finish();
}

export interface TinySamOptions {
  /**
   * "hwc" (default): like samexporter's `--use-preprocess` encoders that are published: input_image
   * float32 [image_height, image_width, 3], RGB 0-255 already resized to longest side 1024; the
   * graph normalises and pads. "nchw": like an export without preprocessing: input_image
   * [1, 3, 1024, 1024], normalised and padded by the caller.
   */
  encoderLayout?: "hwc" | "nchw";
  /**
   * false (default): point_coords [1, num_points, 2] as Meta's export (only num_points is dynamic,
   * so one box per decoder run). true: a dynamic batch dimension, to test batched decoding.
   */
  batchedDecoder?: boolean;
}

/**
 * Tiny SAM encoder: (normalise with SAM's mean/std and zero-pad to 1024 x 1024, when HWC) then
 * AveragePool 16 x 16 / 16 and a 1 x 1 Conv whose weights are all 1/3: every one of the 256
 * channels of image_embeddings [1, 256, 64, 64] is the mean of the three normalised channels over
 * a 16 x 16 block. So mean(image_embeddings) = mean(normalised padded CHW tensor).
 */
export function tinySamEncoder(layout: "hwc" | "nchw" = "hwc"): Uint8Array {
  const g = new Graph();
  let x4: string;
  let input: Onnx.IValueInfoProto;
  if (layout === "hwc") {
    input = valueInfo("input_image", ["image_height", "image_width", 3]);
    const nrm = g.op("Div", [g.op("Sub", ["input_image", g.f32([123.675, 116.28, 103.53])]), g.f32([58.395, 57.12, 57.375])]);
    const chw = g.op("Transpose", [nrm], { perm: [2, 0, 1] });
    const padEnd = g.op("Sub", [g.i64([3, 1024, 1024]), g.op("Shape", [chw])]);
    const pads = g.op("Concat", [g.i64([0, 0, 0]), padEnd], { axis: 0 });
    x4 = g.op("Unsqueeze", [g.op("Pad", [chw, pads]), g.i64([0])]);
  } else {
    input = valueInfo("input_image", [1, 3, 1024, 1024]);
    x4 = "input_image";
  }
  const pooled = g.op("AveragePool", [x4], { kernel_shape: [16, 16], strides: [16, 16] });
  g.op("Conv", [pooled, g.f32(new Float32Array(256 * 3).fill(1 / 3), [256, 3, 1, 1]), g.f32(new Float32Array(256))], {}, "image_embeddings");
  return encodeModel(g, "tiny_sam_encoder", [input], [valueInfo("image_embeddings", [1, 256, 64, 64])]);
}

/**
 * Tiny SAM decoder with the inputs/outputs of Meta's SamOnnxModel export (return_single_mask).
 *
 * - low_res_masks [B, 1, 256, 256]: for each prompt, the box corners are the points labelled 2
 *   (top-left) and 3 (bottom-right), divided by 4 into the 256 x 256 grid; the logit of cell
 *   (i, j) is min(x - x0, x1 - x, y - y0, y1 - y) at the cell centre (j + 0.5, i + 0.5): positive
 *   exactly inside the box, and linear, so bilinear upscaling keeps the edge where the box is.
 *   Plus has_mask_input * mean(mask_input) (0 when no mask is given).
 * - iou_predictions [B, 1]: sigmoid(mean(image_embeddings)); it depends on the encoder output.
 * - masks [B, 1, H, W]: Meta's mask_postprocessing in ONNX: Resize to 1024 x 1024 (linear,
 *   half-pixel), crop to the resized size floor(orig * 1024 / max(orig) + 0.5), Resize to orig_im_size.
 */
export function tinySamDecoder(batched = false): Uint8Array {
  const g = new Graph();
  const B: Dim = batched ? "batch" : 1;
  const inputs = [
    valueInfo("image_embeddings", [1, 256, 64, 64]),
    valueInfo("point_coords", [B, "num_points", 2]),
    valueInfo("point_labels", [B, "num_points"]),
    valueInfo("mask_input", [1, 1, 256, 256]),
    valueInfo("has_mask_input", [1]),
    valueInfo("orig_im_size", [2]),
  ];
  const coord = (axis: number) => g.op("Gather", ["point_coords", g.i64([axis], [])], { axis: 2 }); // [B, N]
  const isLabel = (label: number) => g.op("Cast", [g.op("Equal", ["point_labels", g.f32([label], [])])], { to: FLOAT });
  // Corner of label `label` along `axis`, in the 256 grid, shaped [B, 1, 1, 1].
  const corner = (axis: number, label: number) => {
    const sum = g.op("ReduceSum", [g.op("Mul", [coord(axis), isLabel(label)]), g.i64([1])], { keepdims: 1 });
    return g.op("Unsqueeze", [g.op("Mul", [sum, g.f32([0.25], [])]), g.i64([2, 3])]);
  };
  const centres = Array.from({ length: 256 }, (_, i) => i + 0.5);
  const gx = g.f32(centres, [1, 1, 1, 256]);
  const gy = g.f32(centres, [1, 1, 256, 1]);
  const geo = g.op("Min", [g.op("Sub", [gx, corner(0, 2)]), g.op("Sub", [corner(0, 3), gx]), g.op("Sub", [gy, corner(1, 2)]), g.op("Sub", [corner(1, 3), gy])]);
  const maskTerm = g.op("Mul", ["has_mask_input", g.op("ReduceMean", ["mask_input"], { keepdims: 1 })]);
  const low = g.op("Add", [geo, maskTerm], {}, "low_res_masks");

  const e = g.op("Reshape", [g.op("ReduceMean", ["image_embeddings"], { keepdims: 1 }), g.i64([1, 1])]);
  const batchOnes = g.op("Slice", [g.op("Shape", [low]), g.i64([0]), g.i64([2])]); // [B, 1]
  g.op("Expand", [g.op("Sigmoid", [e]), batchOnes], {}, "iou_predictions");

  const resize = (x: string, sizes: string, out?: string) => g.op("Resize", [x, "", "", sizes], { mode: "linear", coordinate_transformation_mode: "half_pixel" }, out);
  const up = resize(low, g.op("Concat", [batchOnes, g.i64([1024, 1024])], { axis: 0 }));
  const scale = g.op("Div", [g.f32([1024], []), g.op("ReduceMax", ["orig_im_size"], { keepdims: 0 })]);
  const prepadded = g.op("Cast", [g.op("Floor", [g.op("Add", [g.op("Mul", ["orig_im_size", scale]), g.f32([0.5], [])])])], { to: INT64 });
  const cropped = g.op("Slice", [up, g.i64([0, 0]), prepadded, g.i64([2, 3])]);
  const origSize = g.op("Cast", ["orig_im_size"], { to: INT64 });
  resize(cropped, g.op("Concat", [batchOnes, origSize], { axis: 0 }), "masks");

  const outputs = [valueInfo("masks", [B, 1, "height", "width"]), valueInfo("iou_predictions", [B, 1]), valueInfo("low_res_masks", [B, 1, 256, 256])];
  return encodeModel(g, "tiny_sam_decoder", inputs, outputs);
}

/**
 * Skin-colour thresholds of the tiny face detector, on UltraFace's normalised input (px - 127) / 128:
 * a pixel is "skin" when R > 140, 20 < R - G < 75 and R - B > 35 (0-255 values). This keeps the
 * astronaut's face and leaves out her orange suit, the red and white flag and the grey backdrop.
 */
const SKIN = { rMin: 13 / 128, rgMin: 20 / 128, rgMax: 75 / 128, rbMin: 35 / 128 };

/**
 * Tiny UltraFace (version-RFB-320 I/O): input [1, 3, 240, 320], scores [1, 4420, 2], boxes [1, 4420, 4].
 *
 * - Each pixel is classified skin / not skin (SKIN above).
 * - scores: the 4420 candidates are laid out like UltraFace's priors: 40x30 cells x 3 anchors,
 *   20x15 x 2, 10x8 x 2, 5x4 x 3 (cells of 8, 16, 32, 64 px). A candidate's face probability is
 *   the fraction of skin pixels in its cell; scores[..., 0] = 1 - that.
 * - boxes: every candidate carries the same box: the bounding box of the 8 x 8 cells that are
 *   more than half skin, grown by 5 % of its size on each side (so it can cross the image edge),
 *   as normalised corners [x0, y0, x1, y1].
 *
 * So one skin-coloured region gives one box around it after NMS, and an image without skin
 * colour gives none. (Two separate faces would share one box: this is a test graph.)
 */
export function tinyUltraFace(): Uint8Array {
  const g = new Graph();
  const [r, gr, b] = g.split("input", 3, 1) as [string, string, string];
  const rg = g.op("Sub", [r, gr]);
  const s = g.op("Min", [
    g.op("Sub", [r, g.f32([SKIN.rMin], [])]),
    g.op("Sub", [rg, g.f32([SKIN.rgMin], [])]),
    g.op("Sub", [g.f32([SKIN.rgMax], []), rg]),
    g.op("Sub", [g.op("Sub", [r, b]), g.f32([SKIN.rbMin], [])]),
  ]);
  const skin = g.op("Cast", [g.op("Greater", [s, g.f32([0], [])])], { to: FLOAT }); // [1, 1, 240, 320]

  const levels = [
    { cell: 8, anchors: 3, cells: 40 * 30 },
    { cell: 16, anchors: 2, cells: 20 * 15 },
    { cell: 32, anchors: 2, cells: 10 * 8 },
    { cell: 64, anchors: 3, cells: 5 * 4 },
  ];
  const fractions: string[] = [];
  const perLevel = levels.map(({ cell, anchors, cells }) => {
    const frac = g.op("AveragePool", [skin], { kernel_shape: [cell, cell], strides: [cell, cell], ceil_mode: 1 });
    fractions.push(frac);
    const col = g.op("Reshape", [frac, g.i64([1, cells, 1])]);
    return g.op("Reshape", [g.op("Expand", [col, g.i64([1, cells, anchors])]), g.i64([1, cells * anchors])]);
  });
  const p = g.op("Unsqueeze", [g.op("Concat", perLevel, { axis: 1 }), g.i64([2])]); // [1, 4420, 1]
  g.op("Concat", [g.op("Sub", [g.f32([1], []), p]), p], { axis: 2 }, "scores");

  // Bounding box of the 8-px cells that are mostly skin (30 rows x 40 columns).
  const cellSkin = g.op("Cast", [g.op("Greater", [fractions[0] as string, g.f32([0.5], [])])], { to: FLOAT });
  const BIG = 1e4;
  const extent = (reduceAxis: number, n: number) => {
    const any = g.op("Reshape", [g.op("ReduceMax", [cellSkin], { axes: [reduceAxis], keepdims: 0 }), g.i64([n])]);
    const penalty = g.op("Mul", [g.op("Sub", [g.f32([1], []), any]), g.f32([BIG], [])]);
    const idx = Array.from({ length: n }, (_, i) => i);
    const lo = g.op("ReduceMin", [g.op("Add", [g.f32(idx), penalty])], { keepdims: 1 });
    const hi = g.op("ReduceMax", [g.op("Sub", [g.f32(idx.map((i) => i + 1)), penalty])], { keepdims: 1 });
    const inv = g.f32([1 / n], []);
    return [g.op("Mul", [lo, inv]), g.op("Mul", [hi, inv])] as const; // normalised [1] each
  };
  const [y0, y1] = extent(3, 30);
  const [x0, x1] = extent(2, 40);
  const grow = (lo: string, hi: string) => g.op("Mul", [g.op("Sub", [hi, lo]), g.f32([0.05], [])]);
  const mx = grow(x0, x1);
  const my = grow(y0, y1);
  const box = g.op("Concat", [g.op("Sub", [x0, mx]), g.op("Sub", [y0, my]), g.op("Add", [x1, mx]), g.op("Add", [y1, my])], { axis: 0 });
  g.op("Expand", [g.op("Reshape", [box, g.i64([1, 1, 4])]), g.i64([1, 4420, 4])], {}, "boxes");

  return encodeModel(g, "tiny_ultraface", [valueInfo("input", [1, 3, 240, 320])], [valueInfo("scores", [1, 4420, 2]), valueInfo("boxes", [1, 4420, 4])]);
}

export interface TinyModelDirs {
  sam: string;
  face: string;
}

/** Writes sam-tiny/ and face-tiny/ under `dir` (model.json + .onnx files, loadable by path). */
export async function makeTinyModels(dir: string, opts: TinySamOptions = {}): Promise<TinyModelDirs> {
  const sam = join(dir, "sam-tiny");
  const face = join(dir, "face-tiny");
  await mkdir(sam, { recursive: true });
  await mkdir(face, { recursive: true });
  await writeFile(join(sam, "encoder.onnx"), tinySamEncoder(opts.encoderLayout ?? "hwc"));
  await writeFile(join(sam, "decoder.onnx"), tinySamDecoder(opts.batchedDecoder ?? false));
  await writeFile(join(sam, "model.json"), JSON.stringify({ format: "samexporter", task: "segment", files: { encoder: "encoder.onnx", decoder: "decoder.onnx" } }, null, 2) + "\n");
  await writeFile(join(face, "model.onnx"), tinyUltraFace());
  await writeFile(join(face, "model.json"), JSON.stringify({ format: "ultraface", task: "face-detect", files: { model: "model.onnx" } }, null, 2) + "\n");
  return { sam, face };
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write("usage: make-tiny-models <dir>\n");
    process.exit(2);
  }
  const out = await makeTinyModels(resolve(dir));
  process.stdout.write(`${out.sam}\n${out.face}\n`);
}
