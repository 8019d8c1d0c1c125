/**
 * `maskfleet eval`: COCO polygons and RLE (compressed and uncompressed) to masks, IoU and DAVIS
 * boundary F against hand-computed values, and the whole evaluation on a synthetic COCO set with
 * the tiny SAM model, whose mask is the prompted box (test/support/onnx/make-tiny-models.ts): a box-shaped
 * ground truth scores IoU ~1, an ellipse inscribed in its box ~pi/4.
 */
import assert from "node:assert/strict";
import { cp, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import sharp from "sharp";
import { ConfigError } from "../src/runtime/errors.js";
import { decodeRle, decodeRleString, encodeRle, encodeRleString, parseCoco, rasterizePolygons } from "../src/eval/coco.js";
import { boundaryF, defaultBoundaryTolerance, maskIoU } from "../src/imaging/mask-metrics.js";
import { formatEvalTable, runEval, type EvalReport } from "../src/eval/run.js";
import type { Mask } from "../src/imaging/types.js";
import { runMaskfleet, scratchDir, tinyModels } from "./helpers.js";

function rectMask(width: number, height: number, x0: number, y0: number, x1: number, y1: number): Mask {
  const data = new Uint8Array(width * height);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) data[y * width + x] = 255;
  return { data, width, height };
}

/** Pixels whose centre lies inside the ellipse inscribed in [x0, x1) x [y0, y1). */
function ellipseMask(width: number, height: number, x0: number, y0: number, x1: number, y1: number): Mask {
  const data = new Uint8Array(width * height);
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const rx = (x1 - x0) / 2;
  const ry = (y1 - y0) / 2;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) if (((x + 0.5 - cx) / rx) ** 2 + ((y + 0.5 - cy) / ry) ** 2 <= 1) data[y * width + x] = 255;
  }
  return { data, width, height };
}

const area = (m: Mask) => m.data.reduce((n, v) => n + (v ? 1 : 0), 0);

