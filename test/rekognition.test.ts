/**
 * The Rekognition detector with the real AWS SDK client against the local stand-in
 * (test/standins/rekognition.ts), which validates every request. Dummy credentials; nothing leaves
 * 127.0.0.1.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer } from "node:net";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import type { AwsSettings } from "../src/runtime/aws.js";
import { ConfigError, FatalServiceError, InputError, RejectedError, ThrottledError } from "../src/runtime/errors.js";
import { decodeImage, encodeJpeg, resizeRgb, type DecodedImage } from "../src/imaging/image.js";
import type { Box, RgbImage } from "../src/imaging/types.js";
import { createRekognitionDetector, encodeForRekognition, MAX_IMAGE_BYTES, ratioBoxToPixels, type RekognitionDetectorOptions } from "../src/detectors/rekognition.js";
import { repoRoot } from "./helpers.js";
import { FAULTS, startRekognitionStandIn, type RekognitionCall, type RekognitionStandIn } from "./standins/rekognition.js";

// Dummy credentials from the environment (the SDK's default chain reads them first); no profile,
// no instance metadata lookups.
process.env.AWS_ACCESS_KEY_ID = "AKIDSTANDIN";
process.env.AWS_SECRET_ACCESS_KEY = "standin-secret";
delete process.env.AWS_SESSION_TOKEN;
delete process.env.AWS_PROFILE;
process.env.AWS_EC2_METADATA_DISABLED = "true";

const photos = path.join(repoRoot, "samples/photos");

/** What the current test wants the stand-in to answer. */
let answer: (call: RekognitionCall) => unknown = () => ({});
const s3Objects = new Map<string, Buffer>();
let standIn: RekognitionStandIn;
let astronaut: DecodedImage;
let coffee: DecodedImage;

before(async () => {
  standIn = await startRekognitionStandIn({ answer: (call) => answer(call), s3Objects });
  astronaut = await decodeImage(await readFile(path.join(photos, "astronaut.jpg")), "astronaut.jpg");
  coffee = await decodeImage(await readFile(path.join(photos, "coffee.jpg")), "coffee.jpg");
});
after(() => standIn.close());

function aws(endpoint = standIn.endpoint): AwsSettings {
  return { region: "us-east-1", endpoints: { rekognition: endpoint } };
}

/** A detector against the stand-in; closed by the caller. */
function detector(opts: Partial<RekognitionDetectorOptions> & { target: string }) {
  return createRekognitionDetector({ aws: aws(), minConfidence: 0.7, ...opts });
}

/** Runs fn and returns the requests the stand-in received meanwhile. */
async function during<T>(fn: () => Promise<T>): Promise<{ result: T; requests: RekognitionStandIn["requests"] }> {
  const start = standIn.requests.length;
  const result = await fn();
  return { result, requests: standIn.requests.slice(start) };
}

function bb(Left: number, Top: number, Width: number, Height: number) {
  return { Left, Top, Width, Height };
}

function face(confidence: number, box: ReturnType<typeof bb>) {
  return { BoundingBox: box, Confidence: confidence, Landmarks: [], Pose: { Roll: 0, Yaw: 0, Pitch: 0 }, Quality: { Brightness: 80, Sharpness: 90 } };
}

function corners(b: Box) {
  return [b.x0, b.y0, b.x1, b.y1];
}

/** The box around reddish pixels: what our test "detector" finds in whatever frame it is shown. */
function redBox(img: { data: Uint8Array; width: number; height: number }): [number, number, number, number] {
  let x0 = Infinity,
    y0 = Infinity,
    x1 = -1,
    y1 = -1;
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const i = (y * img.width + x) * 3;
      if (img.data[i]! > 180 && img.data[i + 1]! < 90 && img.data[i + 2]! < 90) {
        x0 = Math.min(x0, x);
        y0 = Math.min(y0, y);
        x1 = Math.max(x1, x + 1);
        y1 = Math.max(y1, y + 1);
      }
    }
  }
  assert.ok(x1 > 0, "no red pixels in the image");
  return [x0, y0, x1, y1];
}

/** A stand-in answer that finds the red patch in the frame Rekognition analyses, as a face. */
async function redFace(call: RekognitionCall) {
  const px = await call.pixels();
  const [x0, y0, x1, y1] = redBox(px);
  return { FaceDetails: [face(99, bb(x0 / px.width, y0 / px.height, (x1 - x0) / px.width, (y1 - y0) / px.height))] };
}

