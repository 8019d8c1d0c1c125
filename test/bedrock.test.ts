/**
 * The Bedrock generators (Titan v1/v2, Nova Canvas) through the real AWS SDK client, pointed at a
 * local validating stand-in (test/standins/bedrock.ts): request bodies, size rules, paste-back,
 * and what every service error means for the queue. No AWS is contacted.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ConfigError, FatalServiceError, InputError, RejectedError, ThrottledError } from "../src/runtime/errors.js";
import { decodeImage, encodePng, resizeRgb } from "../src/imaging/image.js";
import { featherMask } from "../src/imaging/mask-ops.js";
import type { Mask, RgbImage } from "../src/imaging/types.js";
import { createBedrockGenerator } from "../src/generators/bedrock.js";
import { createBedrockClient, invokeModelJson, retryAfterMs } from "../src/generators/bedrock-client.js";
import { NOVA_SIZE_RULES, TITAN_SIZE_RULES, checkSize, encodeModelInput, pasteBack, planSize } from "../src/generators/bedrock-image.js";
import type { GenerateRequest, Generator } from "../src/generators/generator.js";
import { TitanGenerator } from "../src/generators/titan.js";
import { CONTRACTS, seedColour, startBedrockStandIn, validateBedrockRequest, type BedrockStandIn } from "./standins/bedrock.js";
import { repoRoot } from "./helpers.js";

// Dummy credentials for the SDK's signer; the stand-in ignores signatures. No instance metadata lookups.
process.env.AWS_ACCESS_KEY_ID = "AKIDSTANDIN";
process.env.AWS_SECRET_ACCESS_KEY = "stand-in-secret";
delete process.env.AWS_SESSION_TOKEN;
delete process.env.AWS_PROFILE;
process.env.AWS_EC2_METADATA_DISABLED = "true";

const TITAN = "amazon.titan-image-generator-v2:0";
const TITAN_V1 = "amazon.titan-image-generator-v1";
const NOVA = "amazon.nova-canvas-v1:0";
const REGION = "us-east-1";

const px = (img: RgbImage, i: number): number[] => [...img.data.subarray(i * 3, i * 3 + 3)];

/** An ellipse covering the middle of the image: 255 inside, 0 outside. */
function ellipseMask(width: number, height: number): Mask {
  const data = new Uint8Array(width * height);
  const cx = width / 2;
  const cy = height / 2;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const dx = (x + 0.5 - cx) / (width * 0.3);
      const dy = (y + 0.5 - cy) / (height * 0.35);
      if (dx * dx + dy * dy <= 1) data[y * width + x] = 255;
    }
  }
  return { data, width, height };
}

/** A synthetic photo with a different value at most pixels. */
function gradient(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set([x % 256, y % 256, (x * 3 + y * 7) % 256], (y * width + x) * 3);
  return { data, width, height };
}

function request(image: RgbImage, mask: Mask, over: Partial<GenerateRequest> = {}): GenerateRequest {
  return {
    image,
    mask,
    mode: "outpaint",
    prompt: "studio white background",
    seed: 7,
    cfgScale: 8,
    quality: "standard",
    outpaintingMode: "DEFAULT",
    ...over,
  };
}

async function photo(name: string): Promise<RgbImage> {
  const file = join(repoRoot, "samples", "photos", name);
  const { data, width, height } = await decodeImage(await readFile(file), name);
  return { data, width, height };
}

/** Runs `fn` with a stand-in and a generator for `modelId` pointed at it; closes both. */
async function withStandIn<T>(
  opts: Parameters<typeof startBedrockStandIn>[0],
  modelId: string,
  fn: (gen: Generator, standIn: BedrockStandIn) => Promise<T>,
  timeoutMs?: number,
): Promise<T> {
  const standIn = await startBedrockStandIn(opts);
  const gen = createBedrockGenerator(modelId, { region: REGION, endpoints: { bedrock: standIn.endpoint } }, timeoutMs ? { timeoutMs } : {});
  try {
    return await fn(gen, standIn);
  } finally {
    await gen.close();
    await standIn.close();
  }
}