/** The F measure by brute force: every boundary pixel against every other (the reference for the distance transform). */
function boundaryFBruteForce(pred: Mask, gt: Mask, tol: number): number {
  const boundary = (m: Mask) => {
    const pts: [number, number][] = [];
    const bg = (x: number, y: number) => x >= 0 && y >= 0 && x < m.width && y < m.height && m.data[y * m.width + x] === 0;
    for (let y = 0; y < m.height; y++) {
      for (let x = 0; x < m.width; x++) {
        if (m.data[y * m.width + x] && (bg(x - 1, y) || bg(x + 1, y) || bg(x, y - 1) || bg(x, y + 1))) pts.push([x, y]);
      }
    }
    return pts;
  };
  const p = boundary(pred);
  const g = boundary(gt);
  const near = (a: [number, number], set: [number, number][]) => set.some((b) => (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2 <= tol * tol);
  const precision = p.filter((a) => near(a, g)).length / p.length;
  const recall = g.filter((a) => near(a, p)).length / g.length;
  return precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
}

test("polygons: pixel-centre scanline fill matches the analytic areas", () => {
  // An axis-aligned rectangle on pixel edges covers exactly its pixels.
  const rect = rasterizePolygons([[10, 10, 30, 10, 30, 20, 10, 20]], 64, 48);
  assert.deepEqual(rect.data, rectMask(64, 48, 10, 10, 30, 20).data);
  // A triangle: area 0.5 * 40 * 30 = 600, within the edge pixels.
  const tri = rasterizePolygons([[5, 5, 45, 5, 5, 35]], 64, 48);
  assert.ok(Math.abs(area(tri) - 600) <= 40, `triangle ${area(tri)}`);
  // A 64-gon of radius 20: area 0.5 * 64 * 400 * sin(2pi/64) = 1253.3.
  const ring = Array.from({ length: 64 }, (_, i) => [32 + 20 * Math.cos((2 * Math.PI * i) / 64), 24 + 20 * Math.sin((2 * Math.PI * i) / 64)]).flat();
  const expected = 0.5 * 64 * 400 * Math.sin((2 * Math.PI) / 64);
  assert.ok(Math.abs(area(rasterizePolygons([ring], 64, 48)) - expected) / expected < 0.02);
  // Several rings are unioned; a ring's self-overlap follows even-odd; outside the image is cut off.
  const two = rasterizePolygons(
    [
      [0, 0, 10, 0, 10, 10, 0, 10],
      [5, 5, 15, 5, 15, 15, 5, 15],
    ],
    64,
    48,
  );
  assert.equal(area(two), 100 + 100 - 25);
  assert.equal(area(rasterizePolygons([[-10, -10, 10, -10, 10, 10, -10, 10]], 64, 48)), 100);
});

test("RLE: column-major runs, compressed strings round-trip exactly", () => {
  // size [h=2, w=3]: runs 1 zero, 2 ones, 3 zeros down the columns: (0,1) and (1,0) are set.
  const m = decodeRle({ size: [2, 3], counts: [1, 2, 3] });
  assert.deepEqual([...m.data], [0, 255, 0, 255, 0, 0]);
  assert.deepEqual(encodeRle(m), { size: [2, 3], counts: [1, 2, 3] });
  // Large runs and negative deltas against counts[i - 2].
  const counts = [0, 5, 100000, 3, 7, 1, 1, 2 ** 20, 31, 32, 16, 15, 0, 1];
  assert.deepEqual(decodeRleString(encodeRleString(counts)), counts);
  const shape = ellipseMask(50, 40, 3, 4, 41, 33);
  const rle = encodeRle(shape);
  assert.deepEqual(decodeRle(rle).data, shape.data);
  assert.deepEqual(decodeRle({ size: rle.size, counts: encodeRleString(rle.counts) }).data, shape.data);
  // Strings as pycocotools writes them (deltas against counts[i - 2] from the fourth count on, 5 bits a character).
  for (const [c, str] of [
    [[0, 3, 5], "035"],
    [[0, 6, 1, 3], "061M"],
    [[0, 6, 1, 6], "0610"],
    [[0, 1, 1, 2, 1, 3, 1, 4, 1], "011101010"],
    [[0, 1024], "0PP1"],
  ] as const) {
    assert.equal(encodeRleString(c), str);
    assert.deepEqual(decodeRleString(str), c);
  }
  assert.throws(() => decodeRle({ size: [2, 2], counts: [1, 9] }), /exceed/);
});

test("IoU: exact 1, a 20 px square shifted 5 px 0.6, both empty 1", () => {
  const gt = rectMask(64, 48, 10, 10, 30, 30);
  assert.equal(maskIoU(gt, gt), 1);
  assert.equal(maskIoU(rectMask(64, 48, 15, 10, 35, 30), gt), (15 * 20) / (25 * 20));
  const empty = rectMask(64, 48, 0, 0, 0, 0);
  assert.equal(maskIoU(empty, empty), 1);
  assert.equal(maskIoU(empty, gt), 0);
});

test("boundary F: exact 1, shifted 5 px with tolerance 2 exactly 0.5, tolerance 5 forgives it; agrees with brute force", () => {
  const gt = rectMask(64, 48, 10, 10, 30, 30);
  const shifted = rectMask(64, 48, 15, 10, 35, 30);
  assert.equal(boundaryF(gt, gt, 0).f, 1);
  // Each 20 x 20 ring has 76 pixels; 38 of each lie within 2 px of the other ring (counted by hand).
  const s = boundaryF(shifted, gt, 2);
  assert.deepEqual([s.precision, s.recall, s.f], [0.5, 0.5, 0.5]);
  assert.equal(boundaryF(shifted, gt, 5).f, 1);
  assert.ok(boundaryF(shifted, gt, 4).f < 1);
  assert.equal(boundaryF(rectMask(64, 48, 0, 0, 0, 0), gt).f, 0);
  // DAVIS's default: ceil(0.008 * diagonal).
  assert.equal(defaultBoundaryTolerance(640, 480), 7);
  const a = ellipseMask(80, 60, 10, 8, 60, 50);
  const b = ellipseMask(80, 60, 13, 6, 66, 47);
  for (const tol of [0, 1, 2, 3, 5]) {
    assert.ok(Math.abs(boundaryF(b, a, tol).f - boundaryFBruteForce(b, a, tol)) < 1e-12, `tolerance ${tol}`);
  }
});

test("COCO JSON errors name the file and the field", () => {
  const ok = { images: [{ id: 1, file_name: "a.png", width: 10, height: 10 }], annotations: [], categories: [] };
  assert.doesNotThrow(() => parseCoco(ok, "x.json"));
  const badBox = { ...ok, annotations: [{ id: 1, image_id: 1, category_id: 1, bbox: [0, 0, 1], segmentation: [] }] };
  assert.throws(
    () => parseCoco(badBox, "x.json"),
    (e: Error) => e instanceof ConfigError && /^x\.json: annotations\[0\]\.bbox/.test(e.message),
  );
  const noImage = { ...ok, annotations: [{ id: 1, image_id: 7, category_id: 1, bbox: [0, 0, 1, 1], segmentation: [] }] };
  assert.throws(() => parseCoco(noImage, "x.json"), /annotations\[0\]\.image_id: no image with id 7/);
});

// --- the synthetic dataset ---------------------------------------------------------------

const W = 128;
const H = 96;

async function writeImage(path: string, shapes: Mask[]): Promise<void> {
  const rgb = Buffer.alloc(W * H * 3, 40);
  for (const [k, s] of shapes.entries()) {
    for (let i = 0; i < W * H; i++) if (s.data[i]) rgb.set(k % 2 ? [230, 60, 40] : [40, 200, 90], i * 3);
  }
  await sharp(rgb, { raw: { width: W, height: H, channels: 3 } })
    .png()
    .toFile(path);
}

/**
 * Three images. a.png: a rectangle as a polygon (GT = its box: IoU ~1) and an ellipse as
 * compressed RLE (GT = the ellipse inscribed in its box: IoU ~pi/4). b.png: a rectangle as
 * uncompressed RLE, a crowd annotation and one too small to hold a pixel (both skipped). c.png: a
 * rectangle (polygon), left out by --limit 2.
 */
async function buildDataset(dir: string): Promise<{ annotations: string; images: string; ellipseIoU: number }> {
  const images = join(dir, "images");
  await mkdir(images, { recursive: true });
  const rectA = rectMask(W, H, 8, 12, 48, 60);
  const ellA = ellipseMask(W, H, 60, 10, 120, 90);
  const rectB = rectMask(W, H, 20, 20, 100, 70);
  const rectC = rectMask(W, H, 30, 30, 60, 60);
  await writeImage(join(images, "a.png"), [rectA, ellA]);
  await writeImage(join(images, "b.png"), [rectB]);
  await writeImage(join(images, "c.png"), [rectC]);
  const ellRle = encodeRle(ellA);
  const coco = {
    images: [
      { id: 1, file_name: "a.png", width: W, height: H },
      { id: 2, file_name: "b.png", width: W, height: H },
      { id: 3, file_name: "c.png", width: W, height: H },
    ],
    annotations: [
      { id: 10, image_id: 1, category_id: 1, bbox: [8, 12, 40, 48], segmentation: [[8, 12, 48, 12, 48, 60, 8, 60]], iscrowd: 0 },
      { id: 11, image_id: 1, category_id: 2, bbox: [60, 10, 60, 80], segmentation: { size: ellRle.size, counts: encodeRleString(ellRle.counts) }, iscrowd: 0 },
      { id: 20, image_id: 2, category_id: 1, bbox: [20, 20, 80, 50], segmentation: encodeRle(rectB), iscrowd: 0 },
      { id: 21, image_id: 2, category_id: 1, bbox: [0, 0, 128, 96], segmentation: encodeRle(rectB), iscrowd: 1 },
      { id: 22, image_id: 2, category_id: 2, bbox: [0, 0, 0.4, 0.4], segmentation: [[0, 0, 0.4, 0, 0, 0.4]], iscrowd: 0 },
      { id: 30, image_id: 3, category_id: 1, bbox: [30, 30, 30, 30], segmentation: [[30, 30, 60, 30, 60, 60, 30, 60]], iscrowd: 0 },
    ],
    categories: [
      { id: 1, name: "box" },
      { id: 2, name: "ellipse" },
    ],
  };
  const annotations = join(dir, "instances.json");
  await writeFile(annotations, JSON.stringify(coco));
  return { annotations, images, ellipseIoU: area(ellA) / (60 * 80) };
}

function checkReport(report: EvalReport, models: number, ellipseIoU: number): void {
  assert.equal(report.imagesEvaluated, 2);
  assert.equal(report.instances, 3);
  assert.deepEqual(report.skipped, { crowd: 1, tooSmall: 1, emptyBox: 0 });
  assert.equal(report.models.length, models);
  assert.equal(report.rows.length, 3 * models);
  for (const m of report.models) {
    assert.equal(m.instances, 3);
    assert.equal(m.images, 2);
    for (const v of [m.mIoU, m.boundaryF]) assert.ok(v >= 0 && v <= 1, `${m.model}: ${v}`);
    assert.ok(m.msPerImage > 0);
  }
  const row = (id: number) => report.rows.find((r) => r.annotationId === id)!;
  for (const r of report.rows) for (const v of [r.iou, r.boundaryF, r.boundaryPrecision, r.boundaryRecall]) assert.ok(v >= 0 && v <= 1);
  // The tiny model's mask is the box: box-shaped ground truth ~1, the inscribed ellipse its area share.
  // Measured: exactly 1 and exactly the ellipse's share of its box (boxes on whole pixels).
  assert.ok(row(10).iou > 0.99, `rectangle (polygon) IoU ${row(10).iou}`);
  assert.ok(row(20).iou > 0.99, `rectangle (uncompressed RLE) IoU ${row(20).iou}`);
  assert.ok(Math.abs(row(11).iou - ellipseIoU) < 0.005, `ellipse IoU ${row(11).iou}, expected ${ellipseIoU}`);
  assert.ok(Math.abs(ellipseIoU - Math.PI / 4) < 0.02);
  assert.ok(row(10).boundaryF > 0.97);
  assert.ok(row(11).boundaryF < row(10).boundaryF);
  assert.equal(row(11).category, "ellipse");
  assert.deepEqual(row(10).box, [8, 12, 48, 60]);
  const first = report.models[0]!;
  assert.ok(Math.abs(first.mIoU - (row(10).iou + row(11).iou + row(20).iou) / 3) < 1e-9);
}

test("eval end to end with the tiny SAM model: one row per instance, the values the box-shaped masks predict", async () => {
  const dir = await scratchDir("eval-run");
  const { annotations, images, ellipseIoU } = await buildDataset(dir);
  const { sam } = await tinyModels();
  const report = await runEval({ annotations, images, models: [sam], limit: 2, download: false });
  checkReport(report, 1, ellipseIoU);
  assert.match(formatEvalTable(report), /mIoU/);
  const all = await runEval({ annotations, images, models: [sam], download: false });
  assert.equal(all.imagesEvaluated, 3);
  assert.ok(all.rows.find((r) => r.annotationId === 30)!.iou > 0.97);
});

const cli = (args: string[]) => runMaskfleet(["eval", ...args]);

test("maskfleet eval: a table and a JSON report for two models; bad inputs are one line and a non-zero exit", async () => {
  const dir = await scratchDir("eval-cli");
  const { annotations, images, ellipseIoU } = await buildDataset(dir);
  const { sam } = await tinyModels();
  const copy = join(dir, "sam-copy");
  await cp(sam, copy, { recursive: true });
  const out = join(dir, "out", "report.json");
  const r = await cli([annotations, "--images", images, "--model", sam, copy, "--limit", "2", "--out", out, "--threads", "1", "--no-progress"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /model\s+ep\s+images\s+instances\s+mIoU\s+boundary F\s+ms\/image/);
  const report = JSON.parse(await readFile(out, "utf8")) as EvalReport;
  checkReport(report, 2, ellipseIoU);
  assert.deepEqual(
    report.models.map((m) => m.model),
    [sam, copy],
  );
  assert.ok(r.stdout.includes(copy));

  const missingImage = join(dir, "missing.json");
  const coco = JSON.parse(await readFile(annotations, "utf8")) as { images: { file_name: string }[] };
  coco.images[1]!.file_name = "nope.png";
  await writeFile(missingImage, JSON.stringify(coco));
  const badJson = join(dir, "bad.json");
  await writeFile(badJson, "{ not json");
  for (const [args, code, message] of [
    [[badJson, "--images", images, "--model", sam], 2, /bad\.json: not valid JSON/],
    [[missingImage, "--images", images, "--model", sam], 2, /missing\.json: images\[1\]\.file_name: cannot read .*nope\.png: ENOENT/],
    [[annotations, "--images", images, "--model", join(dir, "no-such-model"), "--no-download"], 1, /no-such-model/],
    // --sam-model, as in run (--model, its earlier name here, is the Bedrock model elsewhere).
    [[annotations, "--images", images, "--sam-model", join(dir, "no-such-sam"), "--no-download"], 1, /no-such-sam/],
    [[annotations, "--images", images], 2, /^maskfleet: required option '--sam-model <spec\.\.\.>' not specified/],
  ] as const) {
    const bad = await cli([...args]);
    assert.equal(bad.code, code, bad.stderr);
    assert.match(bad.stderr, message);
    assert.doesNotMatch(bad.stderr, /\n\s+at /, "no stack trace");
  }
});
