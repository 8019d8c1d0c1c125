/**
 * The Stability AI Image Services generator through the real AWS SDK client, against the local
 * validating stand-in (test/standins/bedrock.ts + stability.ts): what each service is sent, the
 * soft mask as grey, size fitting and the way back, kept pixels exact, seeds, finish reasons,
 * --extend, and Remove Background as a salient model. No AWS is contacted.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { checkRunnable } from "../src/producer/enqueue.js";
import { resolveConfig } from "../src/config/config.js";
import { ConfigError, RejectedError } from "../src/runtime/errors.js";
import type { Mask, RgbImage } from "../src/imaging/types.js";
import { createBedrockClient } from "../src/generators/bedrock-client.js";
import type { GenerateRequest } from "../src/generators/generator.js";
import { BedrockRemoveBackground } from "../src/generators/stability-remove-background.js";
import { StabilityGenerator, type StabilityOptions } from "../src/generators/stability.js";
import { stabilityModelFor } from "../src/generators/bedrock-models.js";
import { startBedrockStandIn, type BedrockStandIn } from "./standins/bedrock.js";

process.env.AWS_ACCESS_KEY_ID = "AKIDSTANDIN";
process.env.AWS_SECRET_ACCESS_KEY = "stand-in-secret";
process.env.AWS_EC2_METADATA_DISABLED = "true";
delete process.env.AWS_PROFILE;

let standIn: BedrockStandIn;
const aws = () => ({ region: "us-east-1", endpoints: { bedrock: standIn.endpoint } });

/** A picture with a different value at most pixels. */
function gradient(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set([x % 251, y % 241, (x * 3 + y * 7) % 256], (y * width + x) * 3);
  return { data, width, height };
}

/** 255 inside a centred rectangle (half the size), 0 outside, a linear soft edge `soft` px wide. */
function boxMask(width: number, height: number, soft = 0): Mask {
  const data = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const d = Math.min(x - width / 4, width * 0.75 - x, y - height / 4, height * 0.75 - y);
      data[y * width + x] = d >= soft ? 255 : d < 0 ? 0 : Math.round((255 * d) / Math.max(soft, 1));
    }
  }
  return { data, width, height };
}

function request(image: RgbImage, mask: Mask, over: Partial<GenerateRequest> = {}): GenerateRequest {
  return { image, mask, mode: "outpaint", prompt: "a marble counter", seed: 7, cfgScale: 8, quality: "standard", outpaintingMode: "DEFAULT", ...over };
}

function generator(o: Partial<StabilityOptions> = {}): StabilityGenerator {
  return new StabilityGenerator(createBedrockClient(aws()), { modelId: stabilityModelFor("inpaint"), edit: "inpaint", growMask: 0, ...o });
}

/** Pixels where `keep(mask value)` differ between a and b. */
function differing(a: RgbImage, b: RgbImage, mask: Mask, keep: (m: number) => boolean): number {
  let n = 0;
  for (let i = 0; i < mask.data.length; i++) {
    if (!keep(mask.data[i]!)) continue;
    if (a.data[i * 3] !== b.data[i * 3] || a.data[i * 3 + 1] !== b.data[i * 3 + 1] || a.data[i * 3 + 2] !== b.data[i * 3 + 2]) n++;
  }
  return n;
}

const lastBody = () => standIn.requests.at(-1)!.body as Record<string, unknown>;