describe("size rules", () => {
  test("Titan: longer side <= 1408 (scaled down), shorter side >= 320 (scaled up), otherwise untouched", () => {
    const p = planSize(TITAN_SIZE_RULES, 2000, 1000);
    assert.deepEqual([p.sentWidth, p.sentHeight, p.canvasWidth, p.canvasHeight], [1408, 704, 2000, 1000]);
    const small = planSize(TITAN_SIZE_RULES, 451, 300);
    assert.deepEqual([small.sentWidth, small.sentHeight], [481, 320]);
    const same = planSize(TITAN_SIZE_RULES, 1000, 872);
    assert.deepEqual([same.sentWidth, same.sentHeight], [1000, 872]);
  });

  test("Nova: 1000x700 -> 1008x704; 2048x2048 under 4,194,304 px; a 10:1 strip is padded to the aspect limit", () => {
    const p = planSize(NOVA_SIZE_RULES, 1000, 700);
    assert.deepEqual([p.sentWidth, p.sentHeight], [1008, 704]);
    const big = planSize(NOVA_SIZE_RULES, 2048, 2048);
    assert.ok(big.sentWidth * big.sentHeight < 4_194_304);
    const strip = planSize(NOVA_SIZE_RULES, 3000, 300);
    assert.ok(strip.canvasHeight > 300 && strip.offsetY > 0 && strip.canvasWidth === 3000, JSON.stringify(strip));
    assert.equal(checkSize(NOVA_SIZE_RULES, strip.sentWidth, strip.sentHeight), null);
  });

  test("every plan passes our rules and the stand-in's independent ones (600 sizes per model)", () => {
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return 1 + (seed % n);
    };
    const sizes: Array<[number, number]> = [
      [1, 1],
      [16, 9000],
      [9000, 16],
      [4096, 4096],
      [1408, 1408],
      [1409, 1],
      [320, 1280],
      [321, 1285],
    ];
    for (let i = 0; i < 600; i++) sizes.push(i % 3 === 0 ? [rand(8000), rand(400)] : [rand(6000), rand(6000)]);
    for (const [w, h] of sizes) {
      const t = planSize(TITAN_SIZE_RULES, w, h);
      assert.equal(checkSize(TITAN_SIZE_RULES, t.sentWidth, t.sentHeight), null, `Titan ${w}x${h}`);
      assert.equal(CONTRACTS[TITAN]!.size(t.sentWidth, t.sentHeight), null, `Titan ${w}x${h} -> ${t.sentWidth}x${t.sentHeight}`);
      const n = planSize(NOVA_SIZE_RULES, w, h);
      assert.equal(CONTRACTS[NOVA]!.size(n.sentWidth, n.sentHeight), null, `Nova ${w}x${h} -> ${n.sentWidth}x${n.sentHeight}`);
      for (const p of [t, n]) {
        assert.ok(p.offsetX >= 0 && p.offsetY >= 0 && p.offsetX + w <= p.canvasWidth && p.offsetY + h <= p.canvasHeight);
        // Scaling keeps the canvas's aspect ratio up to the rounding to the multiple.
        const stretch = p.sentWidth / p.canvasWidth / (p.sentHeight / p.canvasHeight);
        assert.ok(Math.abs(Math.log(stretch)) < 0.06, `${w}x${h}: stretch ${stretch}`);
      }
    }
  });

  test("an image over the byte limit is planned smaller until its PNG fits; impossible limits are an InputError", async () => {
    let state = 7;
    const noise = new Uint8Array(800 * 800 * 3).map(() => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) >>> 24);
    const image: RgbImage = { data: noise, width: 800, height: 800 };
    const rules = { ...TITAN_SIZE_RULES, maxImageBytes: 600_000 };
    const enc = await encodeModelInput(image, ellipseMask(800, 800), rules);
    assert.ok(Buffer.from(enc.imageBase64, "base64").length <= 600_000);
    assert.ok(enc.plan.sentWidth < 800 && enc.plan.sentWidth >= 320 && enc.plan.sentWidth === enc.plan.sentHeight, JSON.stringify(enc.plan));
    await assert.rejects(encodeModelInput(image, undefined, { ...rules, maxImageBytes: 1000 }), InputError);
  });

  test("pasteBack: exact where the mask says keep, generated where it says replace, blended only on the soft edge", () => {
    const original: RgbImage = { data: Uint8Array.from([10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120]), width: 4, height: 1 };
    const generated: RgbImage = { data: new Uint8Array(12).fill(200), width: 4, height: 1 };
    const mask: Mask = { data: Uint8Array.from([255, 0, 128, 1]), width: 4, height: 1 };
    const out = pasteBack(original, generated, mask, "outpaint");
    assert.deepEqual(px(out, 0), [10, 20, 30]);
    assert.deepEqual(px(out, 1), [200, 200, 200]);
    for (const v of px(out, 2)) assert.ok(v > 70 && v < 200);
    const inp = pasteBack(original, generated, mask, "inpaint");
    assert.deepEqual(px(inp, 0), [200, 200, 200]);
    assert.deepEqual(px(inp, 1), [40, 50, 60]);
  });
});

