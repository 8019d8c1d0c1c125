/**
 * A local stand-in for Amazon Rekognition's DetectFaces and DetectLabels, speaking what the AWS SDK
 * v3 client sends (awsJson1_1: POST /, `X-Amz-Target: RekognitionService.<Op>`, JSON body; errors
 * as JSON `{"__type", "Message"}` plus the `x-amzn-ErrorType` header). Bound to 127.0.0.1.
 *
 * It validates every request against the contract (DESIGN.md, Contracts > Rekognition, and the API
 * reference): exactly one of Image.Bytes / Image.S3Object; Bytes base64 of 1 B - 5 MiB of JPEG or
 * PNG (by magic bytes, then decodable); S3 objects (bytes supplied by the test) up to 15 MB;
 * MinConfidence 0-100; well-formed label filters; unknown fields refused. Like Rekognition, it
 * analyses a JPEG with its Exif orientation applied and a PNG as stored, and reports that frame's
 * size (and pixels, on demand) to the test's `answer` function, which returns the response body.
 * Every request is recorded. Faults (throttling, server errors, ...) can be queued for the next
 * requests, or thrown from `answer` as a StandInFault.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import sharp, { type Metadata } from "sharp";
import { listenOnLoopback } from "./loopback.js";

export type RekognitionOp = "DetectFaces" | "DetectLabels";

export interface StandInImage {
  kind: "bytes" | "s3";
  s3?: { bucket: string; key: string };
  format: "jpeg" | "png";
  /** Size of the image file (decoded Bytes, or the S3 object). */
  byteSize: number;
  /** Exif orientation in the file (1 when none). */
  orientation: number;
  /** The frame Rekognition analyses: JPEG Exif orientation applied, PNG as stored. */
  width: number;
  height: number;
}

export interface RekognitionCall {
  op: RekognitionOp;
  /** The parsed request body, Image.Bytes replaced by a note of its size. */
  request: Record<string, unknown>;
  image: StandInImage;
  /** RGB pixels of the analysed frame (decoded on first call). */
  pixels(): Promise<{ data: Buffer; width: number; height: number }>;
}

export interface RecordedRequest {
  op: string;
  /** Undefined when the request failed validation before its image was read. */
  image?: StandInImage;
  request?: Record<string, unknown>;
  status: number;
  /** Set when the answer was an error. `injected`: a queued fault or one thrown by `answer`. */
  error?: { type: string; message: string; injected: boolean };
}

export class StandInFault extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

export const FAULTS = {
  throttling: () => new StandInFault(429, "ThrottlingException", "Slow down."),
  provisionedThroughput: () => new StandInFault(400, "ProvisionedThroughputExceededException", "Provisioned rate exceeded."),
  accessDenied: () => new StandInFault(403, "AccessDeniedException", "User is not authorized to perform: rekognition:DetectFaces"),
  internal: () => new StandInFault(500, "InternalServerError", "Internal server error."),
  invalidImageFormat: () => new StandInFault(400, "InvalidImageFormatException", "Request has invalid image format"),
};

export interface RekognitionStandInOptions {
  /** The response body for a valid request. Default: nothing found (`FaceDetails: []` / `Labels: []`). */
  answer?: (call: RekognitionCall) => unknown;
  /** The bytes of S3 objects readable by the stand-in, keyed "bucket/key". */
  s3Objects?: Map<string, Buffer>;
}

export interface RekognitionStandIn {
  /** http://127.0.0.1:PORT, for the client's `endpoint`. */
  endpoint: string;
  requests: RecordedRequest[];
  /** Answer the next requests (one fault each, after validation) with these faults. */
  failNext(...faults: StandInFault[]): void;
  /** Requests refused by validation (not injected faults): a correct client makes none. */
  invalid(): RecordedRequest[];
  close(): Promise<void>;
}

const MAX_BYTES = 5 * 1024 * 1024;
const MAX_S3_BYTES = 15 * 1024 * 1024;
const MAX_BODY = 16 * 1024 * 1024;
const FACE_ATTRIBUTES = new Set([
  "DEFAULT",
  "ALL",
  "AGE_RANGE",
  "BEARD",
  "EMOTIONS",
  "EYE_DIRECTION",
  "EYEGLASSES",
  "EYES_OPEN",
  "GENDER",
  "MOUTH_OPEN",
  "MUSTACHE",
  "FACE_OCCLUDED",
  "SMILE",
  "SUNGLASSES",
]);
const FILTER_KEYS = ["LabelInclusionFilters", "LabelExclusionFilters", "LabelCategoryInclusionFilters", "LabelCategoryExclusionFilters"];

