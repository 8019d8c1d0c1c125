/**
 * Amazon Rekognition as a detector: target "face" -> DetectFaces (every face), any other target is
 * a label name ("Car", "Shoe") -> DetectLabels restricted to that label, boxes from its instances.
 *
 * The image goes as `S3Object` when the job names one Rekognition can read as-is, else as `Bytes`:
 * the decoded (EXIF-oriented) pixels re-encoded as baseline JPEG within Rekognition's 5 MiB limit.
 * Boxes come back as ratios of the image Rekognition analysed; they are mapped to pixels of the
 * `image` given to detect(), rounded, clamped (ratios can fall outside 0-1), best first.
 *
 * EXIF orientation. Per the Rekognition API reference (DetectFaces / DetectLabels response,
 * `OrientationCorrection`, and https://docs.aws.amazon.com/rekognition/latest/dg/images-orientation.html):
 * OrientationCorrection is deprecated and always null (orientation estimation ended August 2021);
 * for a JPEG whose Exif metadata carries an orientation, Rekognition applies it and the bounding
 * boxes describe the *corrected* (displayed) image; PNGs and JPEGs without that tag are not
 * corrected, boxes are relative to the image as stored. So:
 * - Bytes: we send pixels that are already oriented and carry no Exif: boxes are in the oriented frame.
 * - S3Object with a JPEG (any orientation) or a PNG with orientation 1: Rekognition's frame is the
 *   same oriented frame that decodeImage produced, so the ratios map straight onto `image`.
 * - S3Object with anything else (a PNG with an eXIf orientation, which sharp applies but
 *   Rekognition does not; WebP/GIF/TIFF/HEIF, which Rekognition refuses): we send Bytes instead.
 *   An `image` that is not a DecodedImage (no format/orientation known) is trusted to match the object.
 * - S3Object refused as too large (S3 images may be up to 15 MB) or as an unreadable format: sent
 *   once more as Bytes, since we hold the pixels.
 *
 * SDK retries are off (maxAttempts 1): the queue retries. Errors say what the pool should do:
 * throttling -> ThrottledError; access denied / bad credentials -> FatalServiceError; a bad image
 * -> InputError; server errors, network errors and anything unknown -> plain Error (transient).
 */
import {
  DetectFacesCommand,
  DetectLabelsCommand,
  RekognitionClient,
  type BoundingBox,
  type DetectFacesCommandOutput,
  type DetectLabelsCommandOutput,
  type Image,
} from "@aws-sdk/client-rekognition";
import { awsClientConfig, type AwsSettings } from "../runtime/aws.js";
import { ConfigError, FatalServiceError, InputError, ThrottledError } from "../runtime/errors.js";
import { encodeJpeg, resizeRgb, type DecodedImage } from "../imaging/image.js";
import type { Box, RgbImage } from "../imaging/types.js";
import type { Detector, ImageSource } from "./types.js";

/** Rekognition's limit for `Image.Bytes` (API reference, Image: length 1 - 5242880). */
export const MAX_IMAGE_BYTES = 5 * 1024 * 1024;
/** JPEG qualities tried before scaling down; scaling uses the last one tried. */
const QUALITY_STEPS = [90, 80, 70] as const;
/** The longest a DetectFaces/DetectLabels call may take before it counts as a (transient) failure. */
const REQUEST_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_OBJECTS = 16;
/** GeneralLabelsFilterValue: at most 100 characters. */
const MAX_LABEL_LENGTH = 100;

export interface RekognitionDetectorOptions {
  aws: AwsSettings;
  /** "face" (any case) for DetectFaces, else a Rekognition label name such as "Car". */
  target: string;
  /** Threshold 0-1: faces, labels and label instances below it are dropped. */
  minConfidence: number;
  /** Boxes kept per image, best first (default 16). */
  maxObjects?: number;
}

export function createRekognitionDetector(opts: RekognitionDetectorOptions): RekognitionDetector {
  return new RekognitionDetector(opts);
}

export class RekognitionDetector implements Detector {
  readonly name: string;
  private readonly client: RekognitionClient;
  private readonly faces: boolean;
  private readonly target: string;
  private readonly minConfidence: number;
  private readonly maxObjects: number;

