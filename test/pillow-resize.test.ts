/**
 * resizePillowBilinear and resizeLongestSide against Pillow's own BILINEAR resize, byte for byte:
 * the fixtures are Pillow's outputs on small deterministic images (test/fixtures/pillow-resize/make.py).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { resizePillowBilinear } from "../src/segmenters/pillow-resize.js";
import { resizeLongestSide, samResizeShape } from "../src/segmenters/sam-processing.js";

const fixtures = join(import.meta.dirname, "fixtures", "pillow-resize");

interface FixtureIndex {
  pillow: string;
  inputs: Record<string, { file: string; width: number; height: number; channels: number }>;
  cases: { name: string; input: string; width: number; height: number; covers: string; expected: string }[];
}

const index = JSON.parse(readFileSync(join(fixtures, "index.json"), "utf8")) as FixtureIndex;

function readBytes(file: string): Uint8Array {
  return new Uint8Array(readFileSync(join(fixtures, file)));
}

function input(name: string) {
  const meta = index.inputs[name];
  assert.ok(meta, `no fixture input ${name}`);
  return { image: { data: readBytes(meta.file), width: meta.width, height: meta.height }, channels: meta.channels };
}

function fixtureCase(name: string) {
  const found = index.cases.find((c) => c.name === name);
  assert.ok(found, `no fixture case ${name}`);
  return found;
}

/** Exact equality, reporting how many values differ and by how much at most. */
function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let differing = 0;
  let maxDifference = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (d > 0) differing++;
    maxDifference = Math.max(maxDifference, d);
  }
  assert.equal(differing, 0, `${what}: ${differing} of ${expected.length} values differ from Pillow ${index.pillow} (at most by ${maxDifference})`);
}

test("resizePillowBilinear equals Pillow's BILINEAR on every fixture", () => {
  assert.ok(index.cases.length >= 10);
  for (const c of index.cases) {
    const { image, channels } = input(c.input);
    const out = resizePillowBilinear(image, channels, c.width, c.height);
    assertSameBytes(out, readBytes(c.expected), `${c.name} (${c.covers})`);
  }
});

test("resizeLongestSide equals Pillow when enlarging and when shrinking", async () => {
  for (const [name, longest] of [
    ["rgb-37x23-to-96x60", 96],
    ["rgb-301x177-to-128x75", 128],
  ] as const) {
    const c = fixtureCase(name);
    const { image } = input(c.input);
    assert.deepEqual(samResizeShape(image, longest), { width: c.width, height: c.height });
    const resized = await resizeLongestSide(image, longest);
    assert.deepEqual({ width: resized.width, height: resized.height }, { width: c.width, height: c.height });
    assertSameBytes(resized.data, readBytes(c.expected), name);
  }
});

test("same size returns a copy; bad arguments are refused", () => {
  const { image } = input("rgb-37x23");
  const copy = resizePillowBilinear(image, 3, 37, 23);
  assert.deepEqual(copy, image.data);
  assert.notEqual(copy, image.data);
  assert.throws(() => resizePillowBilinear(image, 4, 10, 10), RangeError);
  assert.throws(() => resizePillowBilinear(image, 3, 0, 10), RangeError);
  assert.throws(() => resizePillowBilinear(image, 5, 10, 10), RangeError);
});
