/**
 * Tiny salient-object graphs (format "salient") with the real models' tensor names and shapes, for
 * tests and offline runs:
 *
 *   rmbg:     input  [1, 3, 1024, 1024] -> output       [1, 1, 1024, 1024], probabilities (BRIA RMBG-1.4's ONNX)
 *   birefnet: input_image [1, 3, 1024, 1024] -> output_image [1, 1, 1024, 1024], logits (BiRefNet exports)
 *
 * What they compute: the input is un-normalised back to 0-1 RGB with the variant's mean/std; the
 * "background colour" is the mean of the top row; each pixel's squared RGB distance d from it gives
 * the logit 200 * (d - 0.04) clipped to [-8, 8] (object where the colour differs by more than about
 * 0.2), averaged over a 9 x 9 window (a soft edge a few pixels wide at 1024 px); rmbg applies the
 * sigmoid, birefnet does not (its loader does).
 * So the mask follows whatever differs from the top row, with soft edges.
 *
 * Run: `npx tsx test/support/onnx/make-tiny-salient.ts <dir>` (writes <dir>/salient-rmbg and <dir>/salient-birefnet).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { encodeModel, GraphBuilder, valueInfo } from "./onnx-graph.js";

export type TinySalientVariant = "rmbg" | "birefnet";

const SIDE = 1024;

export const TINY_SALIENT = {
  rmbg: { input: "input", output: "output", mean: [0.5, 0.5, 0.5], std: [1, 1, 1], kind: "probability" },
  birefnet: { input: "input_image", output: "output_image", mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], kind: "logits" },
} as const;

export function tinySalient(variant: TinySalientVariant): Uint8Array {
  const v = TINY_SALIENT[variant];
  const g = new GraphBuilder(1);
  const x = { name: v.input, shape: [1, 3, SIDE, SIDE], dtype: "float32" as const };
  const rgb = g.binary("Add", g.binary("Mul", x, g.floats([...v.std], [1, 3, 1, 1])), g.floats([...v.mean], [1, 3, 1, 1]));
  const top = g.node("Slice", [rgb, g.ints([0]), g.ints([1]), g.ints([2])], [1, 3, 1, SIDE]);
  const bg = g.node("ReduceMean", [top], [1, 3, 1, 1], { axes: [2, 3], keepdims: 1 });
  const d = g.binary("Sub", rgb, bg);
  const dist = g.node("ReduceSum", [g.binary("Mul", d, d), g.ints([1])], [1, 1, SIDE, SIDE], { keepdims: 1 });
  const steep = g.binary("Mul", g.binary("Sub", dist, g.scalar(0.04)), g.scalar(200));
  const logit = g.node("Clip", [steep, g.scalar(-8), g.scalar(8)], steep.shape);
  const out = v.kind === "logits" ? v.output : undefined;
  const smooth = g.node("AveragePool", [logit], [1, 1, SIDE, SIDE], { kernel_shape: [9, 9], strides: [1, 1], pads: [4, 4, 4, 4], count_include_pad: 0 }, out);
  if (v.kind === "probability") g.node("Sigmoid", [smooth], smooth.shape, {}, v.output);
  return encodeModel(g, {
    graphName: `tiny_salient_${variant}`,
    producerName: "maskfleet test/support/onnx/make-tiny-salient.ts",
    docString: "test graph: soft mask of what differs in colour from the top row",
    inputs: [valueInfo(v.input, [1, 3, SIDE, SIDE])],
    outputs: [valueInfo(v.output, [1, 1, SIDE, SIDE])],
  });
}

/** Writes <dir>/salient-<variant>/ with model.onnx and model.json (format "salient" with its preprocess). */
export async function makeTinySalient(dir: string, variant: TinySalientVariant = "rmbg"): Promise<string> {
  const v = TINY_SALIENT[variant];
  const out = join(dir, `salient-${variant}`);
  await mkdir(out, { recursive: true });
  await writeFile(join(out, "model.onnx"), tinySalient(variant));
  const modelJson = {
    format: "salient",
    task: "salient",
    files: { model: "model.onnx" },
    preprocess: { size: [SIDE, SIDE], mean: v.mean, std: v.std, output: v.kind },
  };
  await writeFile(join(out, "model.json"), JSON.stringify(modelJson, null, 2) + "\n");
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write("usage: make-tiny-salient <dir>\n");
    process.exit(2);
  }
  for (const variant of ["rmbg", "birefnet"] as const) process.stdout.write(`${await makeTinySalient(resolve(dir), variant)}\n`);
}