function assertNear(actual: number[], expected: number[], tol: number, what: string) {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < actual.length; i++) assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `${what}: got [${actual}], expected [${expected}] (+-${tol})`);
}

describe("faces", () => {
  test("DetectFaces on a real photo: pixel boxes, best first, below-threshold and empty dropped, out-of-range ratios clamped", async () => {
    answer = (call) => {
      assert.equal(call.op, "DetectFaces");
      return {
        FaceDetails: [
          face(82.5, bb(0.1, 0.2, 0.25, 0.3)),
          face(99.5, bb(0.35, 0.1, 0.3, 0.4)),
          face(55, bb(0.6, 0.6, 0.2, 0.2)), // under minConfidence 0.7
          face(90, bb(-0.1, 0.9, 0.3, 0.25)), // sticks out left and bottom
          face(95, bb(1.05, 0.2, 0.1, 0.1)), // entirely outside: nothing left after clamping
        ],
        OrientationCorrection: null,
      };
    };
    const d = detector({ target: "face" });
    try {
      assert.equal(d.name, "rekognition:faces");
      const { result, requests } = await during(() => d.detect(astronaut));
      assert.deepEqual(result, [
        { x0: 179, y0: 51, x1: 333, y1: 256, score: 0.995, label: "face" },
        { x0: 0, y0: 461, x1: 102, y1: 512, score: 0.9, label: "face" },
        { x0: 51, y0: 102, x1: 179, y1: 256, score: 0.825, label: "face" },
      ]);
      assert.equal(requests.length, 1);
      const [r] = requests;
      assert.equal(r!.status, 200, JSON.stringify(r!.error));
      assert.deepEqual(r!.request?.Attributes, ["DEFAULT"]);
      assert.equal(r!.image?.kind, "bytes");
      assert.equal(r!.image?.format, "jpeg");
      assert.deepEqual([r!.image?.width, r!.image?.height], [512, 512]);
      assert.deepEqual(standIn.invalid(), []);
    } finally {
      await d.close();
    }
  });

  test("maxObjects keeps the best boxes; a face with no box is skipped", async () => {
    answer = () => ({ FaceDetails: [face(80, bb(0, 0, 0.5, 0.5)), { Confidence: 99 }, face(97, bb(0.5, 0.5, 0.5, 0.5)), face(90, bb(0.2, 0.2, 0.3, 0.3))] });
    const d = detector({ target: "face", maxObjects: 2 });
    try {
      const boxes = await d.detect(coffee);
      assert.deepEqual(
        boxes.map((b) => b.score),
        [0.97, 0.9],
      );
      assert.deepEqual(corners(boxes[0]!), [300, 200, 600, 400]);
    } finally {
      await d.close();
    }
  });

  test("no faces -> empty list (the stage reports 'no face found')", async () => {
    answer = () => ({ FaceDetails: [] });
    const d = detector({ target: "Face" });
    try {
      assert.deepEqual(await d.detect(coffee), []);
      assert.equal(standIn.requests.at(-1)?.op, "DetectFaces");
    } finally {
      await d.close();
    }
  });
});