export async function startRekognitionStandIn(opts: RekognitionStandInOptions = {}): Promise<RekognitionStandIn> {
  const requests: RecordedRequest[] = [];
  const faults: StandInFault[] = [];

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendError(res, new StandInFault(500, "InternalServerError", `stand-in failure: ${String(err)}`));
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const targetHeader = String(req.headers["x-amz-target"] ?? "");
    const op = targetHeader.replace(/^RekognitionService\./, "");
    const record: RecordedRequest = { op, status: 200 };
    requests.push(record);
    const fail = (f: StandInFault, injected = false) => {
      record.status = f.status;
      record.error = { type: f.type, message: f.message, injected };
      sendError(res, f);
    };
    const body = await readBody(req);
    if (body === undefined) return fail(new StandInFault(413, "SerializationException", `request body over ${MAX_BODY} bytes`));
    try {
      if (req.method !== "POST" || (req.url ?? "/") !== "/") throw invalid("UnknownOperationException", `${req.method} ${req.url} is not an operation`);
      if (!/^AWS4-HMAC-SHA256 Credential=/.test(String(req.headers.authorization ?? ""))) {
        throw new StandInFault(403, "MissingAuthenticationTokenException", "Missing Authentication Token");
      }
      if (String(req.headers["content-type"] ?? "") !== "application/x-amz-json-1.1") {
        throw invalid("SerializationException", `content-type ${JSON.stringify(req.headers["content-type"])}, expected application/x-amz-json-1.1`);
      }
      if (op !== "DetectFaces" && op !== "DetectLabels") throw invalid("UnknownOperationException", `unknown operation ${JSON.stringify(targetHeader)}`);
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString("utf8"));
      } catch {
        throw invalid("SerializationException", "body is not JSON");
      }
      if (!isObject(parsed)) throw invalid("SerializationException", "body is not a JSON object");
      if (op === "DetectFaces") validateDetectFaces(parsed);
      else validateDetectLabels(parsed);
      const { image, file } = await readImage(parsed.Image, opts.s3Objects);
      record.image = image;
      record.request = { ...parsed, Image: image.kind === "bytes" ? { Bytes: `<${image.byteSize} bytes>` } : parsed.Image };
      const injected = faults.shift();
      if (injected) return fail(injected, true);
      let pixels: Promise<{ data: Buffer; width: number; height: number }> | undefined;
      const call: RekognitionCall = {
        op,
        request: record.request,
        image,
        pixels: () => (pixels ??= decodeFrame(file, image.format)),
      };
      let answer: unknown;
      try {
        answer = opts.answer ? await opts.answer(call) : op === "DetectFaces" ? { FaceDetails: [] } : { Labels: [] };
      } catch (err) {
        if (err instanceof StandInFault) return fail(err, true);
        throw err;
      }
      res.writeHead(200, { "content-type": "application/x-amz-json-1.1", "x-amzn-requestid": requestId() });
      res.end(JSON.stringify(answer));
    } catch (err) {
      if (err instanceof StandInFault) return fail(err);
      throw err;
    }
  }

  const { endpoint, close } = await listenOnLoopback(server);
  return {
    endpoint,
    requests,
    failNext: (...f) => void faults.push(...f),
    invalid: () => requests.filter((r) => r.error && !r.error.injected),
    close,
  };
}

function invalid(type: string, message: string): StandInFault {
  return new StandInFault(400, type, message);
}

function sendError(res: ServerResponse, f: StandInFault): void {
  const payload = JSON.stringify({ __type: f.type, Message: f.message });
  res.writeHead(f.status, {
    "content-type": "application/x-amz-json-1.1",
    "x-amzn-errortype": `${f.type}:http://internal.amazon.com/coral/com.amazonaws.rekognition/`,
    "x-amzn-requestid": requestId(),
  });
  res.end(payload);
}

function requestId(): string {
  return randomUUID();
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function onlyKeys(obj: Record<string, unknown>, allowed: string[], where: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) throw invalid("InvalidParameterException", `unknown field ${where}${k}`);
  }
}

function validateDetectFaces(body: Record<string, unknown>): void {
  onlyKeys(body, ["Image", "Attributes"], "");
  if (body.Attributes !== undefined) {
    const a = body.Attributes;
    if (!Array.isArray(a) || !a.every((v) => typeof v === "string" && FACE_ATTRIBUTES.has(v))) {
      throw invalid("InvalidParameterException", `Attributes must be a list of ${[...FACE_ATTRIBUTES].join("|")}, got ${JSON.stringify(a)}`);
    }
  }
}