describe("Stability AI Image Services generator", () => {
  before(async () => {
    standIn = await startBedrockStandIn({ recordBodies: true, blockPrompts: ["forbidden"], inferenceErrorFirst: 0 });
  });
  after(async () => standIn.close());

  test("outpaint mode: the background goes as the white region, soft edges as grey; the object comes back bit for bit", async () => {
    const image = gradient(300, 200);
    const mask = boxMask(300, 200, 6);
    const gen = generator();
    try {
      const out = await gen.generate(request(image, mask));
      const q = standIn.requests.at(-1)!;
      assert.equal(q.status, 200);
      assert.equal(q.service, "inpaint");
      assert.deepEqual([q.width, q.height, q.maskSameSize], [300, 200, true]);
      assert.ok(q.maskValues! > 2, `soft edge values sent as grey (${q.maskValues} distinct)`);
      assert.ok(Math.abs(q.maskWhiteFraction! - 0.75) < 0.03, `the background (~75%) is the region to regenerate: ${q.maskWhiteFraction}`);
      const body = lastBody();
      assert.deepEqual([body.grow_mask, body.output_format, body.seed, body.prompt], [0, "png", 7, "a marble counter"]);
      assert.deepEqual([out.width, out.height], [300, 200]);
      assert.equal(
        differing(image, out, mask, (m) => m === 255),
        0,
        "kept pixels are the input's",
      );
      assert.ok(differing(image, out, mask, (m) => m === 0) > 0.9 * 300 * 200 * 0.75, "the background was regenerated");
    } finally {
      await gen.close();
    }
  });

  test("inpaint mode sends the object as the region; search-replace sends no mask and its search prompt; erase no prompt", async () => {
    const image = gradient(256, 256);
    const mask = boxMask(256, 256);
    const inpaint = generator();
    const search = generator({ modelId: stabilityModelFor("search-replace"), edit: "search-replace", searchPrompt: "background", stylePreset: "photographic" });
    const erase = generator({ modelId: stabilityModelFor("erase"), edit: "erase" });
    try {
      let out = await inpaint.generate(request(image, mask, { mode: "inpaint" }));
      assert.ok(Math.abs(standIn.requests.at(-1)!.maskWhiteFraction! - 0.25) < 0.02);
      assert.equal(
        differing(image, out, mask, (m) => m === 0),
        0,
        "inpaint keeps the background exactly",
      );

      out = await search.generate(request(image, mask));
      const body = lastBody();
      assert.equal(standIn.requests.at(-1)!.service, "search-replace");
      assert.equal(body.mask, undefined);
      assert.deepEqual([body.search_prompt, body.style_preset], ["background", "photographic"]);
      assert.equal(
        differing(image, out, mask, (m) => m === 255),
        0,
        "our mask still decides what is kept",
      );

      out = await erase.generate(request(image, mask, { mode: "outpaint" }));
      assert.equal(standIn.requests.at(-1)!.status, 200, standIn.requests.at(-1)!.message);
      assert.equal(lastBody().prompt, undefined);
      assert.ok(Math.abs(standIn.requests.at(-1)!.maskWhiteFraction! - 0.25) < 0.02, "erase sends the object");
      assert.equal(
        differing(image, out, mask, (m) => m === 0),
        0,
        "erase keeps the background, whatever the mode",
      );
    } finally {
      await Promise.all([inpaint.close(), search.close(), erase.close()]);
    }
  });

  test("sizes: a 12 MP photo is sent within 9,437,184 px, a 3:1 strip padded to 2.5:1; both come back at their size, object exact", async () => {
    const gen = generator();
    try {
      for (const [w, h] of [
        [4000, 3000],
        [1500, 500],
      ] as const) {
        const image = gradient(w, h);
        const mask = boxMask(w, h);
        const out = await gen.generate(request(image, mask));
        const q = standIn.requests.at(-1)!;
        assert.equal(q.status, 200, q.message);
        assert.ok(q.width! * q.height! <= 9_437_184 && Math.max(q.width!, q.height!) <= 2.5 * Math.min(q.width!, q.height!), `${q.width}x${q.height}`);
        assert.deepEqual([out.width, out.height], [w, h]);
        assert.equal(
          differing(image, out, mask, (m) => m === 255),
          0,
        );
      }
    } finally {
      await gen.close();
    }
  });

  test("seeds: 0 (random on Stability) is refused before any work, naming the rule; 1 is the default", async () => {
    assert.deepEqual(resolveConfig({ generator: "stability" }).seeds, { from: 1, to: 1 });
    await assert.rejects(
      checkRunnable(resolveConfig({ generator: "stability", seeds: "0-3", out: "/tmp/x" })),
      (e) => e instanceof ConfigError && e.key === "seeds" && /seed 0 as "pick a random seed"/.test(e.message),
    );
    await assert.doesNotReject(checkRunnable(resolveConfig({ generator: "stability", seeds: "34-46", region: "us-west-2", out: "/tmp/x" })));
  });

  test("a filtered prompt is a RejectedError (recorded, never retried); an inference error is transient", async () => {
    const gen = generator();
    const flaky = await startBedrockStandIn({ inferenceErrorFirst: 1 });
    const flakyGen = new StabilityGenerator(createBedrockClient({ region: "us-east-1", endpoints: { bedrock: flaky.endpoint } }), {
      modelId: stabilityModelFor("inpaint"),
      edit: "inpaint",
      growMask: 0,
    });
    try {
      const image = gradient(128, 128);
      const mask = boxMask(128, 128);
      await assert.rejects(gen.generate(request(image, mask, { prompt: "a forbidden beach" })), (e) => e instanceof RejectedError && /Filter reason: prompt/.test(e.message));
      await assert.rejects(flakyGen.generate(request(image, mask)), (e) => e instanceof Error && !(e instanceof RejectedError) && /Inference error/.test(e.message));
      const ok = await flakyGen.generate(request(image, mask));
      assert.equal(ok.width, 128);
    } finally {
      await Promise.all([gen.close(), flakyGen.close()]);
      await flaky.close();
    }
  });

  test("--extend square: Stable Outpaint widens the canvas, then the background is inpainted; the photo sits exactly at its offset", async () => {
    const image = gradient(300, 200);
    const mask = boxMask(300, 200);
    const gen = generator({ extend: "square", creativity: 0.5 });
    const before = standIn.requests.length;
    try {
      const out = await gen.generate(request(image, mask));
      const calls = standIn.requests.slice(before);
      assert.deepEqual(
        calls.map((q) => [q.service, q.status]),
        [
          ["outpaint", 200],
          ["inpaint", 200],
        ],
      );
      assert.deepEqual(calls[0]!.extend, { left: 0, right: 0, up: 50, down: 50 });
      assert.deepEqual([out.width, out.height], [300, 300]);
      let moved = 0;
      for (let y = 0; y < 200; y++)
        for (let x = 0; x < 300; x++) {
          if (mask.data[y * 300 + x] !== 255) continue;
          const a = (y * 300 + x) * 3;
          const b = ((y + 50) * 300 + x) * 3;
          if (image.data[a] !== out.data[b] || image.data[a + 1] !== out.data[b + 1] || image.data[a + 2] !== out.data[b + 2]) moved++;
        }
      assert.equal(moved, 0, "the object's pixels are the input's, 50 px down");
      assert.ok(Math.abs(calls[1]!.maskWhiteFraction! - (1 - (150 * 100) / (300 * 300))) < 0.02, "the whole new background, extension included, is regenerated");
    } finally {
      await gen.close();
    }
  });

  test("Remove Background as the salient model: the service's alpha comes back at the photo's size", async () => {
    const rb = new BedrockRemoveBackground(createBedrockClient(aws()));
    try {
      const { alpha } = await rb.predict(gradient(500, 100));
      assert.deepEqual([alpha.width, alpha.height], [500, 100]);
      assert.equal(standIn.requests.at(-1)!.service, "remove-background");
      assert.equal(alpha.data[50 * 500 + 250], 255, "inside the ellipse");
      assert.equal(alpha.data[2 * 500 + 2], 0, "outside");
    } finally {
      await rb.close();
    }
  });
});
