/**
 * The random-weight detector graphs: benchmarks/standins/make-owlv2.ts (OWLv2 base patch16 ensemble; a reduced
 * build runs through the real OWLv2 adapter) and benchmarks/standins/make-ultraface.ts (UltraFace RFB-320 at
 * full size through the real face-detector loader). Parameter and multiply-add counts are checked
 * against hand counts written here, independent of the builders.
 */
import assert from "node:assert/strict";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import * as ort from "onnxruntime-node";
import onnxProto from "onnx-proto";
import { ClipTokenizer } from "../src/detectors/clip-tokenizer.js";
import { loadFaceDetector, loadTextDetectionModel } from "../src/detectors/detector.js";
import { makeOwlv2, owlv2Config, owlv2ParamCount, owlv2Stats, OWLV2_PUBLISHED, randomImage, type Owlv2Options } from "../benchmarks/standins/make-owlv2.js";
import { makeUltraFace, ULTRAFACE_FILE, ultraFaceStats } from "../benchmarks/standins/make-ultraface.js";
import { scratchDir } from "./helpers.js";

const { onnx } = onnxProto;

let scratch: string;
before(async () => {
  scratch = await scratchDir("detectors-graph");
});

/** Learned weights in an .onnx file (initializers other than the builder's const_ tensors). */
async function fileParams(file: string): Promise<{ params: number; inputs: string[]; outputs: string[] }> {
  const model = onnx.ModelProto.decode(await readFile(file));
  const weights = (model.graph?.initializer ?? []).filter((t) => !t.name?.startsWith("const_"));
  return {
    params: weights.reduce((n, t) => n + (t.dims ?? []).reduce((a: number, b) => a * Number(b), 1), 0),
    inputs: (model.graph?.input ?? []).map((i) => i.name ?? ""),
    outputs: (model.graph?.output ?? []).map((o) => o.name ?? ""),
  };
}

describe("OWLv2 base patch16 ensemble (random weights)", () => {
  it("the full config has the export's parameter count and the hand-counted multiply-adds", () => {
    const s = owlv2Stats();
    // Hand count: vision 88,413,696 + text 63,134,720 + text_projection 262,144 + class head 395,266
    // + box head 1,184,260 + layer_norm 1,536.
    assert.equal(s.params, 88_413_696 + 63_134_720 + 262_144 + 395_266 + 1_184_260 + 1_536);
    assert.equal(s.params, OWLV2_PUBLISHED.exportParams);
    assert.equal(s.params, owlv2ParamCount(owlv2Config()));
    assert.ok(Math.abs(s.params - OWLV2_PUBLISHED.torchParams) / OWLV2_PUBLISHED.torchParams < 0.03);

    const T = 3601; // tokens
    const P = 3600; // patches
    const visionLayer = 4 * T * 768 * 768 + 2 * T * T * 768 + 2 * T * 768 * 3072;
    const image = P * 768 * 3 * 16 * 16 + 12 * visionLayer + (2 * P * 768 * 768 + P * 768 * 4) + P * 768 * 512 + 2 * P * 768;
    const textLayer = 4 * 16 * 512 * 512 + 2 * 16 * 16 * 512 + 2 * 16 * 512 * 2048;
    const query = 12 * textLayer + 512 * 512 + P * 512;
    assert.equal(s.imageMacs, image);
    assert.equal(s.queryMacs, query);
    assert.equal(s.macs, image + query);
  });

  it("a reduced build (1 + 1 layers, width 32, 64 x 64) runs through loadTextDetectionModel with 1 and 3 queries", async () => {
    const opts: Owlv2Options = { imageSize: 64, visionLayers: 1, visionWidth: 32, visionHeads: 2, visionMlp: 64, textLayers: 1, textWidth: 32, textHeads: 2, textMlp: 64 };
    const built = await makeOwlv2(scratch, "base-patch16-ensemble", opts);
    assert.equal(built.dir, join(scratch, "owlv2-base-patch16-ensemble"));
    const inFile = await fileParams(join(built.dir, "model.onnx"));
    // By hand: vision 3*256*32 + 32 + 17*32 + 64 + layer(32, 64) + 64, text 49408*32 + 16*32 + layer(32, 64) + 64 + 32*32,
    // heads 64 + (32*32 + 32) + 2*33 + 2*(32*32 + 32) + 132; layer(32, 64) = 4*1056 + 128 + 2112 + 2080 = 8544.
    const layer = 4 * (32 * 32 + 32) + 4 * 32 + (32 * 64 + 64) + (64 * 32 + 32);
    const hand = 3 * 256 * 32 + 32 + 17 * 32 + 64 + layer + 64 + (49408 * 32 + 16 * 32 + layer + 64 + 32 * 32) + (64 + 1056 + 66 + 2 * 1056 + 132);
    assert.equal(inFile.params, hand);
    assert.equal(built.params, hand);
    assert.deepEqual(inFile.inputs, ["input_ids", "pixel_values", "attention_mask"]);
    assert.deepEqual(inFile.outputs, ["logits", "pred_boxes", "text_embeds", "image_embeds"]);

    const tokJson = JSON.parse(await readFile(join(built.dir, "tokenizer.json"), "utf8")) as { model: { vocab: Record<string, number>; merges: string[] } };
    assert.equal(Object.keys(tokJson.model.vocab).length, 49408);
    assert.equal(tokJson.model.merges.length, 49408 - 512 - 2);
    const tok = await ClipTokenizer.load(join(built.dir, "tokenizer.json"));
    assert.equal(tok.bosId, 49406);
    assert.equal(tok.eosId, 49407);
    assert.equal(tok.padId, 0);

    const model = await loadTextDetectionModel(built.dir);
    try {
      assert.equal(model.size, 64);
      assert.equal(model.textLength, 16);
      const image = randomImage(120, 80);
      for (const queries of [["a photo of a car"], ["a photo of a car", "a photo of a red shoe", "a photo of a traffic light"]]) {
        const out = await model.run(image, queries);
        assert.equal(out.patches, 16);
        assert.equal(out.scores.length, 16 * queries.length);
        assert.equal(out.boxes.length, 16 * 4);
        assert.ok(
          out.scores.every((v) => v > 0 && v < 1),
          "sigmoid scores strictly inside 0-1",
        );
        assert.ok(out.boxes.every(Number.isFinite));
      }
      const boxes = await model.detector("car", { scoreThreshold: 0, maxObjects: 5 }).detect(image);
      assert.ok(boxes.length > 0 && boxes.length <= 5);
      for (const b of boxes) assert.ok(b.x0 < b.x1 && b.y0 < b.y1 && b.x1 <= 120 && b.y1 <= 80 && b.label === "car");
    } finally {
      await model.close();
    }

    // The same build again is kept; another seed is written anew.
    const mtime = (await stat(join(built.dir, "model.onnx"))).mtimeMs;
    await makeOwlv2(scratch, "base-patch16-ensemble", opts);
    assert.equal((await stat(join(built.dir, "model.onnx"))).mtimeMs, mtime);
    await makeOwlv2(scratch, "base-patch16-ensemble", { ...opts, seed: 1 });
    assert.notEqual((await stat(join(built.dir, "model.onnx"))).mtimeMs, mtime);
  });
});

