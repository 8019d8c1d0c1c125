/**
 * SAM pre/post-processing against known numbers, against a reference of PIL's BILINEAR resize
 * (what segment_anything's ResizeLongestSide uses through torchvision), and against
 * transformers.js's SamImageProcessor on the same inputs.
 *
 * Where we and transformers.js differ on purpose (checked below, not hidden by a tolerance):
 * - sizes: transformers.js floors the resized side, Meta rounds (int(side * scale + 0.5));
 * - resampling: transformers.js (Node) resizes with sharp.affine on a corner-aligned grid, PIL on
 *   a half-pixel grid (rocket.jpg: mean 1.2 grey levels apart); so resizing is checked against the
 *   PIL reference here, and transformers.js on normalisation, padding, boxes and mask upscaling.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import sharp from "sharp";
import { env, RawImage, SamImageProcessor, Tensor } from "@huggingface/transformers";
import { normalizePadChw, resizeLongestSide, samResizeShape, scaleBox, upscaleMask, upscaleMaskLogits } from "../src/segmenters/sam-processing.js";
import type { RgbImage } from "../src/imaging/types.js";
import { repoRoot } from "./helpers.js";

env.allowRemoteModels = false;

/** facebook/sam-vit-base's preprocessor_config.json (ImageNet mean/std on 0-1 = Meta's on 0-255). */
const samVitBaseConfig = {
  do_convert_rgb: true,
  do_normalize: true,
  do_pad: true,
  do_rescale: true,
  do_resize: true,
  image_mean: [0.485, 0.456, 0.406],
  image_std: [0.229, 0.224, 0.225],
  pad_size: { height: 1024, width: 1024 },
  resample: 2,
  rescale_factor: 1 / 255,
  size: { longest_edge: 1024 },
};
const processor = new SamImageProcessor(samVitBaseConfig as unknown as ConstructorParameters<typeof SamImageProcessor>[0]);

async function photo(name: string): Promise<RgbImage> {
  const { data, info } = await sharp(join(repoRoot, "samples", "photos", name))
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height };
}

/** PIL's ImagingResample with the BILINEAR (triangle) filter, in float: the reference resize. */
function pilBilinear(img: RgbImage, outW: number, outH: number): Float32Array {
  const pass = (src: Float32Array, inLen: number, rows: number, outLen: number): Float32Array => {
    // Resamples along rows of `src` ([rows][inLen][3]) and writes transposed ([outLen][rows][3]).
    const out = new Float32Array(outLen * rows * 3);
    const scale = inLen / outLen;
    const support = Math.max(scale, 1);
    for (let o = 0; o < outLen; o++) {
      const center = (o + 0.5) * scale;
      const lo = Math.max(Math.floor(center - support + 0.5), 0);
      const hi = Math.min(Math.floor(center + support + 0.5), inLen);
      const w: number[] = [];
      for (let i = lo; i < hi; i++) w.push(Math.max(0, 1 - Math.abs((i - center + 0.5) / support)));
      const total = w.reduce((a, b) => a + b, 0);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < 3; c++) {
          let acc = 0;
          for (let k = 0; k < w.length; k++) acc += src[(r * inLen + lo + k) * 3 + c]! * w[k]!;
          out[(o * rows + r) * 3 + c] = acc / total;
        }
      }
    }
    return out;
  };
  const horizontal = pass(Float32Array.from(img.data), img.width, img.height, outW); // [outW][H]
  return pass(horizontal, img.height, outW, outH); // [outH][outW]
}

test("resized size follows ResizeLongestSide.get_preprocess_shape", () => {
  const cases: [number, number, number, number][] = [
    [640, 427, 1024, 683],
    [427, 640, 683, 1024],
    [600, 400, 1024, 683], // 682.67 rounds up (transformers.js floors it to 682)
    [1000, 333, 1024, 341], // 340.99 rounds up
    [4000, 3000, 1024, 768],
    [1024, 1024, 1024, 1024],
    [100, 5, 1024, 51],
    [1, 1, 1024, 1024],
  ];
  for (const [w, h, ew, eh] of cases) assert.deepEqual(samResizeShape({ width: w, height: h }), { width: ew, height: eh }, `${w}x${h}`);
});

