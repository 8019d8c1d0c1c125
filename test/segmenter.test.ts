/**
 * The SAM segmenter through the real loader (resolveModel on a local folder -> samexporter adapter)
 * on the tiny graphs of test/support/onnx/make-tiny-models.ts, whose decoder's logits are positive exactly
 * inside the prompted box and whose IoU score is sigmoid(mean(image embedding)).
 */
import assert from "node:assert/strict";
import { cp, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import sharp from "sharp";
import { ConfigError, InputError, ModelError } from "../src/runtime/errors.js";
import { createSession, Tensor } from "../src/runtime/onnx.js";
import type { Box, Mask, RgbImage } from "../src/imaging/types.js";
import { makeTinyModels } from "./support/onnx/make-tiny-models.js";
import { normalizePadChw, resizeLongestSide, samResizeShape, scaleBox, upscaleMask } from "../src/segmenters/sam-processing.js";
import { SamexporterSegmenter } from "../src/segmenters/samexporter.js";
import { loadSegmenter, type Segmenter } from "../src/segmenters/segmenter.js";
import { repoRoot, scratchDir, tinyModels } from "./helpers.js";

let image: RgbImage;
let sam: string;
let face: string;
const open: Segmenter[] = [];

before(async () => {
  const { data, info } = await sharp(join(repoRoot, "samples", "photos", "rocket.jpg"))
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  image = { data: new Uint8Array(data), width: info.width, height: info.height }; // 640 x 427
  ({ sam, face } = await tinyModels());
});
after(async () => {
  await Promise.all(open.map((s) => s.close()));
});

async function load(spec: string, opts = {}): Promise<Segmenter> {
  const s = await loadSegmenter(spec, opts);
  open.push(s);
  return s;
}

function boxStats(mask: Mask, b: Box) {
  let inside = 0;
  let outside = 0;
  let outsideFar = 0;
  for (let y = 0; y < mask.height; y++) {
    for (let x = 0; x < mask.width; x++) {
      if (mask.data[y * mask.width + x] !== 255) continue;
      if (x >= b.x0 && x < b.x1 && y >= b.y0 && y < b.y1) inside++;
      else {
        outside++;
        if (x < b.x0 - 2 || x >= b.x1 + 2 || y < b.y0 - 2 || y >= b.y1 + 2) outsideFar++;
      }
    }
  }
  const area = (b.x1 - b.x0) * (b.y1 - b.y0);
  return { iou: inside / (area + outside), outsideFar };
}

/** What the tiny encoder + decoder give as score: sigmoid of the mean of SAM's normalised, padded input. */
async function expectedScore(img: RgbImage): Promise<number> {
  const t = normalizePadChw(await resizeLongestSide(img));
  let sum = 0;
  for (const v of t) sum += v;
  return 1 / (1 + Math.exp(-sum / t.length));
}

const boxes: Box[] = [
  { x0: 40, y0: 30, x1: 260, y1: 200 },
  { x0: 300, y0: 100, x1: 630, y1: 420 },
  { x0: 100, y0: 250, x1: 180, y1: 300 },
];

test("one box: one full-size binary mask covering the box and nothing else", async () => {
  const seg = await load(sam);
  assert.equal(seg.executionProvider, "cpu");
  const r = await seg.segment(image, [boxes[0]!]);
  assert.equal(r.masks.length, 1);
  assert.equal(r.scores.length, 1);
  const m = r.masks[0]!;
  assert.deepEqual([m.width, m.height, m.data.length], [640, 427, 640 * 427]);
  assert.ok(m.data.every((v) => v === 0 || v === 255));
  const s = boxStats(m, boxes[0]!);
  assert.ok(s.iou > 0.9, `IoU ${s.iou}`);
  assert.equal(s.outsideFar, 0);
  assert.ok(Math.abs(r.scores[0]! - (await expectedScore(image))) < 1e-4, `score ${r.scores[0]}`);
  for (const k of ["preprocessMs", "encodeMs", "decodeMs", "postprocessMs"] as const) assert.ok(r.timings[k] >= 0);
});

test("three boxes: one mask per box in order; the encoder runs once per image", async () => {
  const seg = await load(sam);
  assert.ok(seg instanceof SamexporterSegmenter);
  const r = await seg.segment(image, boxes);
  assert.equal(r.masks.length, 3);
  r.masks.forEach((m, i) => {
    const s = boxStats(m, boxes[i]!);
    assert.ok(s.iou > 0.9, `box ${i}: IoU ${s.iou}`);
    assert.equal(s.outsideFar, 0, `box ${i}`);
  });
  // Meta's export takes one prompt per run (point_coords [1, N, 2]): one decoder run per box.
  assert.deepEqual(seg.stats, { encoderRuns: 1, decoderRuns: 3 });
  await seg.segment(image, boxes.slice(0, 2));
  assert.deepEqual(seg.stats, { encoderRuns: 2, decoderRuns: 5 });
});

test("a decoder with a dynamic batch dimension decodes all boxes in one run; an NCHW encoder gets the normalised tensor", async () => {
  const dir = await scratchDir("segmenter-variants");
  const { sam: batched } = await makeTinyModels(join(dir, "batched"), { batchedDecoder: true });
  const { sam: nchw } = await makeTinyModels(join(dir, "nchw"), { encoderLayout: "nchw" });
  const reference = await (await load(sam)).segment(image, boxes);
  for (const spec of [batched, nchw]) {
    const seg = await load(spec);
    const r = await seg.segment(image, boxes);
    assert.ok(seg instanceof SamexporterSegmenter);
    assert.equal(seg.stats.encoderRuns, 1);
    assert.equal(seg.stats.decoderRuns, spec === batched ? 1 : 3);
    r.masks.forEach((m, i) => assert.deepEqual(m.data, reference.masks[i]!.data, `${spec} box ${i}`));
    r.scores.forEach((s, i) => assert.ok(Math.abs(s - reference.scores[i]!) < 1e-4, `${spec} score ${i}`));
  }
});

test("our low-res upscaling agrees with the decoder graph's own `masks` output (onnxruntime Resize)", async () => {
  const resized = samResizeShape(image);
  const decoder = await createSession(join(sam, "decoder.onnx"));
  try {
    const out = await decoder.run({
      image_embeddings: new Tensor("float32", new Float32Array(256 * 64 * 64), [1, 256, 64, 64]),
      point_coords: new Tensor("float32", Float32Array.from(scaleBox(boxes[1]!, image, resized)), [1, 2, 2]),
      point_labels: new Tensor("float32", Float32Array.from([2, 3]), [1, 2]),
      mask_input: new Tensor("float32", new Float32Array(256 * 256), [1, 1, 256, 256]),
      has_mask_input: new Tensor("float32", new Float32Array(1), [1]),
      orig_im_size: new Tensor("float32", Float32Array.from([image.height, image.width]), [2]),
    });
    assert.deepEqual(out.masks!.dims, [1, 1, 427, 640]);
    const graph = out.masks!.data as Float32Array;
    const ours = upscaleMask(out.low_res_masks!.data as Float32Array, 256, resized, image);
    let differ = 0;
    for (let i = 0; i < ours.length; i++) if ((ours[i] === 255) !== graph[i]! > 0) differ++;
    assert.ok(differ <= 10, `${differ} pixels differ`); // measured 0; float rounding exactly on an edge may flip a few
  } finally {
    await decoder.release();
  }
});

test("bad input is an InputError naming the box", async () => {
  const seg = await load(sam);
  await assert.rejects(seg.segment(image, [{ x0: 10, y0: 10, x1: 10, y1: 50 }]), (e: unknown) => e instanceof InputError && /box 0/.test(e.message));
  await assert.rejects(seg.segment(image, []), InputError);
  await assert.rejects(seg.segment({ ...image, width: 641 }, [boxes[0]!]), InputError);
});

test("a manifest model that is not cached, with downloading off: ModelError naming the pull command and the path", async () => {
  const cacheDir = await scratchDir("segmenter-empty-cache");
  await assert.rejects(loadSegmenter("sam-vit-b", { cacheDir, download: false }), (e: unknown) => {
    assert.ok(e instanceof ModelError);
    assert.match(e.message, /maskfleet models pull sam-vit-b/);
    assert.ok(e.message.includes(join(cacheDir, "sam-vit-b", "sam_vit_b_01ec64.encoder.onnx")), e.message);
    return true;
  });
  await assert.rejects(loadSegmenter("sam-vit-x", { cacheDir, download: false }), /neither a manifest name .*sam-vit-b/);
});

test("wrong files: clear ModelErrors naming the file and the missing input/output", async () => {
  const dir = await scratchDir("segmenter-wrong-io");
  await cp(sam, dir, { recursive: true });
  await cp(join(face, "model.onnx"), join(dir, "face.onnx"));
  // The face detector given as the SAM encoder.
  await writeFile(join(dir, "model.json"), JSON.stringify({ format: "samexporter", files: { encoder: "face.onnx", decoder: "decoder.onnx" } }));
  await assert.rejects(loadSegmenter(dir), (e: unknown) => {
    assert.ok(e instanceof ModelError);
    assert.match(e.message, /face\.onnx is not a samexporter SAM encoder: input "input_image" missing \(it has input\)/);
    assert.match(e.message, /output "image_embeddings" missing/);
    return true;
  });
  // Encoder and decoder swapped.
  await writeFile(join(dir, "model.json"), JSON.stringify({ format: "samexporter", files: { encoder: "decoder.onnx", decoder: "encoder.onnx" } }));
  await assert.rejects(loadSegmenter(dir), /decoder\.onnx is not a samexporter SAM encoder: input "input_image" missing/);
  // A role missing from model.json, a file missing, a face model asked to segment.
  await writeFile(join(dir, "model.json"), JSON.stringify({ format: "samexporter", files: { encoder: "encoder.onnx" } }));
  await assert.rejects(loadSegmenter(dir), /files needs "decoder"/);
  await writeFile(join(dir, "model.json"), JSON.stringify({ format: "samexporter", files: { encoder: "encoder.onnx", decoder: "nope.onnx" } }));
  await assert.rejects(loadSegmenter(dir), /decoder file .*nope\.onnx does not exist/);
  await assert.rejects(loadSegmenter(face), /is a face-detect model .*a segment model is needed/);
  await assert.rejects(loadSegmenter(join(sam, "encoder.onnx")), /a single \.onnx file is not enough for a segment/);
});

test("CUDA is used only when present; otherwise a ConfigError, never a silent CPU fall-back", async () => {
  const loaded = await loadSegmenter(sam, { executionProvider: "cuda" }).then(
    (s) => s,
    (e: unknown) => e,
  );
  if (loaded instanceof Error) {
    assert.ok(loaded instanceof ConfigError, String(loaded));
    assert.equal(loaded.key, "executionProvider");
    assert.match(loaded.message, /CUDA was asked for/);
  } else {
    open.push(loaded as Segmenter);
    assert.equal((loaded as Segmenter).executionProvider, "cuda");
  }
});
