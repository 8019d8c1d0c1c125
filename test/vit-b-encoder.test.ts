import assert from "node:assert/strict";
import { readFile, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { after, describe, test } from "node:test";
import * as ort from "onnxruntime-node";
import onnxProto from "onnx-proto";
import {
  countVitBEncoderParams,
  encodeVitBEncoder,
  ENCODER_INPUT,
  ENCODER_OUTPUT,
  makeVitBEncoder,
  randomEncoderInput,
  SAM_VIT_B_ENCODER_PARAMS,
  vitBEncoderStats,
  type VitBEncoderOptions,
} from "../benchmarks/standins/make-sam-vit-encoder.js";

const { onnx } = onnxProto;
const scratch = join(resolve(import.meta.dirname, ".."), ".cache", `test-vit-b-${process.pid}`);
after(() => rm(scratch, { recursive: true, force: true }));

/** Closed-form parameter count of segment_anything's ImageEncoderViT (vit_b numbers), independent of the graph. */
function closedFormParams(depth: number, globalBlocks: number): number {
  const dim = 768;
  const hidden = 4 * dim;
  const headDim = 64;
  const patch = dim * 3 * 16 * 16 + dim;
  const pos = 64 * 64 * dim;
  const perBlock = 2 * 2 * dim + (dim * 3 * dim + 3 * dim) + (dim * dim + dim) + (dim * hidden + hidden) + (hidden * dim + dim);
  const relWindow = 2 * (2 * 14 - 1) * headDim;
  const relGlobal = 2 * (2 * 64 - 1) * headDim;
  const neck = 256 * dim + 2 * 256 + 256 * 256 * 9 + 2 * 256;
  return patch + pos + depth * perBlock + (depth - globalBlocks) * relWindow + globalBlocks * relGlobal + neck;
}

async function runOnce(file: string, layout: "hwc" | "nchw"): Promise<ort.Tensor> {
  const session = await ort.InferenceSession.create(file, { graphOptimizationLevel: "all" });
  try {
    assert.deepEqual(session.inputNames, [ENCODER_INPUT.name]);
    assert.deepEqual(session.outputNames, [ENCODER_OUTPUT.name]);
    const { data, dims } = randomEncoderInput(layout);
    const out = (await session.run({ [ENCODER_INPUT.name]: new ort.Tensor("float32", data, dims) }))[ENCODER_OUTPUT.name];
    assert.ok(out);
    return out;
  } finally {
    await session.release();
  }
}

function assertEmbeddings(out: ort.Tensor): void {
  assert.deepEqual(out.dims, [1, 256, 64, 64]);
  assert.equal(out.type, "float32");
  const values = out.data as Float32Array;
  assert.ok(values.every(Number.isFinite), "all embeddings finite");
  // The neck ends in LayerNorm2d with weight 1, bias 0: each pixel's 256 channels have mean 0, variance ~1.
  let s = 0;
  let sq = 0;
  for (let c = 0; c < 256; c++) {
    const v = values[c * 64 * 64 + 100]!;
    s += v;
    sq += v * v;
  }
  assert.ok(Math.abs(s / 256) < 1e-3, `channel mean ${s / 256}`);
  assert.ok(Math.abs(sq / 256 - 1) < 0.01, `channel variance ${sq / 256}`);
}

describe("SAM ViT-B random encoder", () => {
  test("the full vit_b config has SAM ViT-B's parameter count and cost (counted, not written)", () => {
    const stats = vitBEncoderStats();
    assert.equal(countVitBEncoderParams(), stats.params);
    assert.ok(Math.abs(stats.params - 89.7e6) / 89.7e6 < 0.03, `params ${stats.params}`);
    assert.equal(stats.params, closedFormParams(12, 4));
    assert.equal(stats.params, SAM_VIT_B_ENCODER_PARAMS);
    // ~486 G multiply-adds per 1024 x 1024 image: the MLPs, qkv/proj, window and global attention, neck.
    assert.ok(stats.gflop > 950 && stats.gflop < 1000, `GFLOP ${stats.gflop}`);
  });

  test("a 2-block build (one window, one global block) runs in onnxruntime with the adapter's I/O", async () => {
    const opts: VitBEncoderOptions = { depth: 2, globalAttnIndexes: [1] };
    const file = await makeVitBEncoder(join(scratch, "d2"), opts);
    assert.equal(file, join(scratch, "d2", "sam-vit-b-random", "encoder.onnx"));

    const model = onnx.ModelProto.decode(await readFile(file));
    assert.equal(Number(model.opsetImport[0]?.version), 17);
    const input = model.graph?.input?.[0];
    assert.equal(input?.name, "input_image");
    assert.deepEqual(
      input?.type?.tensorType?.shape?.dim?.map((d) => d.dimParam || Number(d.dimValue)),
      ["image_height", "image_width", 3],
    );
    const weights = (model.graph?.initializer ?? []).filter((t) => !t.name?.startsWith("const_"));
    const inFile = weights.reduce((n, t) => n + (t.dims ?? []).reduce((a: number, b) => a * Number(b), 1), 0);
    assert.equal(inFile, countVitBEncoderParams(opts));
    assert.equal(inFile, closedFormParams(2, 1));

    assertEmbeddings(await runOnce(file, "hwc"));
  });

  test("weights are seeded: same seed same bytes, another seed other bytes; NCHW layout runs too", async () => {
    const a = encodeVitBEncoder({ depth: 0, encoderLayout: "nchw" });
    const b = encodeVitBEncoder({ depth: 0, encoderLayout: "nchw" });
    const c = encodeVitBEncoder({ depth: 0, encoderLayout: "nchw", seed: 1 });
    assert.ok(Buffer.from(a).equals(Buffer.from(b)));
    assert.ok(!Buffer.from(a).equals(Buffer.from(c)));

    const file = await makeVitBEncoder(join(scratch, "d0"), { depth: 0, encoderLayout: "nchw" });
    assertEmbeddings(await runOnce(file, "nchw"));
  });
});