// Pillow itself rounds each pass to 8 bits with 22-bit fixed-point weights, so it lies within one
// level of this float model of its filter; test/pillow-resize.test.ts checks Pillow's bytes exactly.
test("resize follows PIL's bilinear filter when enlarging and when shrinking", async () => {
  for (const [name, maxLevels, meanLevels] of [
    ["rocket.jpg", 1, 0.3], // 640x427 -> 1024x683
    ["retina.jpg", 1, 0.3], // 1411 -> 1024, antialiased
  ] as const) {
    const img = await photo(name);
    const resized = await resizeLongestSide(img);
    assert.deepEqual({ width: resized.width, height: resized.height }, samResizeShape(img));
    const ref = pilBilinear(img, resized.width, resized.height);
    let max = 0;
    let sum = 0;
    for (let i = 0; i < ref.length; i++) {
      const d = Math.abs(resized.data[i]! - ref[i]!);
      max = Math.max(max, d);
      sum += d;
    }
    assert.ok(max <= maxLevels, `${name}: max difference ${max} grey levels`);
    assert.ok(sum / ref.length <= meanLevels, `${name}: mean difference ${sum / ref.length}`);
  }
});

test("normalisation of known pixels and zero padding", () => {
  const img: RgbImage = { data: Uint8Array.from([255, 0, 128, 123, 116, 103, 0, 255, 255, 10, 20, 30]), width: 2, height: 2 };
  const t = normalizePadChw(img, 4);
  const at = (c: number, y: number, x: number) => t[c * 16 + y * 4 + x]!;
  assert.ok(Math.abs(at(0, 0, 0) - (255 - 123.675) / 58.395) < 1e-6);
  assert.ok(Math.abs(at(1, 0, 0) - (0 - 116.28) / 57.12) < 1e-6);
  assert.ok(Math.abs(at(2, 0, 0) - (128 - 103.53) / 57.375) < 1e-6);
  assert.ok(Math.abs(at(0, 0, 1) - (123 - 123.675) / 58.395) < 1e-6);
  assert.ok(Math.abs(at(2, 1, 1) - (30 - 103.53) / 57.375) < 1e-6);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) if (x >= 2 || y >= 2) assert.equal(at(c, y, x), 0, `pad ${c},${y},${x}`);
  }
  assert.throws(() => normalizePadChw({ data: new Uint8Array(5 * 5 * 3), width: 5, height: 5 }, 4), RangeError);
});

test("normalisation and padding equal transformers.js's SamImageProcessor", async () => {
  // An image already 1024 on its longest side: transformers.js does not resample it, so this
  // compares rescale + normalise + pad + CHW exactly.
  const img = await resizeLongestSide(await photo("rocket.jpg"));
  const out = (await processor(new RawImage(img.data, img.width, img.height, 3))) as { pixel_values: Tensor; reshaped_input_sizes: number[][] };
  assert.deepEqual(out.pixel_values.dims, [1, 3, 1024, 1024]);
  assert.deepEqual(out.reshaped_input_sizes, [[683, 1024]]);
  const theirs = out.pixel_values.data as Float32Array;
  const ours = normalizePadChw(img);
  let max = 0;
  for (let i = 0; i < ours.length; i++) max = Math.max(max, Math.abs(ours[i]! - theirs[i]!));
  // float32 rounding of (x / 255 - mean) / std against (x - 255 * mean) / (255 * std)
  assert.ok(max < 1e-5, `max difference ${max}`);
});

test("whole preprocessing stays close to transformers.js (differences: sizes floored, corner-aligned resize)", async () => {
  const img = await photo("rocket.jpg"); // 640x427: both round to 1024x683
  const out = (await processor(new RawImage(img.data, img.width, img.height, 3))) as { pixel_values: Tensor; reshaped_input_sizes: number[][] };
  assert.deepEqual(out.reshaped_input_sizes, [[683, 1024]]);
  const theirs = out.pixel_values.data as Float32Array;
  const ours = normalizePadChw(await resizeLongestSide(img));
  let sum = 0;
  let n = 0;
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 682; y++) {
      // transformers.js's last row and column are blended with black by sharp.affine: skipped.
      for (let x = 0; x < 1023; x++) {
        const i = c * 1024 * 1024 + y * 1024 + x;
        sum += Math.abs(ours[i]! - theirs[i]!) * 57.6;
        n++;
      }
    }
  }
  // Measured 1.2 grey levels (the half-pixel shift of the sampling grid on a textured photo).
  assert.ok(sum / n < 2, `mean difference ${sum / n} grey levels`);
  for (let i = 683 * 1024; i < 1024 * 1024; i++) assert.equal(ours[i], 0);
});

