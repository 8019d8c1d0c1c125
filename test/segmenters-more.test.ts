/**
 * The SAM 2 (samexporter format) and transformers.js SAM segmenters (and the samexporter
 * adapter's points and refine pass) through the real loader
 * (resolveModel on a local folder with model.json) and the real pre/post-processing, on the tiny
 * graphs of test/support/onnx/make-tiny-sam-variants.ts: logits positive exactly inside the prompted box, a
 * square added / cut around positive / negative points, three candidates of which the IoU scores
 * prefer the right one, and (SAM 2) has_mask_input * (mask_input + MASK_BIAS) added; and
 * maskSelection on a samexporter decoder exported with all four masks.
 */
import assert from "node:assert/strict";
import { copyFile, cp, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { ConfigError, InputError, ModelError } from "../src/runtime/errors.js";
import { chooseCandidates, selectionFor, stabilityScore } from "../src/segmenters/sam-common.js";
import type { Box, Mask, RgbImage } from "../src/imaging/types.js";
import { getModel, listModels, pullModel } from "../src/models/registry.js";
import { discoverInputs } from "../src/producer/discover.js";
import { enqueueImages } from "../src/producer/enqueue.js";
import { waitForRun } from "../src/runs/status.js";
import { resolveConfig } from "../src/config/config.js";
import { startFleet } from "../src/fleet/fleet.js";
import {
  ALL_MASKS_BEST,
  ALL_MASKS_IOU,
  HF_SAM_BEST,
  HF_SAM_IOU,
  makeTinySamVariants,
  MASK_BIAS,
  POINT_RADIUS,
  SAM2_BEST,
  SAM2_IOU,
  SHIFT,
} from "./support/onnx/make-tiny-sam-variants.js";
import { makeTinyModels } from "./support/onnx/make-tiny-models.js";
import { HfSamSegmenter } from "../src/segmenters/hf-sam.js";
import { samResizeShape, scaleBox, upscaleMask } from "../src/segmenters/sam-processing.js";
import { SamexporterSegmenter } from "../src/segmenters/samexporter.js";
import { Sam2Segmenter } from "../src/segmenters/sam2.js";
import { loadSegmenter, type Segmenter, type SegmenterOptions } from "../src/segmenters/segmenter.js";
import { repoRoot, scratchDir, tinyModels, runImages } from "./helpers.js";
import { startRedisServer } from "./scenarios/redis-server.js";

let image: RgbImage;
let dirs: { sam2: string; hfSam: string; allMasks: string };
let samexporter: string;
const open: Segmenter[] = [];

before(async () => {
  const { data, info } = await sharp(join(repoRoot, "samples", "photos", "rocket.jpg"))
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  image = { data: new Uint8Array(data), width: info.width, height: info.height }; // 640 x 427
  dirs = await makeTinySamVariants(await scratchDir("segmenters-more-models"));
  samexporter = (await tinyModels()).sam;
});
after(async () => {
  await Promise.all(open.map((s) => s.close()));
});

async function load(spec: string, opts: SegmenterOptions = {}): Promise<Segmenter> {
  const s = await loadSegmenter(spec, opts);
  open.push(s);
  return s;
}

/** Bounding box and area of the mask's 255 pixels. */
function extent(mask: Mask) {
  let [x0, y0, x1, y1, area] = [Infinity, Infinity, -Infinity, -Infinity, 0];
  for (let y = 0; y < mask.height; y++) {
    for (let x = 0; x < mask.width; x++) {
      if (mask.data[y * mask.width + x] !== 255) continue;
      area++;
      [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x + 1), Math.max(y1, y + 1)];
    }
  }
  return { x0, y0, x1, y1, area };
}

function assertNear(mask: Mask, b: { x0: number; y0: number; x1: number; y1: number }, tol: number, what: string) {
  const e = extent(mask);
  for (const k of ["x0", "y0", "x1", "y1"] as const) assert.ok(Math.abs(e[k] - b[k]) <= tol, `${what}: ${k} ${e[k]} vs ${b[k]}`);
  const area = (b.x1 - b.x0) * (b.y1 - b.y0);
  assert.ok(Math.abs(e.area - area) <= area * 0.02, `${what}: area ${e.area} vs ${area}`);
}

