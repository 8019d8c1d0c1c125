/**
 * The mask quality score (src/imaging/mask-quality.ts) on constructed cases, and images held for review
 * by --min-mask-quality in a real fleet (real Redis, tiny SAM graphs, composite generator): held
 * images are not generated, `report` lists them, `retry --stage mask` sends them on.
 */
import assert from "node:assert/strict";
import { copyFile, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { enqueueImages } from "../src/producer/enqueue.js";
import { formatReport, runReport } from "../src/runs/report.js";
import { retryRun } from "../src/runs/retry.js";
import { runStatus, waitForRun } from "../src/runs/status.js";
import { resolveConfig } from "../src/config/config.js";
import { maskIoU } from "../src/imaging/mask-metrics.js";
import { largestPieceShare, maskQuality, softBandShare } from "../src/imaging/mask-quality.js";
import { stages } from "../src/pipeline/queues.js";
import type { Mask } from "../src/imaging/types.js";
import { stabilityScore } from "../src/segmenters/sam-common.js";
import { startFleet, type Fleet } from "../src/fleet/fleet.js";
import { freshRedis, listFiles, repoRoot, runImages, scratchDir, tinyModels } from "./helpers.js";

const side = 64;
/** Low-res logits of a disk of radius r: the signed distance to its edge times `slope` (steep = sure). */
function diskLogits(r: number, slope: number, noise = 0): Float32Array {
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  return Float32Array.from({ length: side * side }, (_, i) => (r - Math.hypot((i % side) - 32, Math.floor(i / side) - 32)) * slope + noise * rand());
}
function maskOf(logits: Float32Array): Mask {
  return { data: Uint8Array.from(logits, (v) => (v > 0 ? 255 : 0)), width: side, height: side };
}
const frame = { width: 1024, height: 1024 };

describe("mask quality on constructed cases", () => {
  it("a clean mask scores high, a fragmented one low", () => {
    const clean = diskLogits(20, 4);
    // Fragmented: the same disk, its logits shallow and noisy, so it breaks into pieces and specks.
    const fragmented = diskLogits(20, 0.1, 3);
    const q = (logits: Float32Array) =>
      maskQuality({ masks: [maskOf(logits)], predictedIoU: [0.95], stability: [stabilityScore({ logits, side, score: 0.95, rule: "single" }, frame)], final: maskOf(logits) });
    const good = q(clean);
    const bad = q(fragmented);
    assert.ok(good.score >= 0.9, `clean: ${JSON.stringify(good)}`);
    assert.equal(good.wholeness, 1);
    assert.ok(bad.score <= 0.5, `fragmented: ${JSON.stringify(bad)}`);
    assert.ok(bad.wholeness < 0.9 && bad.stability! < 0.5, JSON.stringify(bad));
  });

  it("the score is the weakest part; the soft band is described, not scored", () => {
    const m = maskOf(diskLogits(20, 4));
    assert.equal(maskQuality({ masks: [m], predictedIoU: [0.97, 0.42], stability: [0.99, 0.98], final: m }).score, 0.42);
    assert.equal(maskQuality({ masks: [m], salientAgreement: 0.3, final: m }).score, 0.3);
    const soft = { data: Uint8Array.from(m.data, (v, i) => (v === 0 && i % 2 ? 100 : v)), width: side, height: side };
    assert.ok(softBandShare(soft) > 0.5);
    assert.equal(softBandShare(m), 0);
    assert.equal(maskQuality({ masks: [m], final: soft }).score, 1);
  });

  it("largest piece share and IoU", () => {
    const two = { data: new Uint8Array(10 * 2), width: 10, height: 2 };
    two.data.fill(255, 0, 3); // 3 pixels
    two.data.fill(255, 6, 7); // 1 pixel
    assert.equal(largestPieceShare(two), 0.75);
    assert.equal(largestPieceShare({ data: new Uint8Array(4), width: 2, height: 2 }), 0);
    const a = { data: Uint8Array.from([255, 255, 0, 0]), width: 4, height: 1 };
    const b = { data: Uint8Array.from([0, 255, 255, 0]), width: 4, height: 1 };
    assert.equal(maskIoU(a, b), 1 / 3);
    assert.throws(() => maskIoU(a, two), RangeError);
  });
});

describe("--min-mask-quality: held for review, listed, sent on by retry", () => {
  let fleet: Fleet;
  let outDir: string;

  before(async () => {
    const redisUrl = await freshRedis(3);
    const models = await tinyModels();
    const dir = await scratchDir("mask-quality");
    const inputDir = await scratchDir("mask-quality/in");
    outDir = join(dir, "out");
    for (const p of ["chelsea.jpg", "coffee.jpg"]) await copyFile(join(repoRoot, "samples", "photos", p), join(inputDir, p));
    // The tiny SAM decoder predicts IoU sigmoid(mean embedding) < 1: a bar of 1 holds every image.
    const config = resolveConfig({ target: "auto", samModel: models.sam, out: outDir, redisUrl, minMaskQuality: 1, seeds: { from: 1, to: 2 } });
    fleet = startFleet(config, stages);
    await enqueueImages(
      fleet.ctx.redis,
      config,
      "held",
      ["chelsea.jpg", "coffee.jpg"].map((name) => ({ path: join(inputDir, name), name })),
    );
    await waitForRun(fleet.ctx.redis, "held", { intervalMs: 100, timeoutMs: 120_000 });
  });
  after(async () => {
    await fleet?.close();
  });

  it("held images finish without generation; mask.json has the quality; status and report list them", async () => {
    const redis = fleet.ctx.redis;
    const s = await runStatus(redis, "held", false);
    assert.deepEqual([s.finished, s.succeeded, s.failed, s.review, s.stages.mask.done, s.stages.generate.done], [2, 0, 0, 2, 2, 0]);
    const files = [...(await listFiles(outDir)).keys()];
    assert.equal(files.filter((f) => /results\//.test(f) || f.endsWith("manifest.json")).length, 0, files.join(", "));
    const images = await runImages(redis, "held", outDir);
    const info = JSON.parse(await readFile(join(outDir, images.get("chelsea.jpg")!.outPrefix, "mask.json"), "utf8")) as {
      quality: { score: number; predictedIoU: number; stability: number; wholeness: number };
    };
    assert.ok(info.quality.score < 1 && info.quality.score === Math.min(info.quality.predictedIoU, info.quality.stability, info.quality.wholeness), JSON.stringify(info.quality));
    const report = await runReport(redis, "held");
    assert.equal(report.images.review, 2);
    assert.deepEqual(report.review.map((r) => r.name).sort(), ["chelsea.jpg", "coffee.jpg"]);
    assert.ok(report.review.every((r) => r.bar === 1 && r.quality < 1));
    assert.match(formatReport(report), /2 held for review/);
    assert.match(formatReport(report), /\n {4}chelsea\.jpg: quality 0\.\d+ < 1/);
  });

  it("a plain retry leaves them held; retry --stage mask sends them on with the mask as fixed by hand", async () => {
    const redis = fleet.ctx.redis;
    assert.equal((await retryRun(redis, "held")).images, 0, "held images are not failures");
    // A reviewer fixes chelsea's mask by hand: a rectangle.
    const chelsea = join(outDir, (await runImages(redis, "held", outDir)).get("chelsea.jpg")!.outPrefix);
    const { width, height } = await sharp(join(chelsea, "mask.png")).metadata();
    const fixed = new Uint8Array(width! * height!);
    for (let y = 50; y < 200; y++) fixed.fill(255, y * width! + 100, y * width! + 300);
    await sharp(fixed, { raw: { width: width!, height: height!, channels: 1 } })
      .png()
      .toFile(join(chelsea, "mask.png"));
    const summary = await retryRun(redis, "held", { stage: "mask" });
    assert.deepEqual([summary.images, summary.requeued.mask], [2, 2]);
    await waitForRun(redis, "held", { intervalMs: 100, timeoutMs: 120_000 });
    const s = await runStatus(redis, "held", false);
    assert.deepEqual([s.finished, s.succeeded, s.review, s.stages.mask.done, s.stages.generate.done, s.stages.generate.total], [2, 2, 0, 2, 4, 4]);
    const manifest = JSON.parse(await readFile(join(outDir, (await runImages(redis, "held", outDir)).get("coffee.jpg")!.outPrefix, "manifest.json"), "utf8")) as {
      mask: { quality: { score: number } };
      results: unknown[];
    };
    assert.equal(manifest.results.length, 2);
    assert.ok(manifest.mask.quality.score < 1, "the manifest carries the mask's quality");
    assert.equal((await runReport(redis, "held")).review.length, 0);
    // What is made from the mask was made again from the fixed one.
    const alpha = await sharp(join(chelsea, "cutout.png")).extractChannel(3).raw().toBuffer();
    assert.deepEqual(new Uint8Array(alpha), fixed, "the cutout's alpha is the fixed mask");
    const bedrock = await sharp(join(chelsea, "mask-bedrock.png")).extractChannel(0).raw().toBuffer();
    assert.equal(bedrock[60 * width! + 150], 0);
    assert.equal(bedrock[10 * width! + 10], 255);
    const info = JSON.parse(await readFile(join(chelsea, "mask.json"), "utf8")) as { reviewed: boolean; stats: { area: number } };
    assert.deepEqual([info.reviewed, info.stats.area], [true, 150 * 200]);
  });
});