function validateDetectLabels(body: Record<string, unknown>): void {
  onlyKeys(body, ["Image", "MaxLabels", "MinConfidence", "Features", "Settings"], "");
  const { MinConfidence, MaxLabels, Features, Settings } = body;
  if (MinConfidence !== undefined && !(typeof MinConfidence === "number" && MinConfidence >= 0 && MinConfidence <= 100)) {
    throw invalid("InvalidParameterException", `MinConfidence must be 0-100, got ${JSON.stringify(MinConfidence)}`);
  }
  if (MaxLabels !== undefined && !(Number.isInteger(MaxLabels) && (MaxLabels as number) >= 0)) {
    throw invalid("InvalidParameterException", `MaxLabels must be a non-negative integer, got ${JSON.stringify(MaxLabels)}`);
  }
  if (Features !== undefined) {
    if (!Array.isArray(Features) || Features.length > 2 || !Features.every((f) => f === "GENERAL_LABELS" || f === "IMAGE_PROPERTIES")) {
      throw invalid("InvalidParameterException", `Features must list GENERAL_LABELS and/or IMAGE_PROPERTIES, got ${JSON.stringify(Features)}`);
    }
  }
  if (Settings === undefined) return;
  if (!isObject(Settings)) throw invalid("InvalidParameterException", "Settings must be an object");
  onlyKeys(Settings, ["GeneralLabels", "ImageProperties"], "Settings.");
  const general = Settings.GeneralLabels;
  if (general !== undefined) {
    if (!isObject(general)) throw invalid("InvalidParameterException", "Settings.GeneralLabels must be an object");
    onlyKeys(general, FILTER_KEYS, "Settings.GeneralLabels.");
    for (const key of FILTER_KEYS) {
      const list = general[key];
      if (list === undefined) continue;
      // GeneralLabelsFilterList: at most 100 values of at most 100 characters each.
      if (!Array.isArray(list) || list.length > 100 || !list.every((v) => typeof v === "string" && v.length >= 1 && v.length <= 100)) {
        throw invalid("InvalidParameterException", `Settings.GeneralLabels.${key} must be a list of 1-100 label names of 1-100 characters, got ${JSON.stringify(list)}`);
      }
    }
    if (Features !== undefined && !(Features as string[]).includes("GENERAL_LABELS")) {
      throw invalid("InvalidParameterException", "Settings.GeneralLabels given without the GENERAL_LABELS feature");
    }
  }
  const props = Settings.ImageProperties;
  if (props !== undefined) {
    if (!isObject(props)) throw invalid("InvalidParameterException", "Settings.ImageProperties must be an object");
    onlyKeys(props, ["MaxDominantColors"], "Settings.ImageProperties.");
  }
}

async function readImage(image: unknown, s3Objects: Map<string, Buffer> | undefined): Promise<{ image: StandInImage; file: Buffer }> {
  if (!isObject(image)) throw invalid("InvalidParameterException", "Image is required");
  onlyKeys(image, ["Bytes", "S3Object"], "Image.");
  const hasBytes = image.Bytes !== undefined;
  const hasS3 = image.S3Object !== undefined;
  if (hasBytes === hasS3) throw invalid("InvalidParameterException", "Image needs exactly one of Bytes and S3Object");
  let file: Buffer;
  let s3: { bucket: string; key: string } | undefined;
  if (hasBytes) {
    const b64 = image.Bytes;
    if (typeof b64 !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
      throw invalid("SerializationException", "Image.Bytes is not base64");
    }
    file = Buffer.from(b64, "base64");
    if (file.length < 1) throw invalid("InvalidParameterException", "Image.Bytes is empty (minimum length 1)");
    if (file.length > MAX_BYTES) throw invalid("ImageTooLargeException", `Image size is too large: ${file.length} bytes, the limit is ${MAX_BYTES}`);
  } else {
    const o = image.S3Object;
    if (!isObject(o)) throw invalid("InvalidParameterException", "Image.S3Object must be an object");
    onlyKeys(o, ["Bucket", "Name", "Version"], "Image.S3Object.");
    const { Bucket, Name } = o;
    if (typeof Bucket !== "string" || !/^[0-9A-Za-z.\-_]{3,255}$/.test(Bucket))
      throw invalid("InvalidParameterException", `Image.S3Object.Bucket invalid: ${JSON.stringify(Bucket)}`);
    if (typeof Name !== "string" || Name.length < 1 || Name.length > 1024) throw invalid("InvalidParameterException", `Image.S3Object.Name invalid: ${JSON.stringify(Name)}`);
    s3 = { bucket: Bucket, key: Name };
    const found = s3Objects?.get(`${Bucket}/${Name}`);
    if (!found) throw invalid("InvalidS3ObjectException", "Unable to get object metadata from S3. Check object key, region and/or access permissions.");
    if (found.length > MAX_S3_BYTES) throw invalid("ImageTooLargeException", `Image size is too large: ${found.length} bytes, the S3 limit is ${MAX_S3_BYTES}`);
    file = found;
  }
  const format = magicFormat(file);
  if (!format) throw invalid("InvalidImageFormatException", "Request has invalid image format");
  let meta: Metadata;
  try {
    meta = await sharp(file, { failOn: "error" }).metadata();
  } catch {
    throw invalid("InvalidImageFormatException", "Request has invalid image format");
  }
  const orientation = meta.orientation ?? 1;
  // Rekognition applies a JPEG's Exif orientation; PNGs are analysed as stored.
  const swap = format === "jpeg" && orientation >= 5;
  return {
    image: {
      kind: hasBytes ? "bytes" : "s3",
      ...(s3 ? { s3 } : {}),
      format,
      byteSize: file.length,
      orientation,
      width: swap ? meta.height : meta.width,
      height: swap ? meta.width : meta.height,
    },
    file,
  };
}

function magicFormat(b: Buffer): "jpeg" | "png" | undefined {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "jpeg";
  if (b.length >= 8 && b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return "png";
  return undefined;
}

async function decodeFrame(file: Buffer, format: "jpeg" | "png"): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(file, { autoOrient: format === "jpeg" })
    .removeAlpha()
    .toColourspace("srgb")
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}