const at = (m: Mask, x: number, y: number) => m.data[y * m.width + x];

const boxes: Box[] = [
  { x0: 40, y0: 30, x1: 260, y1: 200 },
  { x0: 300, y0: 100, x1: 630, y1: 420 },
  { x0: 100, y0: 250, x1: 180, y1: 300 },
];

const formats = [
  { name: "sam2", spec: () => dirs.sam2, best: SAM2_IOU[SAM2_BEST]!, cls: Sam2Segmenter },
  { name: "hf-sam", spec: () => dirs.hfSam, best: HF_SAM_IOU[HF_SAM_BEST]!, cls: HfSamSegmenter },
] as const;

for (const f of formats) {
  describe(`format ${f.name}`, () => {
    test("boxes: one full-size binary mask per box, the box and nothing else; all boxes in one decoder run", async () => {
      const seg = await load(f.spec());
      assert.ok(seg instanceof f.cls);
      const r = await seg.segment(image, boxes);
      assert.equal(r.masks.length, 3);
      r.masks.forEach((m, i) => {
        assert.deepEqual([m.width, m.height, m.data.length], [640, 427, 640 * 427]);
        assert.ok(m.data.every((v) => v === 0 || v === 255));
        // The other two candidates are the box shrunk / grown by 12 low-res cells (>= 30 px here):
        // a mask within 1 px of the box is the candidate the IoU scores prefer.
        assertNear(m, boxes[i]!, 1, `box ${i}`);
      });
      r.scores.forEach((s) => assert.ok(Math.abs(s - f.best) < 1e-6, `score ${s} is the best candidate's ${f.best}`));
      assert.deepEqual((seg as Sam2Segmenter | HfSamSegmenter).stats, { encoderRuns: 1, decoderRuns: 1 });
      for (const k of ["preprocessMs", "encodeMs", "decodeMs", "postprocessMs"] as const) assert.ok(r.timings[k] >= 0);
    });

    test("points next to a box: a negative point cuts the mask, a positive one outside the box adds to it", async () => {
      const seg = await load(f.spec());
      const plain = { x0: 300, y0: 100, x1: 630, y1: 420 };
      const withPoints: Box = {
        ...plain,
        points: [
          { x: 465, y: 260, label: 0 },
          { x: 100, y: 400, label: 1 },
        ],
      };
      const r = await seg.segment(image, [withPoints, boxes[0]!]);
      const m = r.masks[0]!;
      assert.equal(at(m, 465, 260), 0, "the negative point is cut out");
      assert.equal(at(m, 320, 120), 255, "the rest of the box stays");
      assert.equal(at(m, 100, 400), 255, "the positive point is added");
      // The added square is POINT_RADIUS cells = 32 px of the 1024 frame across each way (about 20 px here).
      assert.equal(at(m, 100 + 40, 400), 0);
      assert.ok(extent(m).area < (plain.x1 - plain.x0) * (plain.y1 - plain.y0) + 45 * 45);
      // Padding the other box's prompt to the same number of points changes nothing for it.
      assertNear(r.masks[1]!, boxes[0]!, 1, "the box without points");
      assert.ok(POINT_RADIUS > 0);
    });

    test("bad points are an InputError naming the box", async () => {
      const seg = await load(f.spec());
      const bad = { ...boxes[0]!, points: [{ x: 10, y: Number.NaN, label: 1 as const }] };
      await assert.rejects(seg.segment(image, [boxes[1]!, bad]), (e: unknown) => e instanceof InputError && /point 0 of box 1/.test(e.message));
      await assert.rejects(seg.segment(image, []), InputError);
    });
  });
}