  constructor(opts: RekognitionDetectorOptions) {
    const { minConfidence } = opts;
    const maxObjects = opts.maxObjects ?? DEFAULT_MAX_OBJECTS;
    const target = typeof opts.target === "string" ? opts.target.trim() : "";
    if (!(typeof minConfidence === "number" && minConfidence >= 0 && minConfidence <= 1)) {
      throw new ConfigError("minConfidence", `expected 0-1, got ${minConfidence}`);
    }
    if (!Number.isInteger(maxObjects) || maxObjects < 1) throw new ConfigError("maxObjects", `expected a positive integer, got ${maxObjects}`);
    if (target.length === 0 || target.length > MAX_LABEL_LENGTH) {
      throw new ConfigError("target", `expected "face" or a Rekognition label name of 1-${MAX_LABEL_LENGTH} characters, got ${JSON.stringify(opts.target)}`);
    }
    this.faces = target.toLowerCase() === "face";
    this.target = target;
    this.minConfidence = minConfidence;
    this.maxObjects = maxObjects;
    this.name = this.faces ? "rekognition:faces" : "rekognition:labels";
    this.client = new RekognitionClient({
      ...awsClientConfig(opts.aws, "rekognition"),
      maxAttempts: 1,
      requestHandler: { requestTimeout: REQUEST_TIMEOUT_MS, connectionTimeout: 10_000 },
    });
  }