describe("labels", () => {
  /** A label catalogue the stand-in filters like Rekognition: only labels in the inclusion filter, at or above MinConfidence. */
  const catalogue = [
    {
      Name: "Car",
      Confidence: 96,
      Instances: [
        { BoundingBox: bb(0.1, 0.25, 0.5, 0.5), Confidence: 93.5 },
        { BoundingBox: bb(0.7, 0.7, 0.5, 0.5), Confidence: 99 }, // partly outside: clamped
        { BoundingBox: bb(0.4, 0.1, 0.1, 0.1), Confidence: 41 }, // under the threshold
      ],
      Parents: [{ Name: "Vehicle" }, { Name: "Transportation" }],
      Categories: [{ Name: "Vehicles and Automotive" }],
    },
    { Name: "Vehicle", Confidence: 96, Instances: [{ BoundingBox: bb(0, 0, 1, 1), Confidence: 96 }], Parents: [] },
    { Name: "Road", Confidence: 88, Instances: [], Parents: [] },
    { Name: "Beach", Confidence: 99, Instances: [], Parents: [] },
  ];
  function filtered(call: RekognitionCall) {
    const settings = call.request.Settings as { GeneralLabels?: { LabelInclusionFilters?: string[] } } | undefined;
    const include = settings?.GeneralLabels?.LabelInclusionFilters;
    const min = (call.request.MinConfidence as number | undefined) ?? 55;
    return { Labels: catalogue.filter((l) => (!include || include.includes(l.Name)) && l.Confidence >= min), LabelModelVersion: "3.0" };
  }

  test("DetectLabels sends the inclusion filter and MinConfidence; boxes from the label's instances", async () => {
    answer = filtered;
    const d = detector({ target: "Car", minConfidence: 0.6 });
    try {
      assert.equal(d.name, "rekognition:labels");
      const { result, requests } = await during(() => d.detect(coffee));
      assert.equal(requests.length, 1);
      const r = requests[0]!;
      assert.equal(r.op, "DetectLabels");
      assert.equal(r.status, 200, JSON.stringify(r.error));
      assert.deepEqual(r.request?.Features, ["GENERAL_LABELS"]);
      assert.deepEqual(r.request?.Settings, { GeneralLabels: { LabelInclusionFilters: ["Car"] } });
      assert.equal(r.request?.MinConfidence, 60);
      assert.deepEqual(result, [
        { x0: 420, y0: 280, x1: 600, y1: 400, score: 0.99, label: "Car" },
        { x0: 60, y0: 100, x1: 360, y1: 300, score: 0.935, label: "Car" },
      ]);
      assert.deepEqual(standIn.invalid(), []);
    } finally {
      await d.close();
    }
  });

  test("a label without instances gives no boxes", async () => {
    answer = filtered;
    const d = detector({ target: "Beach" });
    try {
      const { result, requests } = await during(() => d.detect(coffee));
      assert.equal(requests[0]?.status, 200);
      assert.deepEqual(result, []);
    } finally {
      await d.close();
    }
  });

  test("only the asked label's instances count, even if the service returns others", async () => {
    answer = () => ({ Labels: catalogue });
    const d = detector({ target: "car" });
    try {
      const boxes = await d.detect(coffee);
      assert.deepEqual(
        boxes.map((b) => b.label),
        ["Car", "Car"],
      );
    } finally {
      await d.close();
    }
  });
});