test("sam2 refine pass: the decoder runs twice and gets has_mask_input = 1 with the first pass's chosen logits", async () => {
  const seg = await load(dirs.sam2, { refine: true });
  assert.ok(seg instanceof Sam2Segmenter);
  const r = await seg.segment(image, boxes.slice(0, 2));
  assert.deepEqual(seg.stats, { encoderRuns: 1, decoderRuns: 2 });
  // The tiny decoder adds has_mask_input * (mask_input + MASK_BIAS): fed the first logits (the
  // box's edge distance d), the second pass is 2d + MASK_BIAS > 0, the box grown by MASK_BIAS / 2
  // cells = 20 px of the 1024 frame (12.5 px across, 8.3 px down here). Zeros as mask_input
  // would grow it by MASK_BIAS cells, no mask input not at all.
  const gx = ((MASK_BIAS / 2) * 4 * 640) / 1024;
  const gy = ((MASK_BIAS / 2) * 4 * 427) / 1024;
  r.masks.forEach((m, i) => {
    const b = boxes[i]!;
    const e = extent(m);
    const want = { x0: Math.max(0, b.x0 - gx), y0: Math.max(0, b.y0 - gy), x1: Math.min(640, b.x1 + gx), y1: Math.min(427, b.y1 + gy) };
    for (const k of ["x0", "y0", "x1", "y1"] as const) assert.ok(Math.abs(e[k] - want[k]) <= 1, `box ${i} ${k}: ${e[k]} vs ${want[k]}`);
  });
  assert.ok(Math.abs(r.scores[0]! - SAM2_IOU[SAM2_BEST]!) < 1e-6);
});

test("refine is refused where the decoder takes no mask (hf-sam)", async () => {
  await assert.rejects(loadSegmenter(dirs.hfSam, { refine: true }), (e: unknown) => e instanceof ConfigError && /hf-sam has no mask input/.test(e.message));
});

test("samexporter refine pass: each box decoded again with has_mask_input = 1 and its first logits as mask_input", async () => {
  // The tiny samexporter decoder (test/support/onnx/make-tiny-models.ts) adds has_mask_input * mean(mask_input)
  // to its box logits d, so the refined logits are exactly d + mean(d): computed here independently.
  const b: Box = { x0: 20, y0: 20, x1: 620, y1: 410 };
  const resized = samResizeShape(image);
  const [x0, y0, x1, y1] = scaleBox(b, image, resized).map((v) => v / 4) as [number, number, number, number];
  const d = new Float32Array(256 * 256);
  let sum = 0;
  for (let i = 0; i < 256; i++) {
    for (let j = 0; j < 256; j++) {
      const [x, y] = [j + 0.5, i + 0.5];
      d[i * 256 + j] = Math.min(x - x0, x1 - x, y - y0, y1 - y);
      sum += d[i * 256 + j]!;
    }
  }
  const expected = upscaleMask(
    d.map((v) => v + sum / d.length),
    256,
    resized,
    image,
  );
  for (const batchedDecoder of [false, true]) {
    const { sam } = await makeTinyModels(await scratchDir(`segmenters-more-refine-${batchedDecoder}`), { batchedDecoder });
    const plain = await (await load(sam)).segment(image, [b]);
    const seg = await load(sam, { refine: true });
    assert.ok(seg instanceof SamexporterSegmenter);
    const r = await seg.segment(image, [b, b]);
    // One box per run when refining, even with a batched decoder: mask_input is [1, 1, 256, 256].
    assert.deepEqual(seg.stats, { encoderRuns: 1, decoderRuns: 4 });
    for (const m of r.masks) {
      let differ = 0;
      for (let i = 0; i < expected.length; i++) if (m.data[i] !== expected[i]) differ++;
      // mean(d) is about +0.6 cells here, so the refined mask is the box grown by about 2 px; float
      // rounding exactly on an edge may flip a few pixels (measured 2).
      assert.ok(differ <= 10, `${differ} pixels differ from d + mean(d)`);
      assert.notDeepEqual(m.data, plain.masks[0]!.data, "the refine pass changed the mask");
    }
  }
});

