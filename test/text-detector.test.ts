/**
 * Local text-prompted detection (format "owlv2"): the minimal CLIP tokenizer on a tiny vocabulary,
 * the OWLv2 adapter through the real loader, pre- and post-processing on the tiny graph of
 * test/support/onnx/make-tiny-owlv2.ts (a query naming "car" scores ~1 on white 16 x 16 input patches), and a
 * fleet run with target "Car" and the local detector on a throw-away Redis.
 */
import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { resolveConfig } from "../src/config/config.js";
import { ModelError } from "../src/runtime/errors.js";
import { getModel } from "../src/models/registry.js";
import type { RgbImage } from "../src/imaging/types.js";
import { discoverInputs } from "../src/producer/discover.js";
import { enqueueImages } from "../src/producer/enqueue.js";
import { waitForRun } from "../src/runs/status.js";
import { startFleet, type Fleet } from "../src/fleet/fleet.js";
import { ClipTokenizer } from "../src/detectors/clip-tokenizer.js";
import { loadTextDetectionModel } from "../src/detectors/detector.js";
import { decodeTextDetections, preprocess, queryOf, type Owlv2Model } from "../src/detectors/owlv2.js";
import { makeTinyOwlv2, tinyClipTokenizer, TINY_CAR_ID } from "./support/onnx/make-tiny-owlv2.js";
import { makeTinyModels } from "./support/onnx/make-tiny-models.js";
import { scratchDir, runImages } from "./helpers.js";
import { startRedisServer, type RedisServer } from "./scenarios/redis-server.js";

const tok = ClipTokenizer.fromJson(tinyClipTokenizer());
const ids = (text: string) => [...tok.encode([text]).inputIds].map(Number);

/** width x height black, with white rectangles [x0, y0, x1, y1]. */
function picture(width: number, height: number, rects: [number, number, number, number][]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (const [x0, y0, x1, y1] of rects) {
    for (let y = y0; y < y1; y++) data.fill(255, (y * width + x0) * 3, (y * width + x1) * 3);
  }
  return { data, width, height };
}

