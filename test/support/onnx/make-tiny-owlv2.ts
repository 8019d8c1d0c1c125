/**
 * A TINY OWLv2 stand-in (format "owlv2") with the real model's input/output names, dtypes and
 * ranks, so tests exercise the real loader, tokenizer, pre- and post-processing:
 *
 *   input_ids int64 [Q, 16], pixel_values float32 [1, 3, 960, 960], attention_mask int64 [Q, 16]
 *   -> logits [1, 3600, Q], pred_boxes [1, 3600, 4]
 *
 * - brightness b of each of the 60 x 60 patches (16 x 16 pixels of the 960 input): the mean over
 *   channels and pixels of the normalised input (white ~2.05, CLIP grey padding ~0.19, black ~-1.79);
 * - m(q) = 1 when query q has the token "car</w>" (under its attention mask), else 0;
 * - logits = 8 (b - 1) m + 10 (m - 1): a query naming a car scores ~1 on a white patch and ~0
 *   elsewhere; any other query scores sigmoid(-10) everywhere;
 * - pred_boxes: each patch's own cell (cx, cy, 1/60, 1/60), patches in row-major order.
 *
 * The folder also gets a tiny CLIP tokenizer.json (tinyClipTokenizer()): "!" = 0, the letters
 * a-z (ids 1-26) and with "</w>" (27-52), "ca" = 53, "car</w>" = 54, <|startoftext|> = 55,
 * <|endoftext|> = 56. Run: `npx tsx test/support/onnx/make-tiny-owlv2.ts <dir>`.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import onnxProto, { type onnx as Onnx } from "onnx-proto";
import { encodeModel, Graph, valueInfo } from "./make-tiny-models.js";

const { onnx } = onnxProto;
export const TINY_CAR_ID = 54;
const GRID = 60;

export function tinyClipTokenizer(): object {
  const vocab: Record<string, number> = { "!": 0 };
  const letters = "abcdefghijklmnopqrstuvwxyz";
  [...letters].forEach((c, i) => {
    vocab[c] = 1 + i;
    vocab[`${c}</w>`] = 27 + i;
  });
  vocab.ca = 53;
  vocab["car</w>"] = TINY_CAR_ID;
  vocab["<|startoftext|>"] = 55;
  vocab["<|endoftext|>"] = 56;
  return {
    version: "1.0",
    added_tokens: [
      { id: 55, content: "<|startoftext|>", special: true },
      { id: 56, content: "<|endoftext|>", special: true },
    ],
    model: { type: "BPE", vocab, merges: ["c a", "ca r</w>"], end_of_word_suffix: "</w>", unk_token: "<|endoftext|>" },
  };
}

function int64Info(name: string, dims: (number | string)[]): Onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.INT64, shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) } } },
  };
}

export function tinyOwlv2(): Uint8Array {
  const g = new Graph();
  const gray = g.op("ReduceMean", ["pixel_values"], { axes: [1], keepdims: 1 });
  const pooled = g.op("AveragePool", [gray], { kernel_shape: [16, 16], strides: [16, 16] });
  const b = g.op("Reshape", [pooled, g.i64([1, GRID * GRID, 1])]);
  const isCar = g.op("Cast", [g.op("Equal", ["input_ids", g.i64([TINY_CAR_ID], [])])], { to: onnx.TensorProto.DataType.FLOAT });
  const mask = g.op("Cast", ["attention_mask"], { to: onnx.TensorProto.DataType.FLOAT });
  const m = g.op("Reshape", [g.op("ReduceMax", [g.op("Mul", [isCar, mask])], { axes: [1], keepdims: 0 }), g.i64([1, 1, -1])]);
  const bright = g.op("Mul", [g.op("Mul", [g.op("Sub", [b, g.f32([1], [])]), g.f32([8], [])]), m]);
  const off = g.op("Mul", [g.op("Sub", [m, g.f32([1], [])]), g.f32([10], [])]);
  g.op("Add", [bright, off], {}, "logits");
  const cells = new Float32Array(GRID * GRID * 4);
  for (let r = 0; r < GRID; r++) {
    for (let c = 0; c < GRID; c++) cells.set([(c + 0.5) / GRID, (r + 0.5) / GRID, 1 / GRID, 1 / GRID], (r * GRID + c) * 4);
  }
  g.op("Identity", [g.f32(cells, [1, GRID * GRID, 4])], {}, "pred_boxes");
  return encodeModel(
    g,
    "tiny_owlv2",
    [int64Info("input_ids", ["num_queries", 16]), valueInfo("pixel_values", [1, 3, 960, 960]), int64Info("attention_mask", ["num_queries", 16])],
    [valueInfo("logits", [1, GRID * GRID, "num_queries"]), valueInfo("pred_boxes", [1, GRID * GRID, 4])],
  );
}

/** Writes <dir>/owlv2-tiny/ (model.onnx, tokenizer.json, model.json); returns the folder. */
export async function makeTinyOwlv2(dir: string): Promise<string> {
  const folder = join(dir, "owlv2-tiny");
  await mkdir(folder, { recursive: true });
  await writeFile(join(folder, "model.onnx"), tinyOwlv2());
  await writeFile(join(folder, "tokenizer.json"), JSON.stringify(tinyClipTokenizer()));
  await writeFile(join(folder, "model.json"), JSON.stringify({ format: "owlv2", task: "detect", files: { model: "model.onnx", tokenizer: "tokenizer.json" } }, null, 2) + "\n");
  return folder;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write("usage: tsx test/support/onnx/make-tiny-owlv2.ts <dir>\n");
    process.exit(2);
  }
  process.stdout.write(`${await makeTinyOwlv2(resolve(dir))}\n`);
}