test("samexporter: box points travel with the corners; shorter prompts of a batch are padded with label -1", async () => {
  // The tiny samexporter decoder reads only the corners (labels 2, 3), so points and padding must leave the masks as they are.
  const { sam } = await makeTinyModels(await scratchDir("segmenters-more-points"), { batchedDecoder: true });
  const seg = await load(sam);
  const reference = await seg.segment(image, boxes);
  const withPoints: Box[] = [
    {
      ...boxes[0]!,
      points: [
        { x: 100, y: 100, label: 1 },
        { x: 120, y: 90, label: 0 },
      ],
    },
    boxes[1]!,
    { ...boxes[2]!, points: [{ x: 140, y: 270, label: 1 }] },
  ];
  const r = await seg.segment(image, withPoints);
  r.masks.forEach((m, i) => assert.deepEqual(m.data, reference.masks[i]!.data, `box ${i}`));
  await assert.rejects(seg.segment(image, [{ ...boxes[0]!, points: [{ x: 1, y: 1, label: 2 as 1 }] }]), /point 0 of box 0/);
});

test("wrong files fail at load, naming the file and the missing input/output", async () => {
  const dir = await scratchDir("segmenters-more-wrong");
  await cp(dirs.sam2, join(dir, "sam2"), { recursive: true });
  await cp(dirs.hfSam, join(dir, "hf"), { recursive: true });
  await cp(samexporter, join(dir, "samexporter"), { recursive: true });
  const folder = join(dir, "mixed");
  await cp(dirs.sam2, folder, { recursive: true });
  const use = (format: string, encoder: string, decoder: string) =>
    writeFile(join(folder, "model.json"), JSON.stringify({ format, files: { encoder: `../${encoder}`, decoder: `../${decoder}` } }));

  // A samexporter (SAM 1) pair given as SAM 2.
  await use("sam2", "samexporter/encoder.onnx", "samexporter/decoder.onnx");
  await assert.rejects(loadSegmenter(folder), (e: unknown) => {
    assert.ok(e instanceof ModelError);
    assert.match(e.message, /encoder\.onnx is not a SAM 2 encoder \(samexporter format\): input "image" missing \(it has input_image\)/);
    assert.match(e.message, /output "high_res_feats_0", "high_res_feats_1", "image_embed" missing/);
    return true;
  });
  // The right SAM 2 encoder with a SAM 1 decoder: the decoder is named.
  await use("sam2", "sam2/encoder.onnx", "samexporter/decoder.onnx");
  await assert.rejects(loadSegmenter(folder), /decoder\.onnx is not a SAM 2 decoder \(samexporter format\): input "image_embed", "high_res_feats_0", "high_res_feats_1" missing/);
  // A SAM 2 pair given as hf-sam, and the hf-sam decoder given as SAM 2's.
  await use("hf-sam", "sam2/encoder.onnx", "sam2/decoder.onnx");
  await assert.rejects(loadSegmenter(folder), /encoder\.onnx is not a transformers\.js SAM vision encoder: input "pixel_values" missing/);
  await use("sam2", "sam2/encoder.onnx", "hf/decoder.onnx");
  await assert.rejects(
    loadSegmenter(folder),
    /input "image_embed", "high_res_feats_0", "high_res_feats_1", "point_coords", "point_labels", "mask_input", "has_mask_input" missing/,
  );
});

test("the manifest's SAM 2.1 and transformers.js models: listed, unpinned, so pull refuses without allowUnverified", async () => {
  const ours = listModels().filter((m) => m.format === "sam2" || m.format === "hf-sam");
  assert.deepEqual(
    ours.map((m) => [m.name, m.format]),
    [
      ["sam2.1-hiera-tiny", "sam2"],
      ["sam2.1-hiera-small", "sam2"],
      ["sam2.1-hiera-base-plus", "sam2"],
      ["sam2.1-hiera-large", "sam2"],
      ["slimsam-77-uniform", "hf-sam"],
      ["sam-vit-base-hf", "hf-sam"],
    ],
  );
  for (const m of ours) {
    assert.match(m.licence, /^Apache-2\.0/);
    assert.deepEqual(m.files.map((f) => f.role).sort(), ["decoder", "encoder"]);
  }
  assert.equal(getModel("sam2.1-hiera-tiny").archive?.url, "https://huggingface.co/vietanhdev/segment-anything-2.1-onnx-models/resolve/main/sam2.1_hiera_tiny_20260221.zip");
  const cacheDir = await scratchDir("segmenters-more-cache");
  await assert.rejects(
    pullModel("slimsam-77-uniform", { cacheDir, log: () => {} }),
    /pins no sha256 for vision_encoder\.onnx, prompt_encoder_mask_decoder\.onnx.*--allow-unverified/,
  );
  await assert.rejects(pullModel("sam2.1-hiera-large", { cacheDir, log: () => {} }), /pins no sha256 for sam2\.1_hiera_large_20260221\.zip/);
});

