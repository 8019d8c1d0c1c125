/**
 * The Bedrock stand-in's Stability AI Image Services (test/standins/stability.ts): the validator
 * against DESIGN.md's contract, and the answers, content filter, inference errors and throttling
 * as the real AWS SDK client sees them. No AWS is contacted.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { BedrockRuntimeClient, InvokeModelCommand } from "@aws-sdk/client-bedrock-runtime";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import sharp from "sharp";
import { seedColour, startBedrockStandIn, validateBedrockRequest, type BedrockStandIn, type BedrockStandInOptions } from "./standins/bedrock.js";
import { MAX_SEED, STABILITY_MODELS, validateStabilityRequest, type StabilityAnswer } from "./standins/stability.js";

// Dummy credentials for the SDK's signer; the stand-in ignores signatures. No instance metadata lookups.
process.env.AWS_ACCESS_KEY_ID = "AKIDSTANDIN";
process.env.AWS_SECRET_ACCESS_KEY = "x";
delete process.env.AWS_SESSION_TOKEN;
delete process.env.AWS_PROFILE;
process.env.AWS_EC2_METADATA_DISABLED = "true";

const INPAINT = "us.stability.stable-image-inpaint-v1:0";
const SEARCH = "us.stability.stable-image-search-replace-v1:0";
const ERASE = "us.stability.stable-image-erase-object-v1:0";
const OUTPAINT = "us.stability.stable-outpaint-v1:0";
const REMOVE_BG = "us.stability.stable-image-remove-background-v1:0";

type Body = Record<string, unknown>;

/** A gradient RGB PNG (every pixel's red < 128 when width <= 128), base64. */
async function photo(width: number, height: number, format: "png" | "gif" = "png"): Promise<string> {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set([x % 128, y % 256, (x * 3 + y * 7) % 256], (y * width + x) * 3);
  const img = sharp(data, { raw: { width, height, channels: 3 } });
  return (await (format === "gif" ? img.gif() : img.png()).toBuffer()).toString("base64");
}

/** A flat image of any size, cheap to make (only its header is read when validating sizes). */
async function flat(width: number, height: number): Promise<string> {
  return (
    await sharp({ create: { width, height, channels: 3, background: "#808080" } })
      .png()
      .toBuffer()
  ).toString("base64");
}

/** A grey (one channel) PNG mask: `value(x, y)` per pixel. */
async function greyMask(width: number, height: number, value: (x: number, y: number) => number): Promise<string> {
  const data = Buffer.alloc(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data[y * width + x] = value(x, y);
  return (
    await sharp(data, { raw: { width, height, channels: 1 } })
      .toColourspace("b-w")
      .png()
      .toBuffer()
  ).toString("base64");
}

/** Left third black (keep), middle third grey 128, right third white (regenerate). */
const thirds =
  (width: number) =>
  (x: number): number =>
    x < width / 3 ? 0 : x < (2 * width) / 3 ? 128 : 255;

async function decode(b64: string): Promise<{ data: Buffer; width: number; height: number; channels: number; format: string | undefined }> {
  const bytes = Buffer.from(b64, "base64");
  const { format } = await sharp(bytes).metadata();
  const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels, format };
}

let image: string;
let mask: string;
const valid: Record<string, Body> = {};

before(async () => {
  image = await photo(96, 80);
  mask = await greyMask(96, 80, thirds(96));
  valid[INPAINT] = { image, mask, prompt: "a sunlit kitchen", negative_prompt: "blur", seed: 7, grow_mask: 0, output_format: "png", style_preset: "photographic" };
  valid[SEARCH] = { image, prompt: "a red sofa", search_prompt: "the chair", seed: 7, grow_mask: 3, output_format: "webp" };
  valid[ERASE] = { image, mask, seed: 7, grow_mask: 5, output_format: "jpeg" };
  valid[OUTPAINT] = { image, left: 16, down: 8, creativity: 0.5, prompt: "more beach", style_preset: "cinematic", seed: 7 };
  valid[REMOVE_BG] = { image, output_format: "png" };
});