describe("CLIP tokenizer", () => {
  it("encodes with BOS/EOS, BPE merges, padding with '!' (0) and the attention mask", () => {
    // a</w> = 27, photo = p h o t o</w> (no merges), car</w> = 54
    const enc = tok.encode(["a car"], 16);
    assert.deepEqual([...enc.inputIds].map(Number), [55, 27, TINY_CAR_ID, 56, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual([...enc.attentionMask].map(Number), [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(tok.tokenize("cab"), [53, 28], "c a b</w>: 'c a' merges, 'ca b</w>' is no merge");
    assert.deepEqual(tok.tokenize("photo"), [16, 8, 15, 20, 41], "no merges: p h o t o</w>");
  });

  it("lower-cases, collapses whitespace, splits punctuation, maps unknown symbols to <|endoftext|>", () => {
    assert.deepEqual(ids("  CAR \n"), ids("car"));
    assert.deepEqual(tok.tokenize("car!"), [TINY_CAR_ID, 56], "'!' is its own word; '!</w>' is not in the tiny vocabulary");
    assert.deepEqual(tok.tokenize("é"), [56, 56], "two UTF-8 bytes, neither in the vocabulary");
    assert.deepEqual(tok.tokenize("7"), [56]);
  });

  it("truncates to the length, keeping EOS last; several texts", () => {
    const enc = tok.encode(["a b c d e f g h i j k l m n o p q r", "car"], 16);
    const first = [...enc.inputIds.subarray(0, 16)].map(Number);
    assert.equal(first.length, 16);
    assert.equal(first[0], 55);
    assert.equal(first[15], 56);
    assert.equal(
      [...enc.attentionMask.subarray(0, 16)].every((m) => m === 1n),
      true,
    );
    assert.deepEqual([...enc.inputIds.subarray(16, 20)].map(Number), [55, TINY_CAR_ID, 56, 0]);
  });

  it("refuses a file that is not a BPE tokenizer.json", () => {
    assert.throws(() => ClipTokenizer.fromJson({ model: { type: "WordPiece", vocab: {} } }), ModelError);
    assert.throws(() => ClipTokenizer.fromJson({ model: { vocab: { a: 0 }, merges: [] } }), /no <\|startoftext\|>/);
  });
});

describe("the manifest's OWLv2", () => {
  it("is the default text detector, files from the Xenova export, unpinned", () => {
    const m = getModel("owlv2-base-patch16-ensemble");
    assert.deepEqual([m.task, m.format], ["detect", "owlv2"]);
    assert.deepEqual(
      m.files.map((f) => [f.role, f.file, f.sha256]),
      [
        ["model", "model.onnx", null],
        ["tokenizer", "tokenizer.json", null],
      ],
    );
    for (const f of m.files) assert.match(f.url ?? "", /^https:\/\/huggingface\.co\/Xenova\/owlv2-base-patch16-ensemble\/resolve\/[0-9a-f]{40}\//);
  });
});

describe("OWLv2 detector (tiny graph)", () => {
  let dir: string;
  let model: Owlv2Model;

  before(async () => {
    dir = await scratchDir("text-detector");
    model = await loadTextDetectionModel(await makeTinyOwlv2(dir));
  });
  after(async () => {
    await model?.close();
  });

  it("queries read 'a photo of a <label>'", () => {
    assert.equal(queryOf("  Traffic Light "), "a photo of a traffic light");
    assert.equal(model.size, 960);
    assert.equal(model.textLength, 16);
  });

  it("finds the bright object for the matching text and nothing for another text", async () => {
    // 960 x 960: one input patch = 16 px; the object fills patch (row 10, col 20).
    const image = picture(960, 960, [[320, 160, 336, 176]]);
    const boxes = await model.detector("Car").detect(image);
    assert.equal(boxes.length, 1);
    assert.deepEqual([boxes[0]!.x0, boxes[0]!.y0, boxes[0]!.x1, boxes[0]!.y1], [320, 160, 336, 176]);
    assert.ok(boxes[0]!.score! > 0.99);
    assert.equal(boxes[0]!.label, "Car");
    assert.deepEqual(await model.detector("Shoe").detect(image), []);
  });

  it("maps boxes back through the square padding of a non-square photo", async () => {
    // 480 x 240 -> padded to 480 x 480 (grey below), resized x2: one patch = 8 px of the photo.
    const wide = picture(480, 240, [[200, 104, 208, 112]]);
    const boxes = await model.detector("car").detect(wide);
    assert.deepEqual(
      boxes.map((b) => [b.x0, b.y0, b.x1, b.y1]),
      [[200, 104, 208, 112]],
    );
    // Portrait: 240 x 480, padding on the right.
    const tall = picture(240, 480, [[104, 400, 112, 408]]);
    assert.deepEqual(
      (await model.detector("car").detect(tall)).map((b) => [b.x0, b.y0, b.x1, b.y1]),
      [[104, 400, 112, 408]],
    );
    // The grey padding itself is never an object.
    assert.deepEqual(await model.detector("car").detect(picture(480, 240, [])), []);
  });

  it("pads with grey 0.5 bottom/right and normalises with CLIP's mean/std", async () => {
    const px = await preprocess(picture(4, 2, [[0, 0, 4, 2]]), 8);
    const white = (1 - 0.48145466) / 0.26862954;
    const grey = (0.5 - 0.48145466) / 0.26862954;
    assert.ok(Math.abs(px[0]! - white) < 1e-5, "top-left is the (white) photo");
    assert.ok(Math.abs(px[7 * 8 + 7]! - grey) < 1e-5, "bottom-right is padding");
    assert.ok(Math.abs(px[3 * 8]! - white) < 1e-5 && Math.abs(px[4 * 8]! - grey) < 1e-5, "rows 0-3 photo, 4-7 padding");
  });

  it("keeps maxObjects, best first, and the threshold", async () => {
    const image = picture(960, 960, [
      [0, 0, 16, 16],
      [480, 480, 496, 496],
      [944, 944, 960, 960],
    ]);
    assert.equal((await model.detector("car").detect(image)).length, 3);
    assert.equal((await model.detector("car", { maxObjects: 2 }).detect(image)).length, 2);
    assert.deepEqual(await model.detector("car", { scoreThreshold: 1 }).detect(image), []);
  });

  it("decodes: threshold, NMS per query, clamping, merged best first", () => {
    // 3 patches x 2 queries; boxes in pixels.
    const boxes = new Float32Array([0, 0, 10, 10, 1, 1, 11, 11, 90, 90, 120, 120]);
    const scores = new Float32Array([0.9, 0.1, 0.8, 0.5, 0.7, 0.6]);
    const out = decodeTextDetections(scores, boxes, 2, { width: 100, height: 100 }, 0.3, 0.3, 10, ["car", "dog"]);
    assert.deepEqual(
      out.map((b) => [b.label, b.x0, b.y0, b.x1, b.y1]),
      [
        ["car", 0, 0, 10, 10],
        ["car", 90, 90, 100, 100],
        ["dog", 90, 90, 100, 100],
        ["dog", 1, 1, 11, 11],
      ],
    );
    assert.equal(decodeTextDetections(scores, boxes, 2, { width: 100, height: 100 }, 0.3, 0.95, 10, ["car", "dog"]).length, 5, "IoU 0.68 is kept at 0.95");
  });

  it("a wrong file fails at load naming the missing input", async () => {
    const wrong = join(dir, "wrong");
    await mkdir(wrong, { recursive: true });
    await makeTinyModels(join(dir, "others"));
    await writeFile(join(wrong, "model.onnx"), await readFile(join(dir, "others", "face-tiny", "model.onnx")));
    await writeFile(join(wrong, "tokenizer.json"), JSON.stringify(tinyClipTokenizer()));
    await writeFile(join(wrong, "model.json"), JSON.stringify({ format: "owlv2", task: "detect", files: { model: "model.onnx", tokenizer: "tokenizer.json" } }));
    await assert.rejects(loadTextDetectionModel(wrong), (err: Error) => {
      assert.ok(err instanceof ModelError);
      assert.match(err.message, /input "input_ids", "pixel_values", "attention_mask" missing/);
      return true;
    });
  });

  it("a face model is refused as a text detector", async () => {
    await assert.rejects(loadTextDetectionModel(join(dir, "others", "face-tiny")), /a detect model is needed here/);
  });
});

describe("fleet run with target Car and the local detector", () => {
  let redis: RedisServer;
  let fleet: Fleet | undefined;

  before(async () => {
    redis = await startRedisServer("text-detector-redis");
  });
  after(async () => {
    await fleet?.close();
    await redis?.close();
  });

  it("masks the photo with a car and fails the one without, alone, with 'no Car found'", async () => {
    const dir = await scratchDir("text-detector-fleet");
    const owl = await makeTinyOwlv2(dir);
    await makeTinyModels(dir);
    const input = join(dir, "in");
    await mkdir(input, { recursive: true });
    const withCar = picture(320, 200, [[96, 48, 128, 80]]);
    await sharp(withCar.data, { raw: { width: 320, height: 200, channels: 3 } })
      .png()
      .toFile(join(input, "car.png"));
    await sharp(picture(320, 200, []).data, { raw: { width: 320, height: 200, channels: 3 } })
      .png()
      .toFile(join(input, "empty.png"));
    const config = resolveConfig({
      target: "Car",
      textDetectorModel: owl,
      samModel: join(dir, "sam-tiny"),
      out: join(dir, "out"),
      redisUrl: redis.url,
      attempts: 1,
    });
    fleet = startFleet(config, ["detect", "mask", "generate", "finalize"]);
    const items = discoverInputs([input]);
    await enqueueImages(fleet.ctx.redis, config, "cars", items);
    const status = await waitForRun(fleet.ctx.redis, "cars", { intervalMs: 100, timeoutMs: 60_000 });
    assert.equal(status.finished, 2);
    const images = await runImages(fleet.ctx.redis, "cars", join(dir, "out"));
    const car = images.get("car.png");
    assert.equal(car?.failedStage, undefined, car?.reason);
    const manifest = JSON.parse(await readFile(join(dir, "out", car!.outPrefix, "manifest.json"), "utf8"));
    assert.equal(manifest.detections.detector, `owlv2:${owl}`);
    // 320 x 200 -> square 320, one patch = 16 / 3 px: every patch inside the 32 x 32 object is a box
    // of its own (neighbouring cells do not overlap), all within the object.
    assert.ok(manifest.detections.boxes.length >= 1);
    for (const b of manifest.detections.boxes) assert.ok(b.x0 >= 90 && b.x1 <= 134 && b.y0 >= 42 && b.y1 <= 86, JSON.stringify(b));
    const empty = images.get("empty.png");
    assert.equal(empty?.failedStage, "detect");
    assert.match(empty?.reason ?? "", /no Car found/);
  });
});