  async detect(image: RgbImage, source?: ImageSource): Promise<Box[]> {
    const s3 = source?.s3 && s3MatchesPixels(image) ? source.s3 : undefined;
    let found: Scored[];
    if (s3) {
      try {
        found = await this.call({ S3Object: { Bucket: s3.bucket, Name: s3.key } });
      } catch (err) {
        // Too big for Rekognition's S3 limit, or a variant of JPEG/PNG it cannot read: we hold the
        // pixels, so send them (mapped errors from this second call are final).
        if (!isServiceError(err, "ImageTooLargeException", "InvalidImageFormatException")) throw mapError(err, this.op, s3);
        found = await this.callWithBytes(image);
      }
    } else {
      found = await this.callWithBytes(image);
    }
    const boxes: Box[] = [];
    for (const f of found) {
      if (f.score < this.minConfidence) continue;
      const box = ratioBoxToPixels(f.box, image);
      if (box) boxes.push({ ...box, score: f.score, label: f.label });
    }
    boxes.sort((a, b) => b.score! - a.score!);
    return boxes.slice(0, this.maxObjects);
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private get op(): "DetectFaces" | "DetectLabels" {
    return this.faces ? "DetectFaces" : "DetectLabels";
  }

  private async callWithBytes(image: RgbImage): Promise<Scored[]> {
    const { bytes } = await encodeForRekognition(image);
    try {
      return await this.call({ Bytes: bytes });
    } catch (err) {
      throw mapError(err, this.op);
    }
  }

  /** One request; the answer as ratio boxes with 0-1 scores (SDK errors pass through unmapped). */
  private async call(Image: Image): Promise<Scored[]> {
    if (this.faces) {
      const out: DetectFacesCommandOutput = await this.client.send(new DetectFacesCommand({ Image, Attributes: ["DEFAULT"] }));
      const found: Scored[] = [];
      for (const face of out.FaceDetails ?? []) {
        if (face.BoundingBox && typeof face.Confidence === "number") found.push({ box: face.BoundingBox, score: face.Confidence / 100, label: "face" });
      }
      return found;
    }
    const out: DetectLabelsCommandOutput = await this.client.send(
      new DetectLabelsCommand({
        Image,
        Features: ["GENERAL_LABELS"],
        Settings: { GeneralLabels: { LabelInclusionFilters: [this.target] } },
        MinConfidence: this.minConfidence * 100,
      }),
    );
    const wanted = this.target.toLowerCase();
    const found: Scored[] = [];
    for (const label of out.Labels ?? []) {
      // The inclusion filter already limits the answer to this label; the check keeps parents or
      // aliases out should the service ever add them.
      if (label.Name?.toLowerCase() !== wanted) continue;
      // Only common objects (Car, Person, Dog, ...) come with Instances, i.e. boxes. A label
      // without instances (a scene or concept: "Beach", "Wedding", or an object Rekognition only
      // classifies) says what the image shows but not where: no boxes, so "no <target> found".
      for (const inst of label.Instances ?? []) {
        if (inst.BoundingBox && typeof inst.Confidence === "number") found.push({ box: inst.BoundingBox, score: inst.Confidence / 100, label: label.Name });
      }
    }
    return found;
  }
}

interface Scored {
  box: BoundingBox;
  score: number;
  label: string;
}

/**
 * A Rekognition BoundingBox (ratios of the analysed image's width and height, possibly outside
 * 0-1) in pixels of `image`: corners rounded, clamped inside it; undefined when nothing is left.
 */
export function ratioBoxToPixels(bb: BoundingBox, image: { width: number; height: number }): { x0: number; y0: number; x1: number; y1: number } | undefined {
  const { Left, Top, Width, Height } = bb;
  if (![Left, Top, Width, Height].every((v) => typeof v === "number" && Number.isFinite(v))) return undefined;
  const { width: W, height: H } = image;
  const clamp = (v: number, max: number) => Math.min(Math.max(v, 0), max);
  const x0 = clamp(Math.round(Left! * W), W);
  const y0 = clamp(Math.round(Top! * H), H);
  const x1 = clamp(Math.round((Left! + Width!) * W), W);
  const y1 = clamp(Math.round((Top! + Height!) * H), H);
  return x1 > x0 && y1 > y0 ? { x0, y0, x1, y1 } : undefined;
}

/**
 * `image` as a baseline JPEG of at most `maxBytes`: quality 90, 80, 70, then (at the last quality
 * tried) scaled down until it fits. Boxes are ratios, so scaling does not move them. A first try
 * more than twice over the limit skips the remaining quality steps: they cannot close that gap.
 */
export async function encodeForRekognition(image: RgbImage, maxBytes = MAX_IMAGE_BYTES): Promise<{ bytes: Buffer; width: number; height: number; quality: number }> {
  let quality: number = QUALITY_STEPS[0];
  let bytes: Buffer = Buffer.alloc(0);
  for (const q of QUALITY_STEPS) {
    quality = q;
    bytes = await encodeJpeg(image, q);
    if (bytes.length <= maxBytes) return { bytes, width: image.width, height: image.height, quality };
    if (bytes.length > 2 * maxBytes) break;
  }
  // JPEG size grows about with the pixel count: aim a little under the limit, shrink further if not.
  let factor = 1;
  for (let i = 0; i < 12; i++) {
    factor *= Math.min(0.9, Math.sqrt(maxBytes / bytes.length) * 0.95);
    const width = Math.max(1, Math.round(image.width * factor));
    const height = Math.max(1, Math.round(image.height * factor));
    bytes = await encodeJpeg(await resizeRgb(image, width, height, "fill"), quality);
    if (bytes.length <= maxBytes) return { bytes, width, height, quality };
  }
  throw new Error(`could not encode a ${image.width}x${image.height} image as JPEG within ${maxBytes} bytes`);
}

/** Whether Rekognition, reading the S3 object itself, sees the same oriented frame as `image` (see the header). */
function s3MatchesPixels(image: RgbImage): boolean {
  const { format, orientation } = image as Partial<DecodedImage>;
  if (format === undefined) return true;
  if (format === "jpeg") return true;
  return format === "png" && (orientation ?? 1) === 1;
}

interface SdkError {
  name?: string;
  message?: string;
  $fault?: "client" | "server";
  $metadata?: { httpStatusCode?: number };
}

function isServiceError(err: unknown, ...names: string[]): boolean {
  return err instanceof Error && names.includes(err.name) && (err as SdkError).$metadata !== undefined;
}

const THROTTLING = new Set(["ThrottlingException", "ProvisionedThroughputExceededException", "LimitExceededException"]);
/** The caller's identity is refused: every request will fail the same way. */
const FORBIDDEN = new Set([
  "AccessDeniedException",
  "UnrecognizedClientException",
  "InvalidSignatureException",
  "MissingAuthenticationTokenException",
  "InvalidClientTokenId",
  "ExpiredTokenException",
]);

/** An SDK or network error as the error class the pool acts on. */
function mapError(err: unknown, op: string, s3?: { bucket: string; key: string }): Error {
  if (!(err instanceof Error)) return new Error(`Rekognition ${op} failed: ${String(err)}`);
  const e = err as Error & SdkError;
  const type = e.name;
  const detail = firstLine(e.message ?? "");
  const what = `${type}${detail ? `: ${detail}` : ""}`;
  const status = e.$metadata?.httpStatusCode;
  if (e.$metadata === undefined || status === undefined) {
    // No HTTP answer: connection refused/reset, DNS, timeout. Transient.
    return new Error(`Rekognition ${op} failed without an answer (${what})`, { cause: err });
  }
  if (THROTTLING.has(type)) return new ThrottledError(`Rekognition ${op} throttled (${what})`, undefined, { cause: err });
  if (FORBIDDEN.has(type)) {
    const needs = s3 ? `rekognition:${op} and s3:GetObject on s3://${s3.bucket}/${s3.key}` : `rekognition:${op}`;
    return new FatalServiceError(`Rekognition ${op}: access denied (${what}); the AWS identity needs ${needs}`, { cause: err });
  }
  switch (type) {
    case "InvalidImageFormatException":
      return new InputError(`Rekognition could not read the image as JPEG or PNG (${what})`, { cause: err });
    case "ImageTooLargeException":
      return new InputError(`image too large for Rekognition (${what})`, { cause: err });
    case "InvalidS3ObjectException":
      return new InputError(`Rekognition could not read ${s3 ? `s3://${s3.bucket}/${s3.key}` : "the S3 object"} (${what})`, { cause: err });
    case "InvalidParameterException":
      // Rekognition's answer to an image it refuses to analyse (e.g. below its minimum size).
      return new InputError(`Rekognition ${op} refused the image (${what})`, { cause: err });
  }
  return new Error(`Rekognition ${op} failed with HTTP ${status} (${what})`, { cause: err });
}

function firstLine(s: string): string {
  return s.split("\n")[0]!.trim();
}