describe("validateStabilityRequest", () => {
  const problem = async (modelId: string, body: unknown): Promise<string> => {
    const { problem } = await validateStabilityRequest(modelId, body);
    assert.ok(problem, `expected ${JSON.stringify(body).slice(0, 120)} to be refused for ${modelId}`);
    return problem;
  };

  test("accepts a correct body for each service, under the us. and the bare id, and reads its facts", async () => {
    const expected = { [INPAINT]: "inpaint", [SEARCH]: "search-replace", [ERASE]: "erase", [OUTPAINT]: "outpaint", [REMOVE_BG]: "remove-background" };
    assert.equal(STABILITY_MODELS.length, 10);
    for (const [id, service] of Object.entries(expected)) {
      for (const modelId of [id, id.replace(/^us\./, "")]) {
        assert.ok(STABILITY_MODELS.includes(modelId), modelId);
        const { problem, facts } = await validateStabilityRequest(modelId, valid[id]);
        assert.equal(problem, null, `${modelId}: ${problem}`);
        assert.equal(facts.service, service);
        assert.deepEqual([facts.width, facts.height], [96, 80]);
        assert.match(facts.imageHash ?? "", /^[0-9a-f]{16}$/);
      }
    }
    // validateBedrockRequest routes Stability ids here too.
    assert.equal((await validateBedrockRequest(SEARCH, valid[SEARCH])).problem, null);
    assert.match((await validateBedrockRequest(SEARCH, { ...valid[SEARCH], mask })).problem ?? "", /mask/);

    const inpaint = (await validateStabilityRequest(INPAINT, valid[INPAINT])).facts;
    assert.deepEqual([inpaint.prompt, inpaint.seed, inpaint.growMask, inpaint.outputFormat, inpaint.maskSameSize, inpaint.maskValues], ["a sunlit kitchen", 7, 0, "png", true, 3]);
    assert.ok(Math.abs(inpaint.maskWhiteFraction! - 64 / 96) < 1e-9, String(inpaint.maskWhiteFraction));
    const search = (await validateStabilityRequest(SEARCH, valid[SEARCH])).facts;
    assert.deepEqual([search.prompt, search.searchPrompt, search.growMask], ["a red sofa", "the chair", 3]);
    const out = (await validateStabilityRequest(OUTPAINT, valid[OUTPAINT])).facts;
    assert.deepEqual(out.extend, { left: 16, right: 0, up: 0, down: 8 });
  });

  test("accepts the edges of every range, and a mask of another size (recorded maskSameSize: false)", async () => {
    const ok = async (modelId: string, body: Body): Promise<void> => {
      const { problem } = await validateStabilityRequest(modelId, body);
      assert.equal(problem, null, problem ?? "");
    };
    await ok(INPAINT, { image: await flat(64, 64), prompt: "x" });
    await ok(INPAINT, { image: await flat(160, 64), prompt: "x" });
    await ok(INPAINT, { image: await flat(64, 160), prompt: "x" });
    await ok(ERASE, { image: await flat(3072, 3072) });
    await ok(INPAINT, { ...valid[INPAINT], seed: MAX_SEED, grow_mask: 20, prompt: "p".repeat(10_000) });
    await ok(OUTPAINT, { image, up: 2000, creativity: 0.1 });
    await ok(OUTPAINT, { image, right: 1, creativity: 1, prompt: "" });
    const other = await greyMask(48, 40, (x) => (x < 24 ? 0 : 255));
    const { problem, facts } = await validateStabilityRequest(ERASE, { image, mask: other });
    assert.equal(problem, null);
    assert.deepEqual([facts.maskWidth, facts.maskHeight, facts.maskSameSize, facts.maskValues, facts.maskWhiteFraction], [48, 40, false, 2, 0.5]);
  });

  test("refuses each class of violation, naming the problem", async () => {
    const notImage = Buffer.from("this is plain text, not an image").toString("base64");
    const cases: [string, string, () => Promise<Body> | Body, RegExp][] = [
      ["an unknown key", INPAINT, () => ({ ...valid[INPAINT], cfg_scale: 7 }), /unexpected key.*cfg_scale/],
      ["a Titan key", ERASE, () => ({ ...valid[ERASE], taskType: "INPAINTING" }), /unexpected key.*taskType/],
      ["no prompt for inpaint", INPAINT, () => ({ image }), /prompt is required/],
      ["an empty prompt", INPAINT, () => ({ image, prompt: "" }), /prompt must be 1-10000/],
      ["a prompt over 10,000 chars", OUTPAINT, () => ({ image, left: 8, prompt: "p".repeat(10_001) }), /prompt must be 0-10000.*10001/],
      ["no search_prompt", SEARCH, () => ({ image, prompt: "sofa" }), /search_prompt is required/],
      ["a mask on search-replace", SEARCH, () => ({ ...valid[SEARCH], mask }), /unexpected key.*search-replace: mask/],
      ["a prompt on erase", ERASE, () => ({ ...valid[ERASE], prompt: "x" }), /unexpected key.*erase: prompt/],
      ["a negative_prompt on erase", ERASE, () => ({ ...valid[ERASE], negative_prompt: "x" }), /negative_prompt/],
      ["a style_preset on erase", ERASE, () => ({ ...valid[ERASE], style_preset: "anime" }), /style_preset/],
      ["a seed on remove-background", REMOVE_BG, () => ({ image, seed: 3 }), /unexpected key.*seed/],
      ["jpeg from remove-background", REMOVE_BG, () => ({ image, output_format: "jpeg" }), /output_format must be one of png, webp/],
      ["no image", ERASE, () => ({ mask }), /image is required/],
      ["a 63 px side", INPAINT, async () => ({ image: await flat(63, 100), prompt: "x" }), /63x100.*at least 64/],
      ["9,437,186 px (the first count over 9,437,184 with sides >= 64 and a legal aspect)", ERASE, async () => ({ image: await flat(2033, 4642) }), /9437186 pixels.*9437184/],
      ["aspect 2.6:1", INPAINT, async () => ({ image: await flat(260, 100), prompt: "x" }), /aspect ratio/],
      ["aspect 1:2.6", ERASE, async () => ({ image: await flat(100, 260) }), /aspect ratio/],
      ["seed 4294967295", INPAINT, () => ({ ...valid[INPAINT], seed: 4_294_967_295 }), /seed must be an integer 0-4294967294/],
      ["a negative seed", ERASE, () => ({ ...valid[ERASE], seed: -1 }), /seed/],
      ["a fractional seed", ERASE, () => ({ ...valid[ERASE], seed: 1.5 }), /seed/],
      ["grow_mask 21", INPAINT, () => ({ ...valid[INPAINT], grow_mask: 21 }), /grow_mask must be an integer 0-20, got 21/],
      ["outpaint with all sides 0", OUTPAINT, () => ({ image, left: 0, right: 0, up: 0, down: 0 }), /at least one of left, right, up, down/],
      ["outpaint with no side", OUTPAINT, () => ({ image, prompt: "x" }), /at least one/],
      ["outpaint side 2001", OUTPAINT, () => ({ image, left: 2001 }), /left must be an integer 0-2000/],
      ["creativity 1.5", OUTPAINT, () => ({ ...valid[OUTPAINT], creativity: 1.5 }), /creativity must be a number 0.1-1.0, got 1.5/],
      ["a bad style preset", INPAINT, () => ({ ...valid[INPAINT], style_preset: "watercolour" }), /style_preset must be one of .*"watercolour"/],
      ["a bad output_format", INPAINT, () => ({ ...valid[INPAINT], output_format: "gif" }), /output_format/],
      ["bad base64", INPAINT, () => ({ ...valid[INPAINT], image: "not base64!" }), /image is not valid base64/],
      ["a mask in bad base64", INPAINT, () => ({ ...valid[INPAINT], mask: "@@@@" }), /mask is not valid base64/],
      ["a non-image", ERASE, () => ({ image: notImage }), /image does not decode as an image/],
      ["a GIF", ERASE, async () => ({ image: await photo(96, 80, "gif") }), /must be PNG, JPEG or WebP, got gif/],
      [
        "a mask with alpha",
        ERASE,
        async () => ({
          image,
          mask: (
            await sharp({ create: { width: 96, height: 80, channels: 4, background: "#fff" } })
              .png()
              .toBuffer()
          ).toString("base64"),
        }),
        /alpha/,
      ],
      ["a prompt that is not a string", INPAINT, () => ({ ...valid[INPAINT], prompt: 5 }), /prompt must be a string/],
      ["a body that is not an object", INPAINT, () => [valid[INPAINT]] as unknown as Body, /JSON object/],
    ];
    for (const [name, modelId, make, expected] of cases) {
      assert.match(await problem(modelId, await make()), expected, name);
    }
    assert.match(await problem("us.stability.sd3-5-large-v1:0", valid[INPAINT]), /unknown model/);
  });
});

