import assert from "node:assert/strict";
import { readdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { InputError } from "../src/runtime/errors.js";
import { decodeImage, encodeJpeg, encodePng, resizeRgb, rgbaFrom, type DecodedImage } from "../src/imaging/image.js";
import type { RgbImage } from "../src/imaging/types.js";
import { BAD_FIXTURES, EXIF_STORED, GOOD_FIXTURES, writeBadImages, type FixtureId } from "./fixtures/bad-images.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dir = path.join(root, "test/.tmp/image-test");
const samples = path.join(root, "samples/photos");
let files: Record<FixtureId, string>;

before(async () => {
  await rm(dir, { recursive: true, force: true });
  files = await writeBadImages(dir);
});
after(() => rm(dir, { recursive: true, force: true }));

async function decodeFixture(id: FixtureId): Promise<DecodedImage> {
  return decodeImage(await readFile(files[id]), path.basename(files[id]));
}

function pixel(img: RgbImage, x: number, y: number): number[] {
  const i = (y * img.width + x) * 3;
  return [...img.data.subarray(i, i + 3)];
}

function assertRgb8(img: DecodedImage): void {
  assert.ok(img.data instanceof Uint8Array);
  assert.equal(img.data.length, img.width * img.height * 3);
}

describe("decodeImage refuses broken files with an InputError naming the file and the reason", () => {
  const reasons: Record<keyof typeof BAD_FIXTURES, RegExp> = {
    empty: /empty file \(0 bytes\)/,
    notAnImage: /not an image or an unsupported format \(text, 45 bytes\)$/,
    truncatedJpeg: /truncated or corrupt JPEG \(.*premature end/,
    truncatedPng: /truncated or corrupt PNG/,
    corruptPng: /truncated or corrupt PNG/,
    bomb: /30000x30000 \(900 MP\), over the 100 MP limit/,
    tiny: /1x1 px, smaller than the 16x16 minimum/,
    svg: /unsupported image format "svg"/,
  };
  for (const [id, reason] of Object.entries(reasons) as [keyof typeof BAD_FIXTURES, RegExp][]) {
    test(id, async () => {
      const name = BAD_FIXTURES[id];
      await assert.rejects(decodeFixture(id), (err: unknown) => {
        assert.ok(err instanceof InputError, `expected InputError, got ${String(err)}`);
        assert.ok(err.message.startsWith(`${name}: `), err.message);
        assert.match(err.message, reason);
        return true;
      });
    });
  }

  test("a file that is not an image is told by its kind and size, never by its contents", async () => {
    const elf = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), Buffer.alloc(56, 0), Buffer.from("secret-token-123")]);
    const cases: [string, Buffer, string][] = [
      ["shadow", Buffer.from("root:$6$saltsalt$hashhashhash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"), "text, 77 bytes"],
      ["notes.txt", Buffer.from("\ufeffgrüße, naïve café\r\n\ttabs and a form feed\f\n"), "text, 49 bytes"],
      ["doc.pdf", Buffer.from("%PDF-1.7\n%secret\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"), "PDF document, 53 bytes"],
      ["archive.zip", Buffer.concat([Buffer.from("PK\x03\x04"), Buffer.from("passwords.txt secret")]), "ZIP archive, 24 bytes"],
      ["tool", elf, "ELF executable, 80 bytes"],
      ["data.gz", Buffer.from([0x1f, 0x8b, 8, 0, 0x73, 0x65, 0x63, 0x72, 0x65, 0x74]), "gzip archive, 10 bytes"],
      ["blob.bin", Buffer.from([0x00, 0x01, 0x02, 0x73, 0x65, 0x63, 0x72, 0x65, 0x74, 0xff, 0xfe, 0x00, 0x10, 0x20, 0x30, 0x40, 0x50]), "unknown binary, 17 bytes"],
    ];
    for (const [name, bytes, what] of cases) {
      await assert.rejects(decodeImage(bytes, name), (err: unknown) => {
        assert.ok(err instanceof InputError, `expected InputError, got ${String(err)}`);
        assert.equal(err.message, `${name}: not an image or an unsupported format (${what})`);
        return true;
      });
    }
  });

  test("the bomb is refused from its header, quickly and without allocating its pixels", async () => {
    const before = process.memoryUsage().rss;
    const t0 = performance.now();
    await assert.rejects(decodeFixture("bomb"), InputError);
    assert.ok(performance.now() - t0 < 1000);
    assert.ok(process.memoryUsage().rss - before < 200e6);
  });
});