describe("Titan v2 through the SDK and the validating stand-in", () => {
  let cat: RgbImage;
  before(async () => {
    cat = await photo("chelsea.jpg");
  });

  test("outpaint a real photo with a feathered mask: object pixel-identical, background generated, soft edge blended", async () => {
    const mask = await featherMask(ellipseMask(cat.width, cat.height), 2);
    await withStandIn({ recordBodies: true }, TITAN, async (gen, standIn) => {
      const out = await gen.generate(request(cat, mask, { seed: 11 }));
      assert.equal(standIn.requests.length, 1);
      const rec = standIn.requests[0]!;
      assert.equal(rec.status, 200, rec.message);
      // 451x300 is below Titan's shortest side: sent scaled up to 481x320.
      assert.deepEqual([rec.width, rec.height, rec.seed, rec.prompt], [481, 320, 11, "studio white background"]);
      assert.deepEqual([out.width, out.height], [cat.width, cat.height]);
      const colour = seedColour(11);
      let kept = 0;
      let generated = 0;
      let blended = 0;
      for (let i = 0; i < mask.data.length; i++) {
        const m = mask.data[i]!;
        if (m === 255) {
          assert.deepEqual(px(out, i), px(cat, i), `object pixel ${i}`);
          kept++;
        } else if (m === 0) {
          assert.deepEqual(px(out, i), colour, `background pixel ${i}`);
          generated++;
        } else blended++;
      }
      assert.ok(kept > 10_000 && generated > 10_000 && blended > 100, `${kept} ${generated} ${blended}`);
      const body = rec.body as Record<string, Record<string, unknown>>;
      assert.deepEqual(Object.keys(body).sort(), ["imageGenerationConfig", "outPaintingParams", "taskType"]);
      assert.equal(body.taskType as unknown, "OUTPAINTING");
      assert.deepEqual(Object.keys(body.outPaintingParams!).sort(), ["image", "maskImage", "outPaintingMode", "text"]);
      assert.deepEqual(body.imageGenerationConfig, { numberOfImages: 1, quality: "standard", cfgScale: 8, seed: 11 });
    });
  });

  test("inpaint: background pixel-identical, the object region generated, no outPaintingMode sent", async () => {
    const mask = ellipseMask(cat.width, cat.height);
    await withStandIn({ recordBodies: true }, TITAN, async (gen, standIn) => {
      const out = await gen.generate(request(cat, mask, { mode: "inpaint", prompt: "a small dog", negativePrompt: "blurry", seed: 3 }));
      const rec = standIn.requests[0]!;
      assert.equal(rec.status, 200, rec.message);
      const body = rec.body as Record<string, Record<string, unknown>>;
      assert.equal(body.taskType as unknown, "INPAINTING");
      assert.deepEqual(Object.keys(body.inPaintingParams!).sort(), ["image", "maskImage", "negativeText", "text"]);
      assert.deepEqual([out.width, out.height], [cat.width, cat.height]);
      for (let i = 0; i < mask.data.length; i++) {
        assert.deepEqual(px(out, i), mask.data[i] === 0 ? px(cat, i) : seedColour(3), `pixel ${i}`);
      }
    });
  });

  test("2000x1000 is sent at 1408x704 and comes back at 2000x1000 with the object unchanged", async () => {
    const big = await resizeRgb(cat, 2000, 1000, "fill");
    const mask = ellipseMask(2000, 1000);
    await withStandIn({}, TITAN, async (gen, standIn) => {
      const out = await gen.generate(request(big, mask));
      const rec = standIn.requests[0]!;
      assert.equal(rec.status, 200, rec.message);
      assert.deepEqual([rec.width, rec.height], [1408, 704]);
      assert.deepEqual([out.width, out.height], [2000, 1000]);
      for (let i = 0; i < mask.data.length; i += 97) if (mask.data[i] === 255) assert.deepEqual(px(out, i), px(big, i));
    });
  });

  test("maskPrompt instead of a mask: sent without maskImage, result at the original size", async () => {
    await withStandIn({ recordBodies: true }, TITAN, async (gen, standIn) => {
      const out = await gen.generate(request(cat, ellipseMask(cat.width, cat.height), { maskPrompt: "the cat" }));
      const rec = standIn.requests[0]!;
      assert.equal(rec.status, 200, rec.message);
      const params = (rec.body as Record<string, Record<string, unknown>>).outPaintingParams!;
      assert.equal(params.maskPrompt, "the cat");
      assert.equal(params.maskImage, undefined);
      assert.deepEqual([out.width, out.height], [cat.width, cat.height]);
    });
  });

  test("a too-long prompt, an empty outpainting prompt and a bad cfgScale are refused before any request", async () => {
    const mask = ellipseMask(cat.width, cat.height);
    await withStandIn({}, TITAN, async (gen, standIn) => {
      await assert.rejects(gen.generate(request(cat, mask, { prompt: "x".repeat(513) })), (e) => e instanceof RejectedError && /513 characters/.test(e.message));
      await assert.rejects(gen.generate(request(cat, mask, { prompt: "  " })), RejectedError);
      await assert.rejects(gen.generate(request(cat, mask, { cfgScale: 11 })), (e) => e instanceof ConfigError && e.key === "cfgScale");
      await assert.rejects(gen.generate(request(cat, mask, { seed: 2_147_483_647 })), (e) => e instanceof ConfigError && e.key === "seeds");
      assert.equal(standIn.requests.length, 0);
    });
    await withStandIn({}, NOVA, async (gen, standIn) => {
      await assert.rejects(gen.generate(request(cat, mask, { prompt: "y".repeat(1025) })), RejectedError);
      assert.equal(standIn.requests.length, 0);
    });
  });

  test("Titan v1 takes the same body", async () => {
    await withStandIn({}, TITAN_V1, async (gen, standIn) => {
      const out = await gen.generate(request(cat, ellipseMask(cat.width, cat.height), { outpaintingMode: "PRECISE" }));
      assert.equal(standIn.requests[0]!.status, 200, standIn.requests[0]!.message);
      assert.equal(gen.name, TITAN_V1);
      assert.deepEqual([out.width, out.height], [cat.width, cat.height]);
    });
  });
});

