/**
 * The SAM v1 ViT-B/L/H and transformers.js SAM stand-ins (benchmarks/standins/make-sam-vit-encoder.ts,
 * benchmarks/standins/make-hf-sam.ts) and the external-data writer of test/support/onnx/onnx-graph.ts: parameter counts of
 * the full-size graphs against a hand count (no weights written), and reduced-depth folders through
 * the real loader and adapters, the ViT-H one with every weight in its external data file.
 */
import assert from "node:assert/strict";
import { mkdir, readdir, readFile, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { after, describe, test } from "node:test";
import * as ort from "onnxruntime-node";
import onnxProto from "onnx-proto";
import { GraphBuilder, valueInfo, writeModel } from "./support/onnx/onnx-graph.js";
import { hfSamStats, makeHfSam } from "../benchmarks/standins/make-hf-sam.js";
import { makeSamVit, SAM_VIT_PUBLISHED, samVitEncoderStats, type SamVitVariant } from "../benchmarks/standins/make-sam-vit-encoder.js";
import { samDecoderStats } from "../benchmarks/standins/make-sam-decoder.js";
import type { RgbImage } from "../src/imaging/types.js";
import { loadSegmenter } from "../src/segmenters/segmenter.js";

const { onnx } = onnxProto;
const scratch = join(resolve(import.meta.dirname, ".."), ".cache", `test-sam-vit-${process.pid}`);
after(() => rm(scratch, { recursive: true, force: true }));

/** segment_anything's ImageEncoderViT parameters by hand: width, depth, heads, MLP width, global blocks. */
function handCount(dim: number, depth: number, heads: number, mlp: number, globals: number): number {
  const headDim = dim / heads;
  const patch = dim * 3 * 16 * 16 + dim;
  const pos = 64 * 64 * dim;
  const perBlock = 4 * dim + (dim * 3 * dim + 3 * dim) + (dim * dim + dim) + (dim * mlp + mlp) + (mlp * dim + dim);
  const rel = (depth - globals) * 2 * (2 * 14 - 1) * headDim + globals * 2 * (2 * 64 - 1) * headDim;
  const neck = 256 * dim + 2 * 256 + 256 * 256 * 9 + 2 * 256;
  return patch + pos + depth * perBlock + rel + neck;
}

/** A 640 x 427 gradient photo. */
function photo(): RgbImage {
  const width = 640;
  const height = 427;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set([(i % width) % 256, Math.floor(i / width) % 256, 128], i * 3);
  return { data, width, height };
}

async function segmentOnce(folder: string): Promise<void> {
  const s = await loadSegmenter(folder);
  try {
    const image = photo();
    const r = await s.segment(image, [
      { x0: 100, y0: 80, x1: 400, y1: 300 },
      { x0: 20, y0: 30, x1: 200, y1: 220 },
    ]);
    assert.equal(r.masks.length, 2);
    for (const m of r.masks) assert.deepEqual([m.width, m.height, m.data.length], [image.width, image.height, image.width * image.height]);
    assert.ok(r.scores.every(Number.isFinite), `scores ${r.scores.join(", ")}`);
  } finally {
    await s.close();
  }
}

describe("SAM ViT stand-ins", () => {
  test("full-size parameter counts match the hand count and the published sizes (counted, not written)", () => {
    const shapes: Record<SamVitVariant, [number, number, number]> = { vit_b: [768, 12, 12], vit_l: [1024, 24, 16], vit_h: [1280, 32, 16] };
    for (const [variant, [dim, depth, heads]] of Object.entries(shapes) as [SamVitVariant, [number, number, number]][]) {
      const { params } = samVitEncoderStats({ variant });
      assert.equal(params, handCount(dim, depth, heads, 4 * dim, 4), variant);
      const pub = SAM_VIT_PUBLISHED[variant];
      assert.ok(Math.abs(params - pub.quoted) / pub.quoted < 0.03, `${variant}: ${params} vs ~${pub.quoted}`);
      // The whole checkpoint: + segment_anything's prompt encoder (6,220) and mask decoder (4,058,340).
      assert.equal(params + 4_064_560, pub.checkpoint, variant);
      if (pub.fileBound !== null) assert.ok(params <= pub.fileBound && params > pub.fileBound * 0.995, `${variant}: ${params} vs the file's ${pub.fileBound}`);
    }
    // The published ViT-H external data file holds exactly its weights.
    assert.equal(samVitEncoderStats({ variant: "vit_h" }).params, SAM_VIT_PUBLISHED.vit_h.exact);
    // SlimSAM-77 (hidden 168, MLP 696, 12 heads of 14): the model card's 5.7 M.
    const slim = hfSamStats("slimsam-77-uniform");
    assert.equal(slim.encoderParams, handCount(168, 12, 12, 696, 4) + 256);
    assert.ok(Math.abs(slim.encoderParams - 5.7e6) / 5.7e6 < 0.03);
    assert.equal(hfSamStats("sam-vit-base-hf").encoderParams, handCount(768, 12, 12, 3072, 4) + 256);
  });

  test("writeModel: external data aligned or packed loads in onnxruntime and computes what the inline file does", async () => {
    const g = new GraphBuilder(3);
    const x = { name: "x", shape: [2, 300], dtype: "float32" } as const;
    const y = g.linear(g.gelu(g.linear(x, "a", 300, 500)), "b", 500, 7);
    g.node("Identity", [y], y.shape, {}, "y");
    await mkdir(join(scratch, "w"), { recursive: true });
    const info = { graphName: "t", producerName: "test", docString: "", inputs: [valueInfo("x", [2, 300])], outputs: [valueInfo("y", [2, 7])] };
    const inline = await writeModel(join(scratch, "w", "inline.onnx"), g, info);
    const aligned = await writeModel(join(scratch, "w", "aligned.onnx"), g, info, { externalData: { location: "aligned.bin", threshold: 100 } });
    const packed = await writeModel(join(scratch, "w", "packed.onnx"), g, info, { externalData: { location: "packed.bin", threshold: 1, align: 1 } });
    assert.equal(inline.dataFile, null);
    assert.equal(aligned.externalTensors, 3); // a.weight, a.bias, b.weight (b.bias is 28 bytes)
    assert.equal(packed.externalTensors, 4);
    assert.equal(packed.dataBytes, g.params * 4);
    assert.equal((await stat(join(scratch, "w", "aligned.bin"))).size, aligned.dataBytes);
    assert.deepEqual(
      (await readdir(join(scratch, "w"))).filter((f) => f.endsWith(".tmp")),
      [],
    );

    const model = onnx.ModelProto.decode(await readFile(join(scratch, "w", "aligned.onnx")));
    const ext = (model.graph?.initializer ?? []).filter((t) => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL);
    assert.deepEqual(
      ext.map((t) => t.name),
      ["a.weight", "a.bias", "b.weight"],
    );
    for (const t of ext) {
      const kv = Object.fromEntries((t.externalData ?? []).map((e) => [e.key, e.value]));
      assert.equal(kv.location, "aligned.bin");
      assert.equal(Number(kv.offset) % 4096, 0);
      assert.equal(
        Number(kv.length),
        (t.dims ?? []).reduce((a: number, b) => a * Number(b), 4),
      );
    }

    const feed = {
      x: new ort.Tensor(
        "float32",
        Float32Array.from({ length: 600 }, (_, i) => Math.sin(i)),
        [2, 300],
      ),
    };
    const outputs: Float32Array[] = [];
    for (const f of ["inline.onnx", "aligned.onnx", "packed.onnx"]) {
      const session = await ort.InferenceSession.create(join(scratch, "w", f));
      outputs.push((await session.run(feed)).y!.data as Float32Array);
      await session.release();
    }
    assert.deepEqual(outputs[1], outputs[0]);
    assert.deepEqual(outputs[2], outputs[0]);
  });

  test("a 1-block sam-vit-h folder, every weight in sam_vit_h_4b8939.encoder_data.bin, runs through the samexporter adapter", async () => {
    const built = await makeSamVit(scratch, "sam-vit-h", { depth: 1, externalDataThreshold: 1 });
    const dir = join(scratch, "sam-vit-h");
    assert.equal(built.dir, dir);
    const encoderParams = handCount(1280, 1, 16, 5120, 0);
    assert.equal(built.params, encoderParams + samDecoderStats(20230406).params);
    assert.equal((await stat(join(dir, "sam_vit_h_4b8939.encoder_data.bin"))).size, 4 * encoderParams);
    const model = onnx.ModelProto.decode(await readFile(join(dir, "sam_vit_h_4b8939.encoder.onnx")));
    const weights = (model.graph?.initializer ?? []).filter((t) => !t.name?.startsWith("const_"));
    assert.ok(weights.length > 0 && weights.every((t) => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL && !t.rawData?.length));
    const json = JSON.parse(await readFile(join(dir, "model.json"), "utf8")) as { format: string; files: Record<string, string> };
    assert.equal(json.format, "samexporter");
    assert.deepEqual(json.files, { encoder: "sam_vit_h_4b8939.encoder.onnx", decoder: "sam_vit_h_4b8939.decoder.onnx", "encoder-data": "sam_vit_h_4b8939.encoder_data.bin" });

    await segmentOnce(dir);

    // Built once: the same stamp is not rebuilt.
    const before = (await stat(join(dir, "sam_vit_h_4b8939.encoder_data.bin"))).mtimeMs;
    await makeSamVit(scratch, "sam-vit-h", { depth: 1, externalDataThreshold: 1 });
    assert.equal((await stat(join(dir, "sam_vit_h_4b8939.encoder_data.bin"))).mtimeMs, before);
  });

  test("a 1-block slimsam-77-uniform folder runs through the transformers.js SAM adapter", async () => {
    const built = await makeHfSam(scratch, "slimsam-77-uniform", { depth: 1 });
    const stats = hfSamStats("slimsam-77-uniform", { depth: 1 });
    assert.equal(stats.encoderParams, handCount(168, 1, 12, 696, 0) + 256);
    assert.equal(built.params, stats.encoderParams + stats.decoderParams);
    const decoder = await ort.InferenceSession.create(join(built.dir, "prompt_encoder_mask_decoder.onnx"));
    try {
      const labels = decoder.inputMetadata.find((m) => m.name === "input_labels");
      assert.ok(labels?.isTensor && labels.type === "int64");
      assert.deepEqual([...decoder.outputNames].sort(), ["iou_scores", "pred_masks"]);
    } finally {
      await decoder.release();
    }
    await segmentOnce(built.dir);
  });
});
