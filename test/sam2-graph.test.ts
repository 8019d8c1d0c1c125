/**
 * benchmarks/standins/make-sam2.ts: the full-size SAM 2.1 stand-ins have the published parameter counts (checked
 * against a hand count of the Hiera / FpnNeck / SAM heads modules, without writing any weights), and
 * a reduced trunk built through the same code runs end to end through the real sam2 adapter.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import onnxProto from "onnx-proto";
import { HIERA_CONFIGS, makeSam2, SAM2_PUBLISHED_PARAMS, SAM2_VARIANTS, sam2Stats, sam2VideoOnlyParams, type HieraConfig } from "../benchmarks/standins/make-sam2.js";
import { loadSegmenter } from "../src/segmenters/segmenter.js";
import { Sam2Segmenter } from "../src/segmenters/sam2.js";
import { scratchDir } from "./helpers.js";

const { onnx } = onnxProto;
const lin = (i: number, o: number) => i * o + o;

/** Hand count of the exported image encoder: Hiera trunk, FpnNeck, conv_s0 / conv_s1, no_mem_embed. */
function encoderParams(cfg: Pick<HieraConfig, "embedDim" | "stages" | "windowPosEmbedBkg" | "windowSpec">): number {
  const c = cfg.embedDim;
  let n = c * 3 * 49 + c + c * cfg.windowPosEmbedBkg[0] * cfg.windowPosEmbedBkg[1] + c * cfg.windowSpec[0]! ** 2;
  let dim = c;
  cfg.stages.forEach((blocks, stage) => {
    for (let b = 0; b < blocks; b++) {
      const out = stage > 0 && b === 0 ? 2 * dim : dim;
      n += 2 * dim + lin(dim, 3 * out) + lin(out, out) + 2 * out + lin(out, 4 * out) + lin(4 * out, out) + (out !== dim ? lin(dim, out) : 0);
      dim = out;
    }
  });
  for (let l = 0; l < 4; l++) n += lin(c * 2 ** l, 256);
  return n + lin(256, 32) + lin(256, 64) + 256;
}

/** Hand count of the exported prompt encoder + mask decoder (no conv_s0/s1, no object-score head). */
function decoderParams(): number {
  const prompt = 5 * 256 + (4 * 4 + 4) + 8 + (16 * 4 * 4 + 16) + 32 + lin(16, 256) + 256;
  const downAttn = 3 * lin(256, 128) + lin(128, 256);
  const layer = 4 * lin(256, 256) + 2 * downAttn + lin(256, 2048) + lin(2048, 256) + 4 * 512;
  const transformer = 2 * layer + downAttn + 512;
  const upscaling = 256 * 64 * 4 + 64 + 128 + 64 * 32 * 4 + 32;
  const heads = 4 * (2 * lin(256, 256) + lin(256, 32)) + 2 * lin(256, 256) + lin(256, 4);
  return prompt + 6 * 256 + transformer + upscaling + heads;
}

test("full-size SAM 2.1 graphs: hand-counted parameters, + the video-only modules = the published counts", () => {
  const stats = Object.fromEntries(SAM2_VARIANTS.map((v) => [v, sam2Stats(v)]));
  for (const v of SAM2_VARIANTS) {
    const s = stats[v]!;
    assert.equal(s.encoderParams, encoderParams(HIERA_CONFIGS[v]), `${v} encoder`);
    assert.equal(s.decoderParams, decoderParams(), `${v} decoder`);
    const total = s.encoderParams + s.decoderParams + sam2VideoOnlyParams();
    assert.ok(Math.abs(total / SAM2_PUBLISHED_PARAMS[v] - 1) < 0.005, `${v}: ${total} vs published ${SAM2_PUBLISHED_PARAMS[v]}`);
  }
  const tiny = stats.tiny!;
  // Hiera-T at 1024 x 1024: ~146 G multiply-adds (three 4096-token global attention blocks ~39 G of them); ~1.8 G per box in the decoder.
  assert.ok(tiny.encoderMacs > 140e9 && tiny.encoderMacs < 150e9, `tiny encoder MACs ${tiny.encoderMacs}`);
  assert.ok(tiny.decoderMacsPerBox > 1.7e9 && tiny.decoderMacsPerBox < 2e9, `decoder MACs ${tiny.decoderMacsPerBox}`);
  assert.ok(stats.large!.encoderMacs > 6 * tiny.encoderMacs);
});

test("a reduced Hiera (stages [1,1,2,1], width 16) runs end to end through the real sam2 adapter", async () => {
  const dir = await scratchDir("sam2-graph");
  const opts = { stages: [1, 1, 2, 1], globalAttBlocks: [3], embedDim: 16 };
  const built = await makeSam2(dir, "small", opts);
  assert.ok(built.built);
  assert.match(built.encoderFile, /sam2\.1-hiera-small\/sam2\.1_hiera_small\.encoder\.onnx$/);
  assert.equal(built.encoderParams, encoderParams({ ...HIERA_CONFIGS.small, ...opts }));
  assert.equal(built.params, built.encoderParams + decoderParams());

  // The weights in the file are the counted parameters (constants aside: index tensors, the dense PE).
  const model = onnx.ModelProto.decode(await readFile(built.encoderFile));
  const inFile = (model.graph?.initializer ?? []).filter((t) => !t.name?.startsWith("const_")).reduce((n, t) => n + (t.dims ?? []).reduce((a: number, b) => a * Number(b), 1), 0);
  assert.equal(inFile, built.encoderParams);
  assert.equal(Number(model.opsetImport[0]?.version), 17);

  // Same stamp: kept; another seed: rebuilt.
  assert.equal((await makeSam2(dir, "small", opts)).built, false);

  const seg = await loadSegmenter(built.dir, { download: false });
  try {
    assert.ok(seg instanceof Sam2Segmenter);
    const width = 320;
    const height = 240;
    const data = new Uint8Array(width * height * 3).map((_, i) => (i * 37) % 251);
    const boxes = [
      { x0: 20, y0: 30, x1: 200, y1: 180 },
      { x0: 150, y0: 60, x1: 300, y1: 230 },
    ];
    const r = await seg.segment({ data, width, height }, boxes);
    assert.equal(r.masks.length, 2);
    for (const m of r.masks) assert.deepEqual([m.width, m.height, m.data.length], [width, height, width * height]);
    // iou_prediction_head ends in a sigmoid.
    for (const s of r.scores) assert.ok(s > 0 && s < 1, `score ${s}`);
    assert.equal((seg as Sam2Segmenter).stats.encoderRuns, 1);
    assert.equal((seg as Sam2Segmenter).stats.decoderRuns, 1);
  } finally {
    await seg.close();
  }
  assert.equal((await makeSam2(dir, "small", { ...opts, seed: 5 })).built, true);
});
