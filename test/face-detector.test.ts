/**
 * The face detector through loadFaceDetector on the tiny UltraFace graph (test/support/onnx/make-tiny-models.ts:
 * candidates score the fraction of skin-coloured pixels, every candidate carries the box around the
 * skin-coloured cells), so the real resize, normalisation, thresholding, NMS, scaling and clamping run.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import sharp from "sharp";
import { ConfigError, ModelError } from "../src/runtime/errors.js";
import type { Box, RgbImage } from "../src/imaging/types.js";
import { loadFaceDetector, type Detector } from "../src/detectors/detector.js";
import { decodeFaces, nms } from "../src/detectors/ultraface.js";
import { repoRoot, tinyModels } from "./helpers.js";

const SKIN = [224, 172, 140];
const GREY = [120, 120, 120];
let face: string;
let sam: string;
let detector: Detector;

before(async () => {
  ({ face, sam } = await tinyModels());
  detector = await loadFaceDetector(face);
});
after(async () => {
  await detector.close();
});

/** width x height filled with `bg`, with an ellipse of `fg` (centre cx, cy; radii rx, ry). */
function ellipseImage(width: number, height: number, bg: number[], fg: number[], cx: number, cy: number, rx: number, ry: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inside = ((x + 0.5 - cx) / rx) ** 2 + ((y + 0.5 - cy) / ry) ** 2 <= 1;
      data.set(inside ? fg : bg, (y * width + x) * 3);
    }
  }
  return { data, width, height };
}

function iou(a: Box, b: Box): number {
  const w = Math.max(0, Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0));
  const h = Math.max(0, Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0));
  const inter = w * h;
  return inter / ((a.x1 - a.x0) * (a.y1 - a.y0) + (b.x1 - b.x0) * (b.y1 - b.y0) - inter);
}

function assertInside(b: Box, img: RgbImage) {
  assert.ok(b.x0 >= 0 && b.y0 >= 0 && b.x1 <= img.width && b.y1 <= img.height && b.x1 > b.x0 && b.y1 > b.y0, JSON.stringify(b));
}

test("finds the face-like region, once, as a labelled box near it", async () => {
  const img = ellipseImage(640, 480, GREY, SKIN, 400, 200, 90, 120);
  const boxes = await detector.detect(img);
  assert.equal(boxes.length, 1, JSON.stringify(boxes));
  const b = boxes[0]!;
  assert.equal(b.label, "face");
  assert.ok(b.score! > 0.7 && b.score! <= 1);
  assertInside(b, img);
  const truth = { x0: 310, y0: 80, x1: 490, y1: 320 };
  assert.ok(iou(b, truth) > 0.7, `IoU ${iou(b, truth)} for ${JSON.stringify(b)}`);
});

test("nothing in a plain image, nor in an orange one", async () => {
  assert.deepEqual(await detector.detect(ellipseImage(640, 480, GREY, GREY, 0, 0, 1, 1)), []);
  assert.deepEqual(await detector.detect(ellipseImage(640, 480, GREY, [229, 116, 76], 320, 240, 150, 150)), []);
});

test("boxes crossing the image edge are clamped inside it", async () => {
  const img = ellipseImage(500, 400, GREY, SKIN, 40, 30, 120, 110); // face cut by the top-left corner
  const boxes = await detector.detect(img);
  assert.equal(boxes.length, 1);
  assertInside(boxes[0]!, img);
  assert.equal(boxes[0]!.x0, 0);
  assert.equal(boxes[0]!.y0, 0);
});

test("the astronaut photo: one box around her face", async () => {
  const { data, info } = await sharp(join(repoRoot, "samples", "photos", "astronaut.jpg"))
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const img = { data: new Uint8Array(data), width: info.width, height: info.height };
  const boxes = await detector.detect(img);
  assert.equal(boxes.length, 1, JSON.stringify(boxes));
  const b = boxes[0]!;
  assertInside(b, img);
  // Her face spans about x 180-270, y 70-185 of the 512 x 512 photo; the box may include the hair.
  assert.ok(b.x0 <= 180 && b.x1 >= 270 && b.y0 <= 70 && b.y1 >= 185, JSON.stringify(b));
  assert.ok((b.x1 - b.x0) * (b.y1 - b.y0) < 0.15 * 512 * 512, JSON.stringify(b));
});

test("score threshold and options are checked", async () => {
  const strict = await loadFaceDetector(face, { scoreThreshold: 1 });
  try {
    assert.deepEqual(await strict.detect(ellipseImage(640, 480, GREY, SKIN, 400, 200, 90, 120)), []);
  } finally {
    await strict.close();
  }
  await assert.rejects(loadFaceDetector(face, { scoreThreshold: 1.5 }), ConfigError);
  await assert.rejects(loadFaceDetector(face, { nmsIou: 0 }), ConfigError);
});

test("a single .onnx resolves as UltraFace; a wrong file is a ModelError naming it", async () => {
  const single = await loadFaceDetector(join(face, "model.onnx"));
  await single.close();
  await assert.rejects(loadFaceDetector(join(sam, "decoder.onnx")), (e: unknown) => {
    assert.ok(e instanceof ModelError);
    assert.match(e.message, /decoder\.onnx is not a UltraFace face detector: input "input" missing/);
    return true;
  });
  await assert.rejects(loadFaceDetector(sam), /is a segment model .*a face-detect model is needed/);
});

test("post-processing: threshold, NMS (IoU 0.3), scaling, clamping", () => {
  // Three candidates: two overlapping faces (IoU 0.68) and one separate; one below the threshold.
  const boxes = Float32Array.from([0.1, 0.1, 0.3, 0.3, 0.12, 0.1, 0.32, 0.3, 0.6, 0.5, 1.2, 0.9, 0.4, 0.4, 0.5, 0.5]);
  const scores = Float32Array.from([0.1, 0.9, 0.05, 0.95, 0.2, 0.8, 0.5, 0.5]);
  const out = decodeFaces(scores, boxes, { width: 200, height: 100 }, 0.7, 0.3);
  assert.deepEqual(out, [
    { x0: 24, y0: 10, x1: 64, y1: 30, score: scores[3], label: "face" },
    { x0: 120, y0: 50, x1: 200, y1: 90, score: scores[5], label: "face" },
  ]);
  assert.deepEqual(nms(boxes, [1, 0, 2], 0.3), [1, 2]);
  assert.deepEqual(nms(boxes, [1, 0, 2], 0.9), [1, 0, 2]);
});