describe("decodeImage converts strange but valid files to 8-bit sRGB RGB", () => {
  test("CMYK JPEG", async () => {
    const img = await decodeFixture("cmyk");
    assertRgb8(img);
    const [r, g, b] = pixel(img, 16, 16);
    assert.ok(r! > 200 && g! < 40 && b! < 40, `red expected, got ${[r, g, b]}`);
  });

  test("16-bit PNG", async () => {
    const img = await decodeFixture("png16");
    assertRgb8(img);
    assert.deepEqual(pixel(img, 5, 5), [128, 128, 128]);
  });

  test("RGBA PNG: transparency flattened onto white", async () => {
    const img = await decodeFixture("rgba");
    assertRgb8(img);
    assert.deepEqual(pixel(img, 4, 4), [255, 0, 0]); // opaque red
    assert.deepEqual(pixel(img, 24, 4), [255, 255, 255]); // fully transparent
    for (const v of pixel(img, 24, 24)) assert.ok(Math.abs(v - 127) <= 1, `half-transparent black, got ${v}`); // alpha 128
  });

  test("EXIF orientation 6: rotated 90 degrees clockwise, marker at the top right", async () => {
    const img = await decodeFixture("exifRotated");
    assertRgb8(img);
    assert.equal(img.orientation, 6);
    assert.deepEqual([img.sourceWidth, img.sourceHeight], [EXIF_STORED.width, EXIF_STORED.height]);
    assert.deepEqual([img.width, img.height], [EXIF_STORED.height, EXIF_STORED.width]);
    const m = EXIF_STORED.marker;
    const isRed = ([r, g, b]: number[]): boolean => r! > 200 && g! < 60 && b! < 60;
    const isBlue = ([r, g, b]: number[]): boolean => r! < 60 && g! < 60 && b! > 200;
    assert.ok(isRed(pixel(img, img.width - 1 - m / 2, m / 2)), "marker at top right");
    for (const [x, y] of [
      [m / 2, m / 2],
      [m / 2, img.height - 1 - m / 2],
      [img.width - 1 - m / 2, img.height - 1 - m / 2],
    ] as const) {
      assert.ok(isBlue(pixel(img, x, y)), `blue at ${x},${y}`);
    }
  });

  for (const id of ["animatedGif", "animatedWebp"] as const) {
    test(`${id}: the first frame only`, async () => {
      const img = await decodeFixture(id);
      assertRgb8(img);
      assert.deepEqual([img.width, img.height], [32, 32]);
      assert.deepEqual(pixel(img, 16, 16), [255, 0, 0]);
    });
  }

  test("greyscale JPEG", async () => {
    const img = await decodeFixture("grey");
    assertRgb8(img);
    assert.deepEqual(pixel(img, 3, 3), [100, 100, 100]);
  });

  test("palette PNG", async () => {
    const img = await decodeFixture("palette");
    assertRgb8(img);
    assert.deepEqual(pixel(img, 3, 3), [0, 0, 255]);
  });

  test("30000-px-wide panorama strip", async () => {
    const img = await decodeFixture("panorama");
    assertRgb8(img);
    assert.deepEqual([img.width, img.height], [30000, 20]);
    assert.deepEqual(pixel(img, 29999, 19), [136, 68, 34]);
  });

  test("every good fixture is covered", () => {
    assert.deepEqual(Object.keys(GOOD_FIXTURES).sort(), ["animatedGif", "animatedWebp", "cmyk", "exifRotated", "grey", "palette", "panorama", "png16", "rgba"]);
  });
});

