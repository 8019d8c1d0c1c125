import assert from "node:assert/strict";
import { describe, test } from "node:test";
import sharp from "sharp";
import type { Mask, RgbImage } from "../src/imaging/types.js";
import { contactSheet, type ContactSheetTile } from "../src/stages/contact-sheet.js";

function rgb(width: number, height: number, colour: [number, number, number]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(colour, i * 3);
  return { data, width, height };
}

function mask(width: number, height: number): Mask {
  const data = new Uint8Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = i % width < width / 2 ? 255 : 0;
  return { data, width, height };
}

// Layout constants of contact-sheet.ts at tileHeight 100: 8 px padding, font 10 px, caption band 16 px.
const PAD = 8;
const CAPTION = 16;

async function decode(jpeg: Buffer): Promise<{ data: Buffer; width: number; height: number; format: string }> {
  const meta = await sharp(jpeg).metadata();
  const { data, info } = await sharp(jpeg).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, format: meta.format };
}

describe("contactSheet", () => {
  const tiles: ContactSheetTile[] = [
    { image: rgb(300, 200, [200, 30, 30]), caption: "original" },
    { image: mask(300, 200), caption: "mask" },
    ...Array.from({ length: 5 }, (_, i) => ({ image: rgb(300, 200, [30, 30 + i * 40, 200]), caption: `p0 s${34 + i} <&"'>` })),
  ];

  test("a JPEG grid of the expected size", async () => {
    const sheet = await decode(await contactSheet(tiles, { tileHeight: 100, columns: 3 }));
    // 7 tiles, 3 per row -> 3 rows; every cell is 150x100 (3:2 at height 100).
    assert.equal(sheet.format, "jpeg");
    assert.equal(sheet.width, PAD + 3 * (150 + PAD));
    assert.equal(sheet.height, PAD + 3 * (100 + CAPTION + PAD));
    // The first tile's centre is the original's red.
    const i = ((PAD + 50) * sheet.width + PAD + 75) * 3;
    const [r, g, b] = [sheet.data[i]!, sheet.data[i + 1]!, sheet.data[i + 2]!];
    assert.ok(r > 180 && g < 60 && b < 60, `red expected, got ${[r, g, b]}`);
  });

  test("defaults: 4 columns at 256 px", async () => {
    const sheet = await decode(await contactSheet(tiles));
    assert.equal(sheet.width, PAD + 4 * (384 + PAD));
    assert.equal(sheet.height, PAD + 2 * (256 + 22 + PAD));
  });

  test("tiles beyond maxTiles are left out and a note line says so", async () => {
    const many = Array.from({ length: 30 }, (_, i) => ({ image: rgb(100, 100, [i * 8, 0, 0]), caption: `r${i}` }));
    const sheet = await decode(await contactSheet(many, { tileHeight: 100, columns: 6 }));
    // 24 shown -> 4 rows of 6, plus one note row.
    assert.equal(sheet.width, PAD + 6 * (100 + PAD));
    assert.equal(sheet.height, PAD + 4 * (100 + CAPTION + PAD) + CAPTION);
  });

  test("mixed sizes share one cell width; a single tile gives one cell", async () => {
    const one = await decode(await contactSheet([{ image: rgb(50, 100, [0, 0, 0]), caption: "tall" }], { tileHeight: 100 }));
    assert.deepEqual([one.width, one.height], [PAD + 50 + PAD, PAD + 100 + CAPTION + PAD]);
    const panorama = await decode(await contactSheet([{ image: rgb(1000, 100, [0, 0, 0]), caption: "wide" }], { tileHeight: 100 }));
    assert.equal(panorama.width, PAD + 300 + PAD); // capped at 3:1
  });

  test("bad options and no tiles are refused", async () => {
    await assert.rejects(contactSheet([]), RangeError);
    await assert.rejects(contactSheet(tiles, { columns: 0 }), RangeError);
    await assert.rejects(contactSheet(tiles, { tileHeight: 2.5 }), RangeError);
  });
});