describe("Nova Canvas", () => {
  test("1000x700 is sent at sides divisible by 16 within the rules, and comes back at 1000x700", async () => {
    const image = await resizeRgb(await photo("coffee.jpg"), 1000, 700, "fill");
    const mask = ellipseMask(1000, 700);
    await withStandIn({ recordBodies: true }, NOVA, async (gen, standIn) => {
      const out = await gen.generate(request(image, mask, { cfgScale: 6.5, seed: 858_993_459 }));
      const rec = standIn.requests[0]!;
      assert.equal(rec.status, 200, rec.message);
      assert.deepEqual([rec.width, rec.height], [1008, 704]);
      assert.equal((rec.width! % 16) + (rec.height! % 16), 0);
      assert.deepEqual((rec.body as Record<string, unknown>).imageGenerationConfig, { numberOfImages: 1, quality: "standard", cfgScale: 6.5, seed: 858_993_459 });
      assert.deepEqual([out.width, out.height], [1000, 700]);
      for (let i = 0; i < mask.data.length; i += 31) assert.deepEqual(px(out, i), mask.data[i] === 255 ? px(image, i) : seedColour(858_993_459));
      await assert.rejects(gen.generate(request(image, mask, { seed: 858_993_460 })), (e) => e instanceof ConfigError && e.key === "seeds");
      assert.equal(standIn.requests.length, 1);
    });
  });
});

