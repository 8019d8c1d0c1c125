/**
 * maskSelection: which of SAM's masks a box gets, through the real loader and pre/post-processing
 * on tiny graphs (tools/make-tiny-sam-variants.ts): a samexporter decoder exported with all four
 * masks (mask 0 = the box itself; the best-scored multimask candidate = the box grown by SHIFT
 * cells), the usual single-mask export (K = 1), and SAM 2's three multimask candidates (K = 3).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { ConfigError, ModelError } from "../shared/errors.js";
import type { Box, Mask, RgbImage } from "../shared/types.js";
import { ALL_MASKS_BEST, ALL_MASKS_IOU, makeTinySamVariants, SHIFT } from "../tools/make-tiny-sam-variants.js";
import { chooseCandidates, selectionFor, stabilityScore } from "../workers/mask/sam-common.js";
import { loadSegmenter, type Segmenter, type SegmenterOptions } from "../workers/mask/segmenter.js";
import { repoRoot, scratchDir, tinyModels } from "./helpers.js";

let image: RgbImage;
let dirs: { sam2: string; hfSam: string; allMasks: string };
let singleMaskExport: string;
const open: Segmenter[] = [];

before(async () => {
  const { data, info } = await sharp(join(repoRoot, "samples", "photos", "rocket.jpg")).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  image = { data: new Uint8Array(data), width: info.width, height: info.height }; // 640 x 427
  dirs = await makeTinySamVariants(await scratchDir("mask-selection-models"));
  singleMaskExport = (await tinyModels()).sam;
});
after(async () => {
  await Promise.all(open.map((s) => s.close()));
});

async function load(spec: string, opts: SegmenterOptions = {}): Promise<Segmenter> {
  const s = await loadSegmenter(spec, opts);
  open.push(s);
  return s;
}

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
    const r = await (await load(singleMaskExport)).segment(image, [box]);
    assert.equal(r.selection, "best");
    // select_masks gives mask 0 to a prompt of more than 2 points: a box with a point.
    const withPoint = await (await load(singleMaskExport)).segment(image, [{ ...box, points: [{ x: 300, y: 200, label: 1 }] }]);
    assert.equal(withPoint.selection, "single");
    await assert.rejects((await load(singleMaskExport, { maskSelection: "single" })).segment(image, [box]), (e: unknown) => e instanceof ConfigError && /maskSelection single is not available.*EXPORT\.md/.test(e.message));
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