describe("the image sent", () => {
  test("a 6000x4000 noisy photo over 5 MiB as JPEG is sent under 5 MiB; boxes map to full-size pixels", { timeout: 60_000 }, async () => {
    const base = await resizeRgb(astronaut, 6000, 4000, "fill");
    const noise = randomBytes(base.data.length);
    const data = new Uint8Array(base.data.length);
    for (let i = 0; i < data.length; i++) data[i] = Math.min(255, Math.max(0, base.data[i]! + ((noise[i]! - 128) >> 1)));
    const big: RgbImage = { data, width: 6000, height: 4000 };
    assert.ok((await encodeJpeg(big, 90)).length > MAX_IMAGE_BYTES, "test premise: the photo is over 5 MiB at quality 90");

    answer = () => ({ FaceDetails: [face(99, bb(0.25, 0.5, 0.5, 0.25))] });
    const d = detector({ target: "face" });
    try {
      const { result, requests } = await during(() => d.detect(big));
      const r = requests[0]!;
      assert.equal(r.status, 200, JSON.stringify(r.error));
      assert.ok(r.image!.byteSize <= MAX_IMAGE_BYTES, `sent ${r.image!.byteSize} bytes`);
      assert.ok(r.image!.width < 6000, `sent ${r.image!.width}x${r.image!.height}: scaled down`);
      assert.ok(Math.abs(r.image!.width / r.image!.height - 1.5) < 0.01, "aspect ratio kept");
      assert.deepEqual(result.map(corners), [[1500, 2000, 4500, 3000]]);
    } finally {
      await d.close();
    }
  });

  test("encodeForRekognition steps quality down before scaling", async () => {
    const full = await encodeJpeg(coffee, 90);
    const q70 = await encodeJpeg(coffee, 70);
    // A limit between the q70 and q90 sizes: quality alone fits it, at the full size.
    const out = await encodeForRekognition(coffee, Math.floor((full.length + q70.length) / 2));
    assert.ok(out.quality < 90);
    assert.deepEqual([out.width, out.height], [600, 400]);
    // A limit under the q70 size: scaled down.
    const small = await encodeForRekognition(coffee, Math.floor(q70.length / 2));
    assert.ok(small.bytes.length <= q70.length / 2);
    assert.ok(small.width < 600 && small.height < 400);
    assert.equal(ratioBoxToPixels(bb(0.5, 0.5, 2, 2), coffee)?.x1, 600);
  });

  test("EXIF-rotated JPEG: boxes land in the oriented frame, sent as Bytes or read from S3 by Rekognition", async () => {
    // Stored 300x200 with a red patch near the top-left; orientation 6 displays it 200x300, rotated 90 degrees clockwise.
    const stored = await sharp({ create: { width: 300, height: 200, channels: 3, background: { r: 90, g: 120, b: 160 } } })
      .composite([{ input: { create: { width: 60, height: 40, channels: 3, background: { r: 230, g: 20, b: 20 } } }, left: 20, top: 30 }])
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const img = await decodeImage(stored, "rotated.jpg");
    assert.equal(img.orientation, 6);
    assert.deepEqual([img.width, img.height], [200, 300]);
    const expected = redBox(img);
    // In the oriented frame the patch is at the top-right (x 130-170, y 20-80), not where it is stored.
    assertNear(expected, [130, 20, 170, 80], 2, "red patch in the decoded image");

    s3Objects.set("catalog-bucket/shots/rotated.jpg", stored);
    answer = redFace;
    const d = detector({ target: "face" });
    try {
      const viaBytes = await during(() => d.detect(img));
      assert.equal(viaBytes.requests[0]?.image?.kind, "bytes");
      assert.equal(viaBytes.requests[0]?.image?.orientation, 1, "the pixels sent are already oriented");
      assertNear(corners(viaBytes.result[0]!), expected, 2, "box via Bytes");

      const viaS3 = await during(() => d.detect(img, { s3: { bucket: "catalog-bucket", key: "shots/rotated.jpg" } }));
      const r = viaS3.requests[0]!;
      assert.equal(r.image?.kind, "s3");
      assert.equal(r.image?.orientation, 6);
      assert.deepEqual([r.image?.width, r.image?.height], [200, 300]);
      assertNear(corners(viaS3.result[0]!), expected, 2, "box via S3Object");
    } finally {
      await d.close();
    }
  });

  test("a PNG with an Exif orientation (applied by us, not by Rekognition) is sent as Bytes even with an S3 source", async () => {
    const stored = await sharp({ create: { width: 300, height: 200, channels: 3, background: { r: 90, g: 120, b: 160 } } })
      .composite([{ input: { create: { width: 60, height: 40, channels: 3, background: { r: 230, g: 20, b: 20 } } }, left: 20, top: 30 }])
      .png()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const img = await decodeImage(stored, "rotated.png");
    assert.equal(img.orientation, 6, "test premise: sharp applies the PNG's orientation");
    s3Objects.set("catalog-bucket/shots/rotated.png", stored);
    answer = redFace;
    const d = detector({ target: "face" });
    try {
      const { result, requests } = await during(() => d.detect(img, { s3: { bucket: "catalog-bucket", key: "shots/rotated.png" } }));
      assert.deepEqual(
        requests.map((r) => r.image?.kind),
        ["bytes"],
      );
      assertNear(corners(result[0]!), redBox(img), 2, "box");
    } finally {
      await d.close();
    }
  });

  test("S3Object is sent when a source is given (JPEG); WebP is re-encoded and sent as Bytes", async () => {
    s3Objects.set("catalog-bucket/photos/astronaut.jpg", await readFile(path.join(photos, "astronaut.jpg")));
    answer = () => ({ FaceDetails: [face(99, bb(0.5, 0.25, 0.25, 0.5))] });
    const d = detector({ target: "face" });
    try {
      const { result, requests } = await during(() => d.detect(astronaut, { s3: { bucket: "catalog-bucket", key: "photos/astronaut.jpg" } }));
      assert.equal(requests.length, 1);
      assert.deepEqual(requests[0]!.request?.Image, { S3Object: { Bucket: "catalog-bucket", Name: "photos/astronaut.jpg" } });
      assert.equal(requests[0]!.status, 200);
      assert.deepEqual(result.map(corners), [[256, 128, 384, 384]]);

      const webpBytes = await sharp(await readFile(path.join(photos, "coffee.jpg")))
        .webp()
        .toBuffer();
      s3Objects.set("catalog-bucket/photos/coffee.webp", webpBytes);
      const webp = await decodeImage(webpBytes, "coffee.webp");
      const second = await during(() => d.detect(webp, { s3: { bucket: "catalog-bucket", key: "photos/coffee.webp" } }));
      assert.deepEqual(
        second.requests.map((r) => [r.image?.kind, r.image?.format]),
        [["bytes", "jpeg"]],
      );
      assert.deepEqual(second.result.map(corners), [[300, 100, 450, 300]]);
    } finally {
      await d.close();
    }
  });

  test("an S3 object Rekognition refuses as too large is sent again as Bytes", async () => {
    const huge = Buffer.alloc(16 * 1024 * 1024);
    huge.set([0xff, 0xd8, 0xff, 0xe0]);
    s3Objects.set("catalog-bucket/photos/huge.jpg", huge);
    answer = () => ({ FaceDetails: [face(99, bb(0.5, 0.25, 0.25, 0.5))] });
    const d = detector({ target: "face" });
    try {
      const { result, requests } = await during(() => d.detect(astronaut, { s3: { bucket: "catalog-bucket", key: "photos/huge.jpg" } }));
      assert.deepEqual(
        requests.map((r) => [r.image?.kind ?? "s3", r.error?.type ?? r.status]),
        [
          ["s3", "ImageTooLargeException"],
          ["bytes", 200],
        ],
      );
      assert.deepEqual(result.map(corners), [[256, 128, 384, 384]]);
    } finally {
      await d.close();
    }
  });

  test("an S3 object Rekognition cannot read -> InputError naming it", async () => {
    const d = detector({ target: "face" });
    try {
      await assert.rejects(d.detect(astronaut, { s3: { bucket: "catalog-bucket", key: "photos/missing.jpg" } }), (err: Error) => {
        assert.ok(err instanceof InputError, `${err.name}: ${err.message}`);
        assert.match(err.message, /s3:\/\/catalog-bucket\/photos\/missing\.jpg.*InvalidS3ObjectException/);
        return true;
      });
    } finally {
      await d.close();
    }
  });
});