test("the fleet's mask stage with a sam2 model folder as samModel (own throw-away Redis)", async () => {
  const redis = await startRedisServer("segmenters-more-redis");
  const dir = await scratchDir("segmenters-more-fleet");
  await mkdir(join(dir, "in"), { recursive: true });
  await copyFile(join(repoRoot, "samples", "photos", "rocket.jpg"), join(dir, "in", "rocket.jpg"));
  const config = resolveConfig({
    target: "auto",
    samModel: dirs.sam2,
    out: join(dir, "out"),
    redisUrl: redis.url,
    prompts: ["studio white background"],
    seeds: { from: 1, to: 1 },
    attempts: 1,
  });
  const fleet = startFleet(config, ["detect", "mask", "generate", "finalize"]);
  try {
    const items = discoverInputs([join(dir, "in")]);
    await enqueueImages(fleet.ctx.redis, config, "sam2-run", items);
    const status = await waitForRun(fleet.ctx.redis, "sam2-run", { intervalMs: 200, timeoutMs: 60_000 });
    assert.equal(status.finished, 1);
    const [img] = (await runImages(fleet.ctx.redis, "sam2-run", join(dir, "out"))).values();
    assert.ok(img);
    assert.equal(img.failedStage, undefined, img.reason);
    const info = JSON.parse(await readFile(join(dir, "out", img.outPrefix, "mask.json"), "utf8"));
    assert.equal(info.model, dirs.sam2);
    assert.ok(Math.abs(info.boxes[0].score - SAM2_IOU[SAM2_BEST]!) < 1e-6);
    // target auto: the whole image is the box, so the whole image is the mask.
    const { data } = await sharp(join(dir, "out", img.outPrefix, "mask.png"))
      .raw()
      .toBuffer({ resolveWithObject: true });
    assert.ok(data.every((v) => v === 255));

    // refineMask reaches the mask stage's segmenter: a second decoder pass per image.
    await enqueueImages(fleet.ctx.redis, { ...config, refineMask: true }, "sam2-refine", items);
    const refined = await waitForRun(fleet.ctx.redis, "sam2-refine", { intervalMs: 200, timeoutMs: 60_000 });
    assert.equal(refined.succeeded, 1, JSON.stringify(refined.failures));
    const plain = (await fleet.ctx.segmenter(dirs.sam2)) as Sam2Segmenter;
    const withRefine = (await fleet.ctx.segmenter(dirs.sam2, true)) as Sam2Segmenter;
    // The plain one also ran once for the mask pool's warm-up.
    assert.deepEqual([plain.stats.decoderRuns - 1, withRefine.stats.decoderRuns], [1, 2]);
  } finally {
    await fleet.close();
    await redis.close();
  }
});

// maskSelection: which of SAM's masks a box gets. A samexporter decoder exported with all four
// masks (mask 0 = the box itself; the best-scored multimask candidate = the box grown by SHIFT
// cells), the usual single-mask export (K = 1), and SAM 2's three multimask candidates (K = 3).
function area(mask: Mask): number {
  let n = 0;
  for (const v of mask.data) if (v === 255) n++;
  return n;
}

const box: Box = { x0: 200, y0: 120, x1: 440, y1: 300 };
const boxArea = (box.x1 - box.x0) * (box.y1 - box.y0);
/** SHIFT low-res cells in original pixels (640 px wide image: 1024 / 640 = 1.6 frame px per pixel, 4 frame px per cell). */
const shiftPx = (SHIFT * 4 * 640) / 1024;

