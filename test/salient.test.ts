/**
 * Target auto with a salient-object model (format "salient"): the tiny RMBG- and BiRefNet-shaped
 * graphs (test/support/onnx/make-tiny-salient.ts: real tensor names and shapes, a soft mask of what differs in
 * colour from the top row) through the real loader and processing, the SAM refinement with the
 * salient box, the composite blend with the soft alpha, and one fleet run.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import sharp from "sharp";
import { resolveConfig, fromEnv } from "../src/config/config.js";
import { ModelError } from "../src/runtime/errors.js";
import { imageIdOf } from "../src/pipeline/jobs.js";
import { pickImageOptions } from "../src/config/image-options.js";
import { maskStats } from "../src/imaging/mask-ops.js";
import type { Box, Mask, RgbImage } from "../src/imaging/types.js";
import { discoverInputs } from "../src/producer/discover.js";
import { enqueueImages } from "../src/producer/enqueue.js";
import { waitForRun } from "../src/runs/status.js";
import { startFleet, type Fleet } from "../src/fleet/fleet.js";
import { compositeBackground } from "../src/generators/composite.js";
import { refineBandPx, SalientModel, SalientSegmenter } from "../src/segmenters/salient.js";
import { usesSalient } from "../src/pipeline/jobs.js";
import type { SegmentResult } from "../src/segmenters/segmenter.js";
import { makeTinySalient } from "./support/onnx/make-tiny-salient.js";
import { freshRedis, scratchDir, tinyModels, runImages } from "./helpers.js";

const W = 300;
const H = 200;
/** The object: a dark red ellipse centred at (150, 110), radii 80 x 50, on light grey. */
const ELLIPSE = { cx: 150, cy: 110, rx: 80, ry: 50 };
const BG: [number, number, number] = [0xd0, 0xd0, 0xd0];

function ellipseSvg(): Buffer {
  const { cx, cy, rx, ry } = ELLIPSE;
  return Buffer.from(
    `<svg width="${W}" height="${H}"><rect width="100%" height="100%" fill="#d0d0d0"/><ellipse cx="${cx}" cy="${cy}" rx="${rx}" ry="${ry}" fill="#a01010"/></svg>`,
  );
}

async function ellipseImage(): Promise<RgbImage> {
  const { data } = await sharp(ellipseSvg()).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: W, height: H };
}

const at = (m: Mask, x: number, y: number) => m.data[y * m.width + x] as number;
const softCount = (m: Mask) => m.data.filter((v) => v > 0 && v < 255).length;

