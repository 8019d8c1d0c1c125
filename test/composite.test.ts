import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import sharp from "sharp";
import { ConfigError } from "../src/runtime/errors.js";
import { resolveConfig } from "../src/config/config.js";
import type { Mask, RgbImage } from "../src/imaging/types.js";
import { CompositeGenerator, compositeBackend, compositeBackground, parseColor } from "../src/generators/composite.js";
import type { GeneratorSettings } from "../src/generators/backend.js";
import { checkRunnable } from "../src/producer/enqueue.js";
import { repoRoot, scratchDir } from "./helpers.js";

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
    await assert.rejects(compositeBackground(image, { ...mask, width: H, height: W }, { background: { kind: "color", rgb: green }, featherPx: 0, mode: "outpaint" }), RangeError);
    await assert.rejects(compositeBackground(image, mask, { background: { kind: "color", rgb: [0, 256, 0] }, featherPx: 0, mode: "outpaint" }), RangeError);
  });
});

describe("compositeBackground with the object's estimated colours", () => {
  test("outpaint blends the kept colours under the mask; a blur background still comes from the photo", async () => {
    const image = photo();
    const kept: RgbImage = { data: new Uint8Array(W * H * 3).fill(200), width: W, height: H };
    const soft = { ...rectMask(), data: Uint8Array.from(rectMask().data, (v) => (v ? 128 : 0)) };
    const out = await compositeBackground(image, soft, { background: { kind: "color", rgb: [0, 0, 0] }, featherPx: 0, mode: "outpaint" }, kept);
    assert.deepEqual(px(out, 20, 20), [100, 100, 100], "200 x 128/255 over black");
    assert.deepEqual(px(out, 2, 2), [0, 0, 0]);
    // Through the generator: outpaint takes the request's foreground, inpaint (the photo's background is kept) the photo.
    const generator = new CompositeGenerator({ kind: "color", rgb: [0, 0, 0] });
    const request = { image, mask: soft, foreground: kept, prompt: "", seed: 0, cfgScale: 8, quality: "standard" as const, outpaintingMode: "DEFAULT" as const };
    assert.deepEqual(px(await generator.generate({ ...request, mode: "outpaint" }), 20, 20), [100, 100, 100]);
    const inpaint = await generator.generate({ ...request, mask: rectMask(), mode: "inpaint" });
    assert.deepEqual(px(inpaint, 2, 2), px(image, 2, 2), "the photo, not the foreground, where the background is kept");
    await assert.rejects(
      compositeBackground(image, soft, { background: { kind: "blur", sigma: 2 }, featherPx: 0, mode: "outpaint" }, { data: new Uint8Array(3), width: 1, height: 1 }),
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

describe("compositeBackend.check: an image background must be a readable image file, checked before any work", () => {
  let dir: string;
  const settings = (background: string, maxPixels = 100_000_000): GeneratorSettings =>
    ({ generator: "composite", modelId: "", mode: "outpaint", seeds: { from: 0, to: 0 }, prompts: ["p"], background, blurSigma: 20, maxPixels }) as GeneratorSettings;
  /** The one-line ConfigError on `background` that check gives for this file. */
  const refusal = async (background: string, maxPixels?: number): Promise<string> => {
    try {
      await compositeBackend.check(settings(background, maxPixels));
    } catch (err) {
      assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
      assert.equal(err.key, "background");
      assert.ok(!err.message.includes("\n"), err.message);
      return err.message;
    }
    assert.fail(`${background} was accepted`);
  };
  const secret = "root:$6$saltsalt$hashhashhash:19000:0:99999:7:::\n";

  before(async () => {
    dir = await scratchDir("composite-check");
    await writeFile(join(dir, "shadow"), secret);
    await writeFile(join(dir, "shadow.png"), secret);
    await writeFile(join(dir, "empty.png"), "");
    await mkdir(join(dir, "folder.png"));
    await writeFile(
      join(dir, "big.png"),
      await sharp({ create: { width: 300, height: 200, channels: 3, background: "red" } })
        .png()
        .toBuffer(),
    );
    await writeFile(
      join(dir, "tiny.png"),
      await sharp({ create: { width: 8, height: 8, channels: 3, background: "red" } })
        .png()
        .toBuffer(),
    );
    await writeFile(join(dir, "drawing.svg"), `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="red"/></svg>\n`);
    const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: "blue" } })
      .png()
      .toBuffer();
    const broken = Buffer.from(png.subarray(0, 33)); // the signature and IHDR only, its CRC spoiled
    broken[29] = broken[29]! ^ 0xff;
    await writeFile(join(dir, "broken.png"), broken);
  });

  test("colours, blur and a real photo pass", async () => {
    for (const bg of ["#ffffff", "white", "blur", join(repoRoot, "samples/photos/rocket.jpg")]) {
      await assert.doesNotReject(async () => compositeBackend.check(settings(bg)), bg);
    }
  });

  test("a text file (even with an image name) is refused by its kind and size, never its contents", async () => {
    for (const name of ["shadow", "shadow.png"]) {
      const path = join(dir, name);
      assert.equal(await refusal(path), `background: ${path}: not an image or an unsupported format (text, ${secret.length} bytes)`);
    }
  });

  test("not a regular file, empty, over the pixel limit, too small, a vector drawing, a broken header", async () => {
    assert.equal(await refusal(join(dir, "folder.png")), `background: ${join(dir, "folder.png")}: is a folder, not an image file`);
    assert.equal(await refusal("/dev/null"), "background: /dev/null: not a regular file (a device, pipe or socket), not an image file");
    assert.equal(await refusal(join(dir, "empty.png")), `background: ${join(dir, "empty.png")}: empty file (0 bytes)`);
    assert.equal(
      await refusal(join(dir, "big.png"), 50_000),
      `background: ${join(dir, "big.png")}: image is 300x200 (0.1 MP), over the 0.1 MP limit (refused before decoding, as a decompression-bomb guard)`,
    );
    await assert.doesNotReject(async () => compositeBackend.check(settings(join(dir, "big.png"), 60_000)), "at the limit");
    assert.equal(await refusal(join(dir, "tiny.png")), `background: ${join(dir, "tiny.png")}: image is 8x8 px, smaller than the 16x16 minimum`);
    assert.match(await refusal(join(dir, "drawing.svg")), /^background: .*drawing\.svg: unsupported image format "svg" \(expected JPEG, PNG, WebP, GIF, TIFF or HEIF\/AVIF\)$/);
    assert.match(await refusal(join(dir, "broken.png")), /^background: .*broken\.png: unreadable or corrupt image header \(.+\)$/);
  });

  test("a missing file keeps its message", async () => {
    assert.equal(await refusal("/nowhere/bg.png"), 'background: /nowhere/bg.png is neither a colour, "blur", nor an existing image file');
  });

  test("preflight (checkRunnable) refuses it before anything is enqueued", async () => {
    const path = join(dir, "shadow");
    await assert.rejects(
      checkRunnable(resolveConfig({ background: path, out: join(dir, "out") })),
      (err: unknown) => err instanceof ConfigError && err.message === `background: ${path}: not an image or an unsupported format (text, ${secret.length} bytes)`,
    );
  });
});