describe("errors", () => {
  const cases = [
    { fault: FAULTS.throttling, is: (e: Error) => e instanceof ThrottledError, what: "ThrottledError" },
    { fault: FAULTS.provisionedThroughput, is: (e: Error) => e instanceof ThrottledError, what: "ThrottledError" },
    {
      fault: FAULTS.accessDenied,
      is: (e: Error) => e instanceof FatalServiceError && !e.message.includes("\n") && /access denied/.test(e.message),
      what: "FatalServiceError, one line",
    },
    { fault: FAULTS.invalidImageFormat, is: (e: Error) => e instanceof InputError && /InvalidImageFormatException/.test(e.message), what: "InputError" },
    {
      fault: FAULTS.internal,
      is: (e: Error) =>
        !(e instanceof ThrottledError || e instanceof FatalServiceError || e instanceof InputError || e instanceof RejectedError) && /InternalServerError/.test(e.message),
      what: "plain Error",
    },
  ];
  for (const { fault, is, what } of cases) {
    const f = fault();
    test(`${f.status} ${f.type} -> ${what}, after exactly one request (SDK retries off)`, async () => {
      answer = () => ({ FaceDetails: [face(99, bb(0, 0, 1, 1))] });
      standIn.failNext(f);
      const d = detector({ target: "face" });
      try {
        const { requests } = await during(() =>
          assert.rejects(d.detect(astronaut), (err: Error) => {
            assert.ok(is(err), `${err.name}: ${err.message}`);
            return true;
          }),
        );
        assert.equal(requests.length, 1);
        assert.equal(requests[0]!.error?.type, f.type);
        // The next request goes through.
        assert.equal((await d.detect(astronaut)).length, 1);
      } finally {
        await d.close();
      }
    });
  }

  test("no server listening -> plain Error (transient)", async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const d = createRekognitionDetector({ aws: aws(`http://127.0.0.1:${port}`), target: "face", minConfidence: 0.5 });
    try {
      await assert.rejects(d.detect(astronaut), (err: Error) => {
        assert.ok(!(err instanceof ThrottledError || err instanceof FatalServiceError || err instanceof InputError), `${err.name}: ${err.message}`);
        assert.match(err.message, /Rekognition DetectFaces failed/);
        return true;
      });
    } finally {
      await d.close();
    }
  });

  test("bad options are ConfigErrors naming the key", () => {
    assert.throws(
      () => createRekognitionDetector({ aws: aws(), target: "face", minConfidence: 70 }),
      (e: Error) => e instanceof ConfigError && e.key === "minConfidence",
    );
    assert.throws(
      () => createRekognitionDetector({ aws: aws(), target: " ", minConfidence: 0.5 }),
      (e: Error) => e instanceof ConfigError && e.key === "target",
    );
    assert.throws(
      () => createRekognitionDetector({ aws: aws(), target: "x".repeat(101), minConfidence: 0.5 }),
      (e: Error) => e instanceof ConfigError && e.key === "target",
    );
    assert.throws(
      () => createRekognitionDetector({ aws: aws(), target: "Car", minConfidence: 0.5, maxObjects: 0 }),
      (e: Error) => e instanceof ConfigError && e.key === "maxObjects",
    );
  });
});