describe("through the AWS SDK client", () => {
  const clients: BedrockRuntimeClient[] = [];
  const standIns: BedrockStandIn[] = [];

  async function serve(opts: BedrockStandInOptions = {}): Promise<{ standIn: BedrockStandIn; invoke(modelId: string, body: unknown): Promise<StabilityAnswer> }> {
    const standIn = await startBedrockStandIn(opts);
    const client = new BedrockRuntimeClient({
      region: "us-east-1",
      endpoint: standIn.endpoint,
      maxAttempts: 1,
      requestHandler: new NodeHttpHandler({ connectionTimeout: 5000, requestTimeout: 30_000 }),
    });
    standIns.push(standIn);
    clients.push(client);
    return {
      standIn,
      async invoke(modelId, body) {
        const out = await client.send(
          new InvokeModelCommand({ modelId, contentType: "application/json", accept: "application/json", body: new TextEncoder().encode(JSON.stringify(body)) }),
        );
        return JSON.parse(new TextDecoder().decode(out.body)) as StabilityAnswer;
      },
    };
  }

  after(async () => {
    for (const c of clients) c.destroy();
    await Promise.all(standIns.map((s) => s.close()));
  });

  test("inpaint answers seeds, finish_reasons and one image of the sent size, differing from the input everywhere", async () => {
    const { standIn, invoke } = await serve();
    const answer = await invoke(INPAINT, valid[INPAINT]);
    assert.deepEqual(answer.seeds, [7]);
    assert.deepEqual(answer.finish_reasons, [null]);
    assert.equal(answer.images.length, 1);
    const out = await decode(answer.images[0]!);
    const input = await decode(image);
    assert.deepEqual([out.format, out.width, out.height, out.channels], ["png", 96, 80, 3]);
    assert.deepEqual([...out.data.subarray(0, 3)], seedColour(7));
    let same = 0;
    for (let i = 0; i < out.data.length; i += 3) if (out.data.compare(input.data, i, i + 3, i, i + 3) === 0) same++;
    assert.equal(same, 0);

    const rec = standIn.requests[0]!;
    assert.equal(standIn.requests.length, 1);
    assert.deepEqual(
      [rec.model, rec.status, rec.service, rec.prompt, rec.seed, rec.answeredSeed, rec.width, rec.height, rec.maskSameSize, rec.growMask, rec.filtered],
      [INPAINT, 200, "inpaint", "a sunlit kitchen", 7, 7, 96, 80, true, 0, undefined],
    );
    assert.match(rec.userAgent ?? "", /aws-sdk-js/);
  });

  test("a colour present in the input is never answered", async () => {
    const { invoke } = await serve();
    const [r, g, b] = seedColour(7);
    const data = Buffer.alloc(64 * 64 * 3);
    for (let i = 0; i < data.length; i += 3) data.set([r, g, b], i);
    const same = (
      await sharp(data, { raw: { width: 64, height: 64, channels: 3 } })
        .png()
        .toBuffer()
    ).toString("base64");
    const out = await decode((await invoke(ERASE, { image: same, seed: 7 })).images[0]!);
    assert.notDeepEqual([...out.data.subarray(0, 3)], [r, g, b]);
    assert.deepEqual([...out.data.subarray(0, 3)], seedColour(8));
  });

  test("seed 0 or none gets a random seed, reported and recorded; output_format is honoured; outpaint extends the canvas", async () => {
    const { standIn, invoke } = await serve();
    const zero = await invoke(SEARCH, { ...valid[SEARCH], seed: 0 });
    const none = await invoke(ERASE, { image, mask });
    for (const a of [zero, none]) {
      assert.equal(a.seeds.length, 1);
      assert.ok(a.seeds[0]! >= 1 && a.seeds[0]! <= MAX_SEED, String(a.seeds[0]));
    }
    assert.notEqual(zero.seeds[0], none.seeds[0]);
    assert.deepEqual(
      standIn.requests.map((r) => [r.seed, r.answeredSeed]),
      [
        [0, zero.seeds[0]],
        [undefined, none.seeds[0]],
      ],
    );
    assert.equal((await decode(zero.images[0]!)).format, "webp");
    assert.equal((await decode((await invoke(ERASE, valid[ERASE])).images[0]!)).format, "jpeg");

    const out = await decode((await invoke(OUTPAINT, valid[OUTPAINT])).images[0]!);
    assert.deepEqual([out.width, out.height], [96 + 16, 80 + 8]);
    assert.deepEqual(standIn.requests.at(-1)!.extend, { left: 16, right: 0, up: 0, down: 8 });
  });

  test("a blocked word gives finish reason 'Filter reason: prompt', with no image or (stabilityFilterAs image) a blank one", async () => {
    const { standIn, invoke } = await serve({ blockPrompts: ["Forbidden"] });
    const blocked = await invoke(INPAINT, { ...valid[INPAINT], prompt: "a FORBIDDEN thing" });
    assert.deepEqual(blocked, { seeds: [7], finish_reasons: ["Filter reason: prompt"], images: [] });
    const bySearch = await invoke(SEARCH, { ...valid[SEARCH], search_prompt: "the forbidden chair" });
    assert.deepEqual([bySearch.finish_reasons, bySearch.images], [["Filter reason: prompt"], []]);
    assert.deepEqual((await invoke(INPAINT, valid[INPAINT])).finish_reasons, [null]);
    assert.deepEqual(
      standIn.requests.map((r) => [r.status, r.filtered]),
      [
        [200, "Filter reason: prompt"],
        [200, "Filter reason: prompt"],
        [200, undefined],
      ],
    );

    const imaged = await serve({ blockPrompts: ["forbidden"], stabilityFilterAs: "image" });
    const blank = await imaged.invoke(INPAINT, { ...valid[INPAINT], prompt: "forbidden" });
    assert.deepEqual(blank.finish_reasons, ["Filter reason: prompt"]);
    assert.equal(blank.images.length, 1);
    const out = await decode(blank.images[0]!);
    assert.deepEqual([out.width, out.height, Math.max(...out.data)], [96, 80, 0]);
  });

  test("inferenceErrorFirst: the first N valid requests finish with 'Inference error' and no image; invalid ones do not count", async () => {
    const { invoke } = await serve({ inferenceErrorFirst: 1 });
    await assert.rejects(invoke(ERASE, { image, prompt: "x" }), (e: Error) => e.name === "ValidationException");
    assert.deepEqual(await invoke(ERASE, valid[ERASE]), { seeds: [7], finish_reasons: ["Inference error"], images: [] });
    const next = await invoke(ERASE, valid[ERASE]);
    assert.deepEqual([next.finish_reasons, next.images.length], [[null], 1]);
  });

  test("errors: ThrottlingException over the rate, ValidationException naming the problem, 500s, access denied, unserved models", async () => {
    const throttled = await serve({ throttleAbovePerSecond: 1 });
    await throttled.invoke(ERASE, valid[ERASE]);
    await assert.rejects(throttled.invoke(ERASE, valid[ERASE]), (e: Error & { $metadata?: { httpStatusCode?: number } }) => {
      assert.equal(e.name, "ThrottlingException");
      assert.equal(e.$metadata?.httpStatusCode, 429);
      return true;
    });
    assert.deepEqual(
      throttled.standIn.requests.map((r) => r.status),
      [200, 429],
    );

    const plain = await serve({ failFirst: 1 });
    await assert.rejects(plain.invoke(INPAINT, valid[INPAINT]), (e: Error) => e.name === "InternalServerException");
    await assert.rejects(plain.invoke(SEARCH, { ...valid[SEARCH], mask }), (e: Error) => {
      assert.equal(e.name, "ValidationException");
      assert.match(e.message, /search-replace: mask/);
      return true;
    });
    assert.equal(plain.standIn.requests.at(-1)!.status, 400);

    const denied = await serve({ denyAccess: true });
    await assert.rejects(denied.invoke(INPAINT, valid[INPAINT]), (e: Error) => e.name === "AccessDeniedException");
    const titanOnly = await serve({ models: ["amazon.titan-image-generator-v2:0"] });
    await assert.rejects(titanOnly.invoke(INPAINT, valid[INPAINT]), (e: Error) => e.name === "ResourceNotFoundException");
  });

  test("remove-background answers the input with an alpha channel: a centred ellipse with a soft edge, seeds [0]", async () => {
    const { standIn, invoke } = await serve();
    const w = 200;
    const h = 160;
    const input = await decode(await photo(w, h));
    const answer = await invoke(REMOVE_BG, { image: await photo(w, h) });
    assert.deepEqual([answer.seeds, answer.finish_reasons], [[0], [null]]);
    const out = await decode(answer.images[0]!);
    assert.deepEqual([out.format, out.width, out.height, out.channels], ["png", w, h, 4]);
    const alpha = (x: number, y: number): number => out.data[(y * w + x) * 4 + 3]!;
    assert.equal(alpha(w / 2, h / 2), 255);
    for (const [x, y] of [
      [0, 0],
      [w - 1, 0],
      [0, h - 1],
      [w - 1, h - 1],
      [5, h / 2],
      [w / 2, 3],
    ] as const)
      assert.equal(alpha(x, y), 0, `${x},${y}`);
    // The edge: semi-axis 60 px along x; fully opaque 3 px inside, transparent 3 px outside, a ramp between.
    assert.equal(alpha(w / 2 + 56, h / 2), 255);
    assert.equal(alpha(w / 2 + 63, h / 2), 0);
    const ramp = [...Array(w).keys()].filter((x) => alpha(x, h / 2) > 0 && alpha(x, h / 2) < 255);
    assert.ok(ramp.length >= 4 && ramp.length <= 10, `ramp pixels on the middle row: ${ramp.join(",")}`);
    for (let i = 0; i < w * h; i++) {
      if (out.data.compare(input.data, i * 3, i * 3 + 3, i * 4, i * 4 + 3) !== 0) assert.fail(`RGB differs at pixel ${i}`);
    }
    assert.equal(standIn.requests[0]!.answeredSeed, 0);
    const webp = await decode((await invoke(REMOVE_BG, { image, output_format: "webp" })).images[0]!);
    assert.deepEqual([webp.format, webp.channels], ["webp", 4]);
  });
});