test("box corners scale like transformers.js's reshape_input_points", () => {
  const original = { width: 640, height: 427 };
  const resized = samResizeShape(original);
  const boxes = [
    { x0: 10, y0: 20, x1: 110, y1: 220 },
    { x0: 0, y0: 0, x1: 640, y1: 427 },
  ];
  const theirs = processor.reshape_input_points([boxes.map((b) => [b.x0, b.y0, b.x1, b.y1])], [[427, 640]], [[resized.height, resized.width]], true);
  const ours = boxes.flatMap((b) => scaleBox(b, original, resized));
  assert.deepEqual(theirs.dims, [1, 2, 4]);
  ours.forEach((v, i) => assert.ok(Math.abs(v - (theirs.data as Float32Array)[i]!) < 1e-4, `${i}: ${v}`));
  assert.deepEqual(scaleBox(boxes[1]!, original, resized), [0, 0, 1024, 683]);
  assert.ok(Math.abs(scaleBox(boxes[0]!, original, resized)[1] - (20 * 683) / 427) < 1e-9);
});

/** Smooth logits with many sign changes: sin/cos on the 256 grid. */
function waveLogits(): Float32Array {
  const low = new Float32Array(256 * 256);
  for (let i = 0; i < 256; i++) for (let j = 0; j < 256; j++) low[i * 256 + j] = 3 * Math.sin(i / 7) + 2 * Math.cos(j / 11) - 0.5;
  return low;
}

test("mask upscaling equals transformers.js's post_process_masks (float and binarised)", async () => {
  for (const original of [
    { width: 640, height: 427 },
    { width: 300, height: 451 },
    { width: 2000, height: 1500 },
  ]) {
    const resized = samResizeShape(original);
    const low = waveLogits();
    const [ref] = (await processor.post_process_masks(new Tensor("float32", low, [1, 1, 1, 256, 256]), [[original.height, original.width]], [[resized.height, resized.width]], {
      binarize: false,
    })) as Tensor[];
    assert.deepEqual(ref!.dims, [1, 1, original.height, original.width]);
    const refData = ref!.data as Float32Array;
    const ours = upscaleMaskLogits(low, 256, resized, original);
    let max = 0;
    for (let i = 0; i < ours.length; i++) max = Math.max(max, Math.abs(ours[i]! - refData[i]!));
    assert.ok(max < 1e-4, `${original.width}x${original.height}: max difference ${max}`);

    const mask = upscaleMask(low, 256, resized, original);
    let differ = 0;
    for (let i = 0; i < mask.length; i++) if ((mask[i] === 255) !== refData[i]! > 0) differ++;
    assert.ok(differ <= mask.length * 1e-5, `${differ} pixels differ after thresholding`);
    assert.ok(mask.every((v) => v === 0 || v === 255));
  }
});

test("mask upscaling: known cases", () => {
  const original = { width: 640, height: 427 };
  const resized = samResizeShape(original);
  assert.ok(upscaleMask(new Float32Array(65536).fill(1), 256, resized, original).every((v) => v === 255));
  assert.ok(upscaleMask(new Float32Array(65536).fill(-1), 256, resized, original).every((v) => v === 0));
  // Positive left of low-res x = 128 (1024-frame x = 512, original x = 320).
  const step = new Float32Array(65536);
  for (let i = 0; i < 256; i++) for (let j = 0; j < 256; j++) step[i * 256 + j] = 128 - (j + 0.5);
  const m = upscaleMask(step, 256, resized, original);
  for (const y of [0, 200, 426]) {
    assert.equal(m[y * 640 + 319], 255);
    assert.equal(m[y * 640 + 320], 0);
  }
  assert.throws(() => upscaleMask(new Float32Array(10), 256, resized, original), RangeError);
});