describe("a decoder exported with all four masks", () => {
  test("unset: single, mask 0, as SamPredictor.predict(box, multimask_output=False)", async () => {
    const r = await (await load(dirs.allMasks)).segment(image, [box]);
    assert.equal(r.selection, "single");
    assert.ok(Math.abs(r.scores[0]! - ALL_MASKS_IOU[0]!) < 1e-6);
    assert.ok(Math.abs(area(r.masks[0]!) - boxArea) < boxArea * 0.02, `mask 0 is the box: ${area(r.masks[0]!)} vs ${boxArea}`);
  });

  test("best: the multimask candidate with the highest predicted IoU", async () => {
    const r = await (await load(dirs.allMasks, { maskSelection: "best" })).segment(image, [box]);
    assert.equal(r.selection, "best");
    assert.ok(Math.abs(r.scores[0]! - ALL_MASKS_IOU[ALL_MASKS_BEST]!) < 1e-6);
    const grown = (box.x1 - box.x0 + 2 * shiftPx) * (box.y1 - box.y0 + 2 * shiftPx);
    assert.ok(Math.abs(area(r.masks[0]!) - grown) < grown * 0.03, `the grown candidate: ${area(r.masks[0]!)} vs ${grown}`);
  });
});

describe("formats that cannot give mask 0", () => {
  test("a single-mask export is used as it is, and refuses single when asked", async () => {
    const r = await (await load(samexporter)).segment(image, [box]);
    assert.equal(r.selection, "best");
    // select_masks gives mask 0 to a prompt of more than 2 points: a box with a point.
    const withPoint = await (await load(samexporter)).segment(image, [{ ...box, points: [{ x: 300, y: 200, label: 1 }] }]);
    assert.equal(withPoint.selection, "single");
    await assert.rejects(
      (await load(samexporter, { maskSelection: "single" })).segment(image, [box]),
      (e: unknown) => e instanceof ConfigError && /maskSelection single is not available.*EXPORT\.md/.test(e.message),
    );
  });

  test("SAM 2's three candidates: best by default, single refused", async () => {
    assert.equal((await (await load(dirs.sam2)).segment(image, [box])).selection, "best");
    await assert.rejects((await load(dirs.sam2, { maskSelection: "single" })).segment(image, [box]), ConfigError);
  });
});

describe("the rule itself", () => {
  const scores = Float32Array.from([0.9, 0.2, 0.7, 0.7]);
  const logits = Float32Array.from({ length: 4 * 4 }, (_, i) => Math.floor(i / 4));
  test("k = 4: single is mask 0 even when it scores best; best looks only at masks 1-3, the first on ties", () => {
    assert.equal(chooseCandidates(logits, scores, 1, 4, 2, "single")[0]!.logits[0], 0);
    assert.equal(chooseCandidates(logits, scores, 1, 4, 2, "best")[0]!.logits[0], 2);
  });
  test("selectionFor: unset is single only where mask 0 is there", () => {
    const d = { model: "m", oneMaskRule: "best" as const };
    assert.equal(selectionFor(undefined, 4, d), "single");
    assert.equal(selectionFor("best", 4, d), "best");
    assert.equal(selectionFor(undefined, 3, d), "best");
    assert.equal(selectionFor(undefined, 1, d), "best");
    assert.throws(() => selectionFor("single", 3, d), ConfigError);
    assert.throws(() => selectionFor(undefined, 2, d), ModelError);
  });
  test("stability score: IoU of the mask at logits > +1 and > -1, over the image's cells", () => {
    const side = 4;
    // A steep edge: every logit is far from +-1, so both thresholds give the same mask.
    const steep = Float32Array.from([9, 9, -9, -9, 9, 9, -9, -9, -9, -9, -9, -9, -9, -9, -9, -9]);
    assert.equal(stabilityScore({ logits: steep, side, score: 1, rule: "best" }, { width: 1024, height: 1024 }), 1);
    // A shallow one: 2 cells above +1, 6 above -1.
    const shallow = Float32Array.from([2, 2, 0, 0, 0, 0, -5, -5, -5, -5, -5, -5, -5, -5, -5, -5]);
    assert.equal(stabilityScore({ logits: shallow, side, score: 1, rule: "best" }, { width: 1024, height: 1024 }), 2 / 6);
    // Only the cells covering the image count (here the left half of the frame).
    assert.equal(stabilityScore({ logits: shallow, side, score: 1, rule: "best" }, { width: 512, height: 1024 }), 2 / 4);
  });
});