describe("pixel limit", () => {
  let big: Buffer;
  before(async () => {
    big = await sharp({ create: { width: 4000, height: 2500, channels: 3, background: { r: 10, g: 120, b: 200 } } })
      .jpeg()
      .toBuffer();
  });

  test("a 10-megapixel photo decodes under the default limit", async () => {
    const img = await decodeImage(big, "big.jpg");
    assert.deepEqual([img.width, img.height, img.format], [4000, 2500, "jpeg"]);
    assert.equal(img.data.length, 4000 * 2500 * 3);
  });

  test("a 1-megapixel limit refuses it", async () => {
    await assert.rejects(decodeImage(big, "big.jpg", { maxPixels: 1_000_000 }), (err: unknown) => {
      assert.ok(err instanceof InputError);
      assert.match(err.message, /^big\.jpg: image is 4000x2500 \(10 MP\), over the 1\.0 MP limit/);
      return true;
    });
  });
});

describe("encoders", () => {
  const img: RgbImage = { data: new Uint8Array(20 * 16 * 3).fill(200), width: 20, height: 16 };
  const mask = { data: new Uint8Array(20 * 16).map((_, i) => (i % 20 < 10 ? 255 : 0)), width: 20, height: 16 };

  test("encodePng: RGB round-trips exactly, a mask is one-channel grey", async () => {
    const back = await decodeImage(await encodePng(img), "rgb.png");
    assert.deepEqual(back.data, img.data);
    const meta = await sharp(await encodePng(mask)).metadata();
    assert.equal(meta.channels, 1);
    const raw = await sharp(await encodePng(mask))
      .extractChannel(0)
      .raw()
      .toBuffer();
    assert.deepEqual(new Uint8Array(raw), mask.data);
  });

  test("rgbaFrom: RGB plus the mask as alpha", async () => {
    const cut = rgbaFrom(img, mask);
    assert.equal(cut.channels, 4);
    assert.deepEqual([...cut.data.subarray(0, 4)], [200, 200, 200, 255]);
    assert.deepEqual([...cut.data.subarray(15 * 4, 16 * 4)], [200, 200, 200, 0]);
    const meta = await sharp(await encodePng(cut)).metadata();
    assert.equal(meta.hasAlpha, true);
    assert.throws(() => rgbaFrom(img, { ...mask, width: 16, height: 20 }), RangeError);
  });

  test("encodeJpeg", async () => {
    const meta = await sharp(await encodeJpeg(img, 80)).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ["jpeg", 20, 16]);
    await assert.rejects(encodeJpeg(img, 0), RangeError);
  });

  test("resizeRgb", async () => {
    const r = await resizeRgb(img, 10, 10, "cover");
    assert.deepEqual([r.width, r.height, r.data.length], [10, 10, 300]);
    const inside = await resizeRgb(img, 10, 10, "inside");
    assert.deepEqual([inside.width, inside.height], [10, 8]);
  });
});

describe("sample photos", () => {
  test("every samples/photos JPEG decodes to RGB at its stored size", async () => {
    const names = (await readdir(samples)).filter((n) => n.endsWith(".jpg"));
    assert.ok(names.length >= 4, `sample photos missing: ${names.join(", ")}`);
    for (const name of names) {
      const img = await decodeImage(await readFile(path.join(samples, name)), name);
      assert.equal(img.format, "jpeg");
      assert.equal(img.data.length, img.width * img.height * 3);
      assert.deepEqual([img.width, img.height], [img.sourceWidth, img.sourceHeight]);
    }
  });

  test("option values are checked", async () => {
    const bytes = await readFile(path.join(samples, "chelsea.jpg"));
    await assert.rejects(decodeImage(bytes, "chelsea.jpg", { maxPixels: 0 }), RangeError);
    await assert.rejects(decodeImage(bytes, "chelsea.jpg", { minSide: 1.5 }), RangeError);
    await assert.rejects(decodeImage(bytes, "chelsea.jpg", { minSide: 301 }), /chelsea\.jpg: image is 451x300 px, smaller than the 301x301 minimum/);
  });
});
