import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError } from "../shared/errors.js";
import type { Mask, RgbImage } from "../shared/types.js";
import { compositeBackground, parseColor } from "../generators/composite.js";

const W = 64;
const H = 48;

/** A photo with a different value at every pixel, so "unchanged" really means unchanged. */
function photo(): RgbImage {
  const data = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) data.set([(x * 4) % 256, (y * 5) % 256, (x + y) % 256], (y * W + x) * 3);
  }
  return { data, width: W, height: H };
}

/** Object: the rectangle x 16..47, y 12..35. */
function rectMask(): Mask {
  const data = new Uint8Array(W * H);
  for (let y = 12; y < 36; y++) for (let x = 16; x < 48; x++) data[y * W + x] = 255;
  return { data, width: W, height: H };
}

const inside = (x: number, y: number): boolean => x >= 16 && x < 48 && y >= 12 && y < 36;
/** Chebyshev distance to the rectangle's edge (pixels). */
function edgeDistance(x: number, y: number): number {
  if (inside(x, y)) return Math.min(x - 16, 47 - x, y - 12, 35 - y) + 1;
  const dx = x < 16 ? 16 - x : x > 47 ? x - 47 : 0;
  const dy = y < 12 ? 12 - y : y > 35 ? y - 35 : 0;
  return Math.max(dx, dy);
}

const px = (img: RgbImage, x: number, y: number): number[] => [...img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3)];

describe("compositeBackground with a colour", () => {
  const image = photo();
  const mask = rectMask();
  const green: [number, number, number] = [10, 200, 30];

  test("outpaint: object unchanged, background exactly the colour away from the edge, edge strictly between", async () => {
    const out = await compositeBackground(image, mask, { background: { kind: "color", rgb: green }, featherPx: 2, mode: "outpaint" });
    assert.deepEqual([out.width, out.height, out.data.length], [W, H, W * H * 3]);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        if (edgeDistance(x, y) < 8) continue;
        assert.deepEqual(px(out, x, y), inside(x, y) ? px(image, x, y) : green, `pixel ${x},${y}`);
      }
    }
    // Across the left edge (x 15 | 16) on a row where the photo's red differs from the colour:
    // every channel lies strictly between the photo's and the colour's values.
    for (const x of [15, 16]) {
      const got = px(out, x, 24);
      const orig = px(image, x, 24);
      for (let c = 0; c < 3; c++) {
        if (orig[c] === green[c]) continue;
        const lo = Math.min(orig[c]!, green[c]!);
        const hi = Math.max(orig[c]!, green[c]!);
        assert.ok(got[c]! > lo && got[c]! < hi, `edge ${x} channel ${c}: ${got[c]} not strictly in (${lo}, ${hi})`);
      }
    }
  });

  test("inpaint: the reverse", async () => {
    const out = await compositeBackground(image, mask, { background: { kind: "color", rgb: green }, featherPx: 2, mode: "inpaint" });
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        if (edgeDistance(x, y) < 8) continue;
        assert.deepEqual(px(out, x, y), inside(x, y) ? green : px(image, x, y), `pixel ${x},${y}`);
      }
    }
  });

  test("featherPx 0: a hard edge, exact everywhere", async () => {
    const out = await compositeBackground(image, mask, { background: { kind: "color", rgb: green }, featherPx: 0, mode: "outpaint" });
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) assert.deepEqual(px(out, x, y), inside(x, y) ? px(image, x, y) : green);
    }
  });

  test("a soft mask value blends with integer rounding", async () => {
    const half: Mask = { data: new Uint8Array(W * H).fill(128), width: W, height: H };
    const white: RgbImage = { data: new Uint8Array(W * H * 3).fill(255), width: W, height: H };
    const out = await compositeBackground(white, half, { background: { kind: "color", rgb: [0, 0, 0] }, featherPx: 0, mode: "outpaint" });
    assert.deepEqual(px(out, 0, 0), [128, 128, 128]); // round(255 * 128 / 255)
    const inv = await compositeBackground(white, half, { background: { kind: "color", rgb: [0, 0, 0] }, featherPx: 0, mode: "inpaint" });
    assert.deepEqual(px(inv, 0, 0), [127, 127, 127]);
  });

  test("size mismatch and bad colours are refused", async () => {
    await assert.rejects(
      compositeBackground(image, { ...mask, width: H, height: W }, { background: { kind: "color", rgb: green }, featherPx: 0, mode: "outpaint" }),
      RangeError,
    );
    await assert.rejects(
      compositeBackground(image, mask, { background: { kind: "color", rgb: [0, 256, 0] }, featherPx: 0, mode: "outpaint" }),
      RangeError,
    );
  });
});

describe("compositeBackground with blur and image backgrounds", () => {
  test("blur: full size, object kept, background is a blur of the photo", async () => {
    const image = photo();
    const out = await compositeBackground(image, rectMask(), { background: { kind: "blur", sigma: 4 }, featherPx: 1, mode: "outpaint" });
    assert.deepEqual([out.width, out.height, out.data.length], [W, H, W * H * 3]);
    assert.deepEqual(px(out, 30, 24), px(image, 30, 24));
    // The photo's red channel is a sharp sawtooth (x * 4 mod 256); the blur smooths its jump at x = 0|64.
    assert.notDeepEqual(px(out, 2, 2), px(image, 2, 2));
    await assert.rejects(compositeBackground(image, rectMask(), { background: { kind: "blur", sigma: 0 }, featherPx: 0, mode: "outpaint" }), RangeError);
  });

  test("image: any size is scaled to cover and centre-cropped", async () => {
    // A wide background: left half red, right half blue. Cover-scaling a 200x50 image to 64x48
    // gives 192x48 cropped to its middle 64 columns, so the seam stays at the centre.
    const bw = 200;
    const bh = 50;
    const data = new Uint8Array(bw * bh * 3);
    for (let i = 0; i < bw * bh; i++) data.set(i % bw < bw / 2 ? [255, 0, 0] : [0, 0, 255], i * 3);
    const out = await compositeBackground(photo(), rectMask(), {
      background: { kind: "image", image: { data, width: bw, height: bh } },
      featherPx: 0,
      mode: "outpaint",
    });
    assert.deepEqual([out.width, out.height, out.data.length], [W, H, W * H * 3]);
    assert.deepEqual(px(out, 2, 2), [255, 0, 0]);
    assert.deepEqual(px(out, W - 3, 2), [0, 0, 255]);
    assert.deepEqual(px(out, 30, 24), px(photo(), 30, 24));
  });
});

describe("parseColor", () => {
  test("hex and names", () => {
    assert.deepEqual(parseColor("#fff"), [255, 255, 255]);
    assert.deepEqual(parseColor("#0A8"), [0, 170, 136]);
    assert.deepEqual(parseColor("#1e90ff"), [30, 144, 255]);
    assert.deepEqual(parseColor("  White "), [255, 255, 255]);
    assert.deepEqual(parseColor("black"), [0, 0, 0]);
    assert.deepEqual(parseColor("grey"), [128, 128, 128]);
  });

  test("bad input throws a ConfigError naming the key and the text", () => {
    for (const bad of ["", "#ff", "#ggg", "#12345", "#1234567", "fff", "rgb(1,2,3)", "notacolour"]) {
      assert.throws(
        () => parseColor(bad, "background"),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.equal(err.key, "background");
          assert.ok(err.message.startsWith(`background: ${JSON.stringify(bad)} is not a colour`), err.message);
          return true;
        },
      );
    }
  });
});