describe("salient-object models", () => {
  let dir: string;
  let rmbg: string;
  let birefnet: string;
  let image: RgbImage;

  before(async () => {
    dir = await scratchDir("salient");
    rmbg = await makeTinySalient(dir, "rmbg");
    birefnet = await makeTinySalient(dir, "birefnet");
    image = await ellipseImage();
  });

  it("gives a soft alpha that follows the object (probabilities and logits alike)", async () => {
    const model = await SalientModel.load(rmbg);
    const logits = await SalientModel.load(birefnet);
    try {
      const { alpha } = await model.predict(image);
      assert.deepEqual([alpha.width, alpha.height], [W, H], "the photo's size");
      assert.equal(at(alpha, ELLIPSE.cx, ELLIPSE.cy), 255, "object centre");
      assert.equal(at(alpha, 5, 5), 0, "background corner");
      assert.equal(at(alpha, 290, 190), 0, "background corner");
      // The object region is the ellipse: area within 3 %, box within 2 px.
      const stats = maskStats(alpha);
      const area = Math.PI * ELLIPSE.rx * ELLIPSE.ry;
      assert.ok(Math.abs(stats.area - area) / area < 0.03, `area ${stats.area} vs ${area.toFixed(0)}`);
      const box = stats.bbox as Box;
      for (const [got, want] of [
        [box.x0, 70],
        [box.y0, 60],
        [box.x1, 230],
        [box.y1, 160],
      ] as const)
        assert.ok(Math.abs(got - want) <= 2, `bbox ${JSON.stringify(box)}`);
      // Soft along the boundary, and only there.
      const soft = softCount(alpha);
      assert.ok(soft > 300, `${soft} soft pixels along the edge`);
      for (let i = 0; i < alpha.data.length; i++) {
        const v = alpha.data[i] as number;
        if (v === 0 || v === 255) continue;
        const x = i % W;
        const y = Math.floor(i / W);
        const r = Math.hypot((x + 0.5 - ELLIPSE.cx) / ELLIPSE.rx, (y + 0.5 - ELLIPSE.cy) / ELLIPSE.ry);
        assert.ok(Math.abs(r - 1) < 0.12, `soft pixel (${x}, ${y}) = ${v} is near the edge`);
      }
      // The logits variant (sigmoid in the loader) gives the same mask.
      const { alpha: fromLogits } = await logits.predict(image);
      let maxDiff = 0;
      for (let i = 0; i < alpha.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs((alpha.data[i] as number) - (fromLogits.data[i] as number)));
      assert.ok(maxDiff <= 1, `probabilities vs logits differ by ${maxDiff}`);
    } finally {
      await model.close();
      await logits.close();
    }
  });

  it("refuses a wrong file at load, naming the missing input, and a model without its preprocessing", async () => {
    const { sam } = await tinyModels();
    const wrong = join(dir, "wrong");
    await mkdir(wrong, { recursive: true });
    await writeFile(
      join(wrong, "model.json"),
      JSON.stringify({ format: "salient", files: { model: join(sam, "decoder.onnx") }, preprocess: { mean: [0.5, 0.5, 0.5], std: [1, 1, 1], output: "probability" } }),
    );
    await assert.rejects(
      SalientModel.load(wrong),
      (e: unknown) => e instanceof ModelError && /decoder\.onnx is not a salient-object model .*input "input" missing \(it has image_embeddings/.test(e.message),
    );
    const named = join(dir, "named");
    await mkdir(named, { recursive: true });
    await writeFile(
      join(named, "model.json"),
      JSON.stringify({
        format: "salient",
        files: { model: join(rmbg, "model.onnx") },
        preprocess: { mean: [0.5, 0.5, 0.5], std: [1, 1, 1], output: "probability", input: "pixel_values" },
      }),
    );
    await assert.rejects(SalientModel.load(named), (e: unknown) => e instanceof ModelError && /input "pixel_values" missing \(it has input\)/.test(e.message));
    await assert.rejects(SalientModel.load(join(rmbg, "model.onnx")), (e: unknown) => e instanceof ModelError && /needs its preprocessing/.test(e.message));
    const sized = join(dir, "sized");
    await mkdir(sized, { recursive: true });
    await writeFile(
      join(sized, "model.json"),
      JSON.stringify({
        format: "salient",
        files: { model: join(rmbg, "model.onnx") },
        preprocess: { size: [512, 512], mean: [0.5, 0.5, 0.5], std: [1, 1, 1], output: "probability" },
      }),
    );
    await assert.rejects(SalientModel.load(sized), /preprocess\.size says 512 x 512/);
  });

  it("refines with SAM prompted by the salient mask's box: SAM inside, the soft edge kept in a band", async () => {
    const model = await SalientModel.load(rmbg);
    const prompts: Box[][] = [];
    // A stand-in SAM: the box it is given, filled (the tiny SAM decoder does the same).
    const fakeSam = {
      name: "fake-sam",
      async segment(img: RgbImage, boxes: Box[]): Promise<SegmentResult> {
        prompts.push(boxes);
        const data = new Uint8Array(img.width * img.height);
        const b = boxes[0] as Box;
        for (let y = b.y0; y < b.y1; y++) data.fill(255, y * img.width + b.x0, y * img.width + b.x1);
        return { masks: [{ data, width: img.width, height: img.height }], scores: [0.9], timings: { preprocessMs: 0, encodeMs: 0, decodeMs: 0, postprocessMs: 0 } };
      },
    };
    try {
      const { alpha } = await model.predict(image);
      const refined = new SalientSegmenter(model, fakeSam);
      assert.equal(refined.name, `${rmbg}+fake-sam`);
      const out = await refined.segment(image);
      assert.equal(prompts.length, 1, "SAM ran once");
      assert.deepEqual(prompts[0], [maskStats(alpha).bbox], "SAM got the salient mask's box");
      const box = prompts[0]?.[0] as Box;
      assert.ok(Math.abs(box.x0 - 70) <= 2 && Math.abs(box.x1 - 230) <= 2 && Math.abs(box.y0 - 60) <= 2 && Math.abs(box.y1 - 160) <= 2, JSON.stringify(box));
      const merged = out.masks[0] as Mask;
      const band = refineBandPx(W, H);
      assert.equal(band, 4);
      // Deep inside SAM's box (even where the salient model says background): SAM decides.
      assert.equal(at(alpha, box.x0 + 6, box.y0 + 6), 0);
      assert.equal(at(merged, box.x0 + 6, box.y0 + 6), 255);
      // Far outside: background.
      assert.equal(at(merged, 10, 10), 0);
      // Within the band around SAM's boundary: the salient alpha, soft values included.
      for (const [x, y] of [
        [box.x0 + 1, box.y0 + 1],
        [ELLIPSE.cx, box.y0],
        [box.x0, ELLIPSE.cy],
      ] as const)
        assert.equal(at(merged, x, y), at(alpha, x, y), `(${x}, ${y})`);
      assert.ok(softCount(merged) > 50, "soft edge kept");
      assert.equal(out.scores[0], 0.9);
      // Without SAM (salientRefine false): the salient alpha as it is.
      const plain = await new SalientSegmenter(model).segment(image);
      assert.deepEqual(plain.masks[0]?.data, alpha.data);
    } finally {
      await model.close();
    }
  });

  it("composites through the soft alpha: an edge pixel is a blend", async () => {
    const model = await SalientModel.load(rmbg);
    try {
      const { alpha } = await model.predict(image);
      const out = await compositeBackground(image, alpha, { background: { kind: "color", rgb: [0, 0, 255] }, featherPx: 0, mode: "outpaint" });
      let checked = 0;
      for (let i = 0; i < alpha.data.length && checked < 20; i++) {
        const a = alpha.data[i] as number;
        if (a < 60 || a > 195) continue;
        const fg = [image.data[i * 3], image.data[i * 3 + 1], image.data[i * 3 + 2]] as number[];
        const bg = [0, 0, 255];
        for (let c = 0; c < 3; c++) {
          const want = Math.round(((fg[c] as number) * a + (bg[c] as number) * (255 - a)) / 255);
          assert.ok(Math.abs((out.data[i * 3 + c] as number) - want) <= 1, `pixel ${i} channel ${c}`);
        }
        // Neither the photo nor the background: a blend.
        assert.ok(out.data[i * 3 + 2] !== fg[2] && out.data[i * 3 + 2] !== 255);
        checked++;
      }
      assert.equal(checked, 20);
    } finally {
      await model.close();
    }
  });

  it("config: salientModel from a flag's key or MASKFLEET_SALIENT_MODEL; only target auto uses it", () => {
    assert.equal(fromEnv({ MASKFLEET_SALIENT_MODEL: "birefnet-lite", MASKFLEET_SALIENT_REFINE: "false" }).salientModel, "birefnet-lite");
    const c = resolveConfig({ target: "auto", salientModel: "rmbg-1.4", salientRefine: false });
    assert.equal(c.salientModel, "rmbg-1.4");
    assert.equal(c.salientRefine, false);
    assert.equal(resolveConfig({}).salientModel, undefined, "default: none (SAM on the whole image)");
    assert.equal(usesSalient({ target: "auto", salientModel: "x" }), true);
    assert.equal(usesSalient({ target: "face", salientModel: "x" }), false);
    assert.equal(usesSalient({ target: "auto" }), false);
    // Unset, the new keys leave image ids (and so existing runs' outputs) unchanged.
    const opts = pickImageOptions(resolveConfig({}));
    const { salientModel: _m, salientRefine: _r, ...before } = opts;
    assert.equal(imageIdOf(Buffer.from("x"), "out", opts), imageIdOf(Buffer.from("x"), "out", before as typeof opts));
    assert.notEqual(imageIdOf(Buffer.from("x"), "out", pickImageOptions(resolveConfig({ salientModel: "rmbg-1.4" }))), imageIdOf(Buffer.from("x"), "out", opts));
  });
});

describe("fleet: target auto with a salient model", () => {
  let fleet: Fleet | undefined;

  after(async () => {
    await fleet?.close();
  });

  it("writes a soft mask.png, a pure black/white Bedrock mask, a soft cutout and unfeathered composites", async () => {
    const redisUrl = await freshRedis(1);
    const models = await tinyModels();
    const dir = await scratchDir("salient-fleet");
    const salient = await makeTinySalient(dir, "birefnet");
    const inputDir = join(dir, "in");
    const outDir = join(dir, "out");
    await mkdir(inputDir, { recursive: true });
    await sharp(ellipseSvg()).removeAlpha().png().toFile(join(inputDir, "ellipse.png"));
    const config = resolveConfig({
      target: "auto",
      samModel: models.sam,
      salientModel: salient,
      out: outDir,
      redisUrl,
      prompts: ["studio white background"],
      background: "#ffffff",
      featherPx: 4,
      attempts: 1,
    });
    fleet = startFleet(config, ["detect", "mask", "generate", "finalize"]);
    const items = discoverInputs([inputDir]);
    await enqueueImages(fleet.ctx.redis, config, "salient", items);
    const status = await waitForRun(fleet.ctx.redis, "salient", { intervalMs: 200, timeoutMs: 60_000 });
    assert.equal(status.finished, 1);
    const [img] = (await runImages(fleet.ctx.redis, "salient", outDir)).values();
    assert.ok(img);
    assert.equal(img.failedStage, undefined, img.reason);
    const out = join(outDir, img.outPrefix);

    const grey = async (file: string, channel: 0 | 1 | 2 | 3 = 0) => {
      const { data, info } = await sharp(join(out, file)).extractChannel(channel).raw().toBuffer({ resolveWithObject: true });
      return { data: new Uint8Array(data), width: info.width, height: info.height };
    };
    const mask = await grey("mask.png");
    assert.equal((await sharp(join(out, "mask.png")).metadata()).channels, 1, "8-bit grey");
    assert.deepEqual([mask.width, mask.height], [W, H]);
    assert.equal(at(mask, ELLIPSE.cx, ELLIPSE.cy), 255);
    assert.equal(at(mask, 5, 5), 0);
    assert.ok(softCount(mask) > 50, "mask.png keeps the soft edge");

    const { data: bedrock } = await sharp(join(out, "mask-bedrock.png")).raw().toBuffer({ resolveWithObject: true });
    assert.ok(
      bedrock.every((v) => v === 0 || v === 255),
      "Bedrock mask: pure black and white",
    );
    for (let i = 0; i < mask.data.length; i++) assert.equal(bedrock[i * 3], (mask.data[i] as number) >= 128 ? 0 : 255);

    const cutoutAlpha = await grey("cutout.png", 3);
    assert.deepEqual(cutoutAlpha.data, mask.data, "the cutout's alpha is the soft mask");

    const info = JSON.parse(await readFile(join(out, "mask.json"), "utf8"));
    assert.equal(info.model, `${salient}+${models.sam}`, "refined with SAM by default");

    // The cutout's colours in the soft edge are the estimated foreground: nearer the ellipse's red
    // than the photo's mix of red and grey there (where alpha is 255, the photo's own pixel).
    const photo = await ellipseImage();
    const { data: cutout } = await sharp(join(out, "cutout.png")).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const RED = [0xa0, 0x10, 0x10];
    let fromRed = { cutout: 0, photo: 0 };
    for (let i = 0; i < mask.data.length; i++) {
      const a = mask.data[i] as number;
      if (a === 255) assert.deepEqual([...cutout.subarray(i * 3, i * 3 + 3)], [...photo.data.subarray(i * 3, i * 3 + 3)]);
      if (a === 0 || a === 255) continue;
      for (let c = 0; c < 3; c++) {
        fromRed = { cutout: fromRed.cutout + Math.abs(cutout[i * 3 + c]! - RED[c]!), photo: fromRed.photo + Math.abs(photo.data[i * 3 + c]! - RED[c]!) };
      }
    }
    assert.ok(fromRed.cutout < fromRed.photo / 2, `edge colours: ${JSON.stringify(fromRed)}`);

    // The composite blends those colours with mask.png as it is (no feathering on top of the soft edge).
    const manifest = JSON.parse(await readFile(join(out, "manifest.json"), "utf8"));
    assert.equal(manifest.results.length, 1);
    const { data: result } = await sharp(join(outDir, manifest.results[0].key)).raw().toBuffer({ resolveWithObject: true });
    let edges = 0;
    for (let i = 0; i < mask.data.length; i++) {
      const a = mask.data[i] as number;
      if (a === 0 || a === 255) continue;
      for (let c = 0; c < 3; c++) {
        const want = Math.round(((cutout[i * 3 + c] as number) * a + 255 * (255 - a)) / 255);
        assert.ok(Math.abs((result[i * 3 + c] as number) - want) <= 1, `edge pixel ${i}: ${result[i * 3 + c]} vs ${want}`);
      }
      edges++;
    }
    assert.ok(edges > 50);
    // Away from the edge: the photo inside, the background outside.
    const centre = (ELLIPSE.cy * W + ELLIPSE.cx) * 3;
    assert.deepEqual([...result.subarray(centre, centre + 3)], [...photo.data.subarray(centre, centre + 3)]);
    assert.deepEqual([...result.subarray(0, 3)], [255, 255, 255]);
    assert.deepEqual(BG, [...photo.data.subarray(0, 3)]);
  });
});