describe("the stand-in validates what it is sent", () => {
  /** A raw awsJson1_1 request, signed-looking, to see the stand-in refuse what the SDK would never send. */
  async function raw(op: string, body: unknown): Promise<{ status: number; type: string | null }> {
    const res = await fetch(standIn.endpoint, {
      method: "POST",
      headers: {
        "content-type": "application/x-amz-json-1.1",
        "x-amz-target": `RekognitionService.${op}`,
        authorization: "AWS4-HMAC-SHA256 Credential=AKIDSTANDIN/20260101/us-east-1/rekognition/aws4_request, SignedHeaders=host, Signature=00",
      },
      body: JSON.stringify(body),
    });
    await res.arrayBuffer();
    return { status: res.status, type: res.headers.get("x-amzn-errortype")?.split(":")[0] ?? null };
  }

  test("bad requests get the right error type", async () => {
    const jpeg = (await encodeJpeg(coffee, 80)).toString("base64");
    const gif = Buffer.from("GIF89a\x01\x00\x01\x00\x00\x00\x00;", "latin1").toString("base64");
    answer = () => ({ FaceDetails: [] });
    assert.deepEqual(await raw("DetectFaces", { Image: { Bytes: jpeg } }), { status: 200, type: null });
    assert.deepEqual(await raw("DetectFaces", { Image: { Bytes: jpeg, S3Object: { Bucket: "catalog-bucket", Name: "a.jpg" } } }), {
      status: 400,
      type: "InvalidParameterException",
    });
    assert.deepEqual(await raw("DetectFaces", { Image: {} }), { status: 400, type: "InvalidParameterException" });
    assert.deepEqual(await raw("DetectFaces", { Image: { Bytes: gif } }), { status: 400, type: "InvalidImageFormatException" });
    assert.deepEqual(await raw("DetectFaces", { Image: { Bytes: "" } }), { status: 400, type: "InvalidParameterException" });
    assert.deepEqual(await raw("DetectFaces", { Image: { Bytes: jpeg }, Extra: 1 }), { status: 400, type: "InvalidParameterException" });
    const big = Buffer.alloc(MAX_IMAGE_BYTES + 1);
    big.set([0xff, 0xd8, 0xff]);
    assert.deepEqual(await raw("DetectFaces", { Image: { Bytes: big.toString("base64") } }), { status: 400, type: "ImageTooLargeException" });
    assert.deepEqual(await raw("DetectLabels", { Image: { Bytes: jpeg }, MinConfidence: 70.5 }), { status: 200, type: null });
    assert.deepEqual(await raw("DetectLabels", { Image: { Bytes: jpeg }, MinConfidence: 101 }), { status: 400, type: "InvalidParameterException" });
    assert.deepEqual(await raw("DetectLabels", { Image: { Bytes: jpeg }, Settings: { GeneralLabels: { LabelInclusionFilters: "Car" } } }), {
      status: 400,
      type: "InvalidParameterException",
    });
    assert.deepEqual(await raw("DetectLabels", { Image: { Bytes: jpeg }, Settings: { GeneralLabels: { LabelInclusionFilters: [""] } } }), {
      status: 400,
      type: "InvalidParameterException",
    });
    assert.deepEqual(await raw("DetectLabels", { Image: { Bytes: jpeg }, Settings: { GeneralLabels: { Include: ["Car"] } } }), { status: 400, type: "InvalidParameterException" });
    assert.deepEqual(await raw("DetectText", { Image: { Bytes: jpeg } }), { status: 400, type: "UnknownOperationException" });
  });
});