describe("service errors", () => {
  const image = gradient(320, 320);
  const mask = ellipseMask(320, 320);

  test("throttling -> ThrottledError with Retry-After; the stand-in counts requests per second", async () => {
    await withStandIn({ throttleAbovePerSecond: 1, retryAfterSeconds: 2 }, TITAN, async (gen, standIn) => {
      await gen.generate(request(image, mask));
      await assert.rejects(gen.generate(request(image, mask)), (e) => e instanceof ThrottledError && e.retryAfterMs === 2000);
      assert.deepEqual(
        standIn.requests.map((r) => r.status),
        [200, 429],
      );
    });
    assert.equal(retryAfterMs({ "Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT" }, Date.parse("Wed, 21 Oct 2015 07:28:00 GMT")), 10_000);
    assert.equal(retryAfterMs({}), undefined);
  });

  test("content filter, as a ValidationException and as a response with `error` -> RejectedError", async () => {
    for (const blockAs of ["validation", "response-error"] as const) {
      await withStandIn({ blockPrompts: ["forbidden"], blockAs }, TITAN, async (gen, standIn) => {
        await assert.rejects(gen.generate(request(image, mask, { prompt: "a Forbidden place" })), (e) => e instanceof RejectedError && /content filters/.test(e.message));
        assert.equal(standIn.requests[0]!.status, blockAs === "validation" ? 400 : 200);
      });
    }
    await withStandIn({ blockPrompts: ["forbidden"], blockAs: "response-error" }, NOVA, async (gen) => {
      await assert.rejects(gen.generate(request(image, mask, { prompt: "forbidden" })), RejectedError);
    });
  });

  test("500 and timeouts and refused connections -> a plain (transient) Error", async () => {
    const transient = (e: unknown): boolean => e instanceof Error && !(e instanceof ThrottledError) && !(e instanceof RejectedError) && !(e instanceof FatalServiceError);
    await withStandIn({ failFirst: 1 }, TITAN, async (gen, standIn) => {
      await assert.rejects(gen.generate(request(image, mask)), (e) => transient(e) && /InternalServerException/.test((e as Error).message));
      await gen.generate(request(image, mask));
      assert.deepEqual(
        standIn.requests.map((r) => r.status),
        [500, 200],
      );
    });
    await withStandIn(
      { latencyMs: 1500 },
      TITAN,
      async (gen) => {
        const t0 = performance.now();
        await assert.rejects(gen.generate(request(image, mask)), transient);
        assert.ok(performance.now() - t0 < 1400, "the client's timeout fired before the answer");
      },
      300,
    );
    const closed = await startBedrockStandIn();
    await closed.close();
    const gen = createBedrockGenerator(TITAN, { region: REGION, endpoints: { bedrock: closed.endpoint } });
    await assert.rejects(gen.generate(request(image, mask)), transient);
    await gen.close();
  });

  test("403 and 404 -> FatalServiceError naming the model and region", async () => {
    await withStandIn({ denyAccess: true }, TITAN, async (gen) => {
      await assert.rejects(
        gen.generate(request(image, mask)),
        (e) => e instanceof FatalServiceError && e.message.includes(TITAN) && e.message.includes(REGION) && /AccessDenied/.test(e.message),
      );
    });
    await withStandIn({ models: [TITAN_V1] }, TITAN, async (gen, standIn) => {
      await assert.rejects(gen.generate(request(image, mask)), (e) => e instanceof FatalServiceError && e.message.includes(TITAN) && /ResourceNotFound/.test(e.message));
      assert.equal(standIn.requests[0]!.status, 404);
    });
  });

  test("an unknown model id is a ConfigError on modelId", () => {
    assert.throws(
      () => createBedrockGenerator("stability.sd3-large-v1:0", { region: REGION }),
      (e) => e instanceof ConfigError && e.key === "modelId",
    );
  });
});