/** UltraFace RFB-320 learned parameters with every BatchNorm folded into a conv bias, by hand. */
function ultraFaceHandCount(): number {
  const conv = (cin: number, cout: number, k: number, groups = 1) => cout * (cin / groups) * k * k + cout;
  const dw = (cin: number, cout: number) => conv(cin, cin, 3, cin) + conv(cin, cout, 1);
  const sep = (cin: number, cout: number) => conv(cin, cin, 3, cin) + conv(cin, cout, 1);
  const branch = conv(64, 8, 1) + conv(8, 16, 3) + conv(16, 16, 3);
  const rfb = 2 * branch + (conv(64, 8, 1) + conv(8, 12, 3) + conv(12, 16, 3) + conv(16, 16, 3)) + conv(48, 64, 1) + conv(64, 64, 1);
  const backbone = conv(3, 16, 3) + dw(16, 32) + 2 * dw(32, 32) + dw(32, 64) + 2 * dw(64, 64) + rfb + dw(64, 128) + 2 * dw(128, 128) + dw(128, 256) + dw(256, 256);
  const extras = conv(256, 64, 1) + sep(64, 256);
  const regression = sep(64, 12) + sep(128, 8) + sep(256, 8) + conv(256, 12, 3);
  const classification = sep(64, 6) + sep(128, 4) + sep(256, 4) + conv(256, 6, 3);
  return backbone + extras + regression + classification;
}

describe("UltraFace version-RFB-320 (random weights, full size)", () => {
  it("has the hand-counted parameters, ~0.2 GFLOP, and runs through loadFaceDetector", async () => {
    const built = await makeUltraFace(scratch, "rfb-320");
    assert.equal(built.dir, join(scratch, "ultraface-rfb-320"));
    assert.equal(ultraFaceHandCount(), 273_888);
    assert.equal(built.params, 273_888);
    const file = join(built.dir, ULTRAFACE_FILE);
    assert.equal((await fileParams(file)).params, 273_888);
    // The repository's README: 90-109 M multiply-adds at 320 x 240; Open Model Zoo: 0.2106 GFLOPs.
    assert.ok(built.macs > 95e6 && built.macs < 110e6, `macs ${built.macs}`);
    assert.equal(ultraFaceStats().anchors, 4420);
    const size = (await stat(file)).size;
    assert.ok(size > 1.1e6 && size < 1.3e6, `file ${size} bytes`);

    const session = await ort.InferenceSession.create(file);
    try {
      const input = new Float32Array(3 * 240 * 320).map((_, i) => ((i * 7919) % 255) / 128 - 1);
      const out = await session.run({ input: new ort.Tensor("float32", input, [1, 3, 240, 320]) });
      assert.deepEqual(out.scores?.dims, [1, 4420, 2]);
      assert.deepEqual(out.boxes?.dims, [1, 4420, 4]);
      const s = out.scores!.data as Float32Array;
      const b = out.boxes!.data as Float32Array;
      for (let i = 0; i < 4420; i++) {
        assert.ok(Math.abs(s[2 * i]! + s[2 * i + 1]! - 1) < 1e-5, "softmax over the two classes");
        assert.ok(b[4 * i]! < b[4 * i + 2]! && b[4 * i + 1]! < b[4 * i + 3]!, "corners decoded from the priors");
      }
      // The first prior (cell 0, 0 of the 40 x 30 map, min box 10): centre (0.5/40, 0.5/30); random offsets are small.
      assert.ok(Math.abs((b[0]! + b[2]!) / 2 - 0.5 / 40) < 0.01);
    } finally {
      await session.release();
    }

    const detector = await loadFaceDetector(built.dir, { scoreThreshold: 0.5 });
    try {
      const image = randomImage(200, 150);
      const faces = await detector.detect(image);
      for (const f of faces) assert.ok(f.x0 < f.x1 && f.y0 < f.y1 && f.x1 <= 200 && f.y1 <= 150 && f.label === "face");
    } finally {
      await detector.close();
    }
  });
});