describe("the stand-in's validator", () => {
  let valid: Record<string, Record<string, unknown>>;
  let nova: Record<string, Record<string, unknown>>;
  const image = gradient(320, 320);
  const mask = ellipseMask(320, 320);
  const b64 = async (img: RgbImage | Mask): Promise<string> => (await encodePng(img)).toString("base64");
  const clone = <T>(v: T): T => structuredClone(v);
  const problem = async (modelId: string, body: unknown): Promise<string> => {
    const { problem } = await validateBedrockRequest(modelId, body);
    assert.ok(problem, "expected the body to be refused");
    return problem;
  };

  before(async () => {
    const client = createBedrockClient({ region: REGION });
    const titan = new TitanGenerator(client, TITAN);
    valid = (await titan.requestBody(request(image, mask))).json as typeof valid;
    await titan.close();
    nova = clone(valid);
  });

  test("accepts what the generators send (positive control)", async () => {
    assert.equal((await validateBedrockRequest(TITAN, valid)).problem, null);
    assert.equal((await validateBedrockRequest(NOVA, nova)).problem, null);
  });

  test("refuses a mask with grey values, of another size, or with colours", async () => {
    const grey = new Uint8Array(320 * 320 * 3).fill(255);
    grey.fill(128, 0, 3000);
    const body = clone(valid);
    body.outPaintingParams!.maskImage = await b64({ data: grey, width: 320, height: 320 });
    assert.match(await problem(TITAN, body), /pure black.*pure white/);
    body.outPaintingParams!.maskImage = await b64({ data: new Uint8Array(321 * 320).fill(255), width: 321, height: 320 });
    assert.match(await problem(TITAN, body), /same size/);
    const red = new Uint8Array(320 * 320 * 3).fill(0);
    red[0] = 255;
    body.outPaintingParams!.maskImage = await b64({ data: red, width: 320, height: 320 });
    assert.match(await problem(NOVA, body), /pure black/);
  });

  test("refuses images beyond the model's size rules", async () => {
    const body = clone(valid);
    body.outPaintingParams!.image = await b64(gradient(1500, 800));
    body.outPaintingParams!.maskImage = await b64(ellipseMask(1500, 800));
    assert.match(await problem(TITAN, body), /1408/);
    body.outPaintingParams!.image = await b64(gradient(1000, 700));
    body.outPaintingParams!.maskImage = await b64(ellipseMask(1000, 700));
    assert.equal((await validateBedrockRequest(TITAN, body)).problem, null);
    assert.match(await problem(NOVA, body), /divisible by 16/);
    body.outPaintingParams!.image = await b64(gradient(1600, 320));
    body.outPaintingParams!.maskImage = await b64(ellipseMask(1600, 320));
    assert.match(await problem(NOVA, body), /aspect ratio/);
    body.outPaintingParams!.image = Buffer.from("not an image").toString("base64");
    assert.match(await problem(TITAN, body), /does not decode/);
  });

  test("refuses bodies off the contract: keys, mask choice, ranges, text lengths", async () => {
    const cases: Array<[string, (b: Record<string, Record<string, unknown>>) => void, RegExp]> = [
      [TITAN, (b) => (b.outPaintingParams!.maskPrompt = "the cat"), /exactly one of maskImage and maskPrompt/],
      [TITAN, (b) => delete b.outPaintingParams!.maskImage, /exactly one/],
      [TITAN, (b) => (b.outPaintingParams!.text = "t".repeat(513)), /1-512 characters/],
      [NOVA, (b) => (b.outPaintingParams!.text = "t".repeat(1025)), /1-1024 characters/],
      [TITAN, (b) => delete b.outPaintingParams!.text, /text is required/],
      [TITAN, (b) => (b.imageGenerationConfig!.width = 320), /unexpected key.*width/],
      [TITAN, (b) => (b.imageGenerationConfig!.cfgScale = 10.5), /cfgScale/],
      [TITAN, (b) => (b.imageGenerationConfig!.seed = 2_147_483_647), /seed/],
      [NOVA, (b) => (b.imageGenerationConfig!.seed = 858_993_460), /seed/],
      [TITAN, (b) => (b.imageGenerationConfig!.quality = "ultra"), /quality/],
      [TITAN, (b) => (b.outPaintingParams!.outPaintingMode = "LOOSE"), /outPaintingMode/],
      [TITAN, (b) => (b.outPaintingParams!.extra = 1), /unexpected key/],
      [
        TITAN,
        (b) => {
          b.inPaintingParams = b.outPaintingParams!;
          delete b.outPaintingParams;
          (b as Record<string, unknown>).taskType = "INPAINTING";
        },
        /inPaintingParams: unexpected key.*outPaintingMode/,
      ],
      [TITAN, (b) => (b.inPaintingParams = {}), /unexpected key/],
    ];
    for (const [model, edit, expected] of cases) {
      const body = clone(valid);
      edit(body);
      assert.match(await problem(model, body), expected, `${model}: ${edit.toString()}`);
    }
  });

  test("over HTTP a refused body is a 400 ValidationException, i.e. a RejectedError", async () => {
    const standIn = await startBedrockStandIn();
    const client = createBedrockClient({ region: REGION, endpoints: { bedrock: standIn.endpoint } });
    try {
      const body = clone(valid);
      body.outPaintingParams!.maskImage = await b64({ data: new Uint8Array(320 * 320 * 3).fill(77), width: 320, height: 320 });
      await assert.rejects(invokeModelJson(client, TITAN, body), (e) => e instanceof RejectedError && /pure black/.test(e.message));
      assert.equal(standIn.requests[0]!.status, 400);
      assert.equal(standIn.requests[0]!.errorType, "ValidationException");
    } finally {
      client.destroy();
      await standIn.close();
    }
  });
});

after(() => {
  delete process.env.AWS_ACCESS_KEY_ID;
  delete process.env.AWS_SECRET_ACCESS_KEY;
});
