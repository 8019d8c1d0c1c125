/**
 * Text-prompted (open-vocabulary) detection with OWLv2 (format "owlv2", as exported by Xenova /
 * Transformers.js, e.g. Xenova/owlv2-base-patch16-ensemble onnx/model.onnx): one session taking
 * input_ids int64 [Q, 16], attention_mask int64 [Q, 16] and pixel_values float32 [1, 3, 960, 960],
 * giving logits [1, P, Q] (P = 3600 patches for 960 / 16) and pred_boxes [1, P, 4] (cx, cy, w, h as
 * fractions of the padded square image).
 *
 * Pre-processing as transformers' Owlv2ImageProcessor: RGB / 255, padded bottom/right to a square
 * with grey 0.5, resized to the input size, normalised with CLIP's mean/std. Post-processing:
 * sigmoid, per-query score threshold, boxes scaled by the square's side (so the padding falls out),
 * clamped inside the image, NMS per query, best first, at most maxObjects.
 *
 * A label becomes the query "a photo of a <label>" (lower-case), OWL's usual prompt template, so
 * any text works ("Car", "red shoe", "Traffic Light").
 */
import sharp from "sharp";
import { ConfigError, ModelError } from "../runtime/errors.js";
import { checkSessionIO, createSession, inputShape, Tensor, type InferenceSession } from "../runtime/onnx.js";
import type { Box, RgbImage } from "../imaging/types.js";
import type { ResolvedModel } from "../models/registry.js";
import { ClipTokenizer } from "./clip-tokenizer.js";
import type { Detector, DetectorOptions } from "./types.js";
import { nms } from "./nms.js";

export const OWLV2_IO = { inputs: ["input_ids", "pixel_values", "attention_mask"], outputs: ["logits", "pred_boxes"] } as const;
const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;
const PAD_GREY = 0.5;
const DEFAULT_SIZE = 960;
const DEFAULT_TEXT_LENGTH = 16;
/** OWLv2 scores are low next to a face detector's: 0.1-0.3 is the usual range of thresholds. */
export const DEFAULT_TEXT_SCORE_THRESHOLD = 0.2;

export function queryOf(label: string): string {
  return `a photo of a ${label.trim().toLowerCase()}`;
}

export interface TextDetectorOptions {
  scoreThreshold?: number;
  nmsIou?: number;
  maxObjects?: number;
}

export class Owlv2Model {
  private constructor(
    readonly name: string,
    private readonly session: InferenceSession,
    readonly tokenizer: ClipTokenizer,
    readonly size: number,
    readonly textLength: number,
    readonly executionProvider: string,
  ) {}

  static async load(model: ResolvedModel, opts: DetectorOptions = {}): Promise<Owlv2Model> {
    const path = model.files.model;
    const tokPath = model.files.tokenizer;
    if (!path || !tokPath) throw new ModelError(`${model.name}: owlv2 models need a "model" and a "tokenizer" file`);
    const tokenizer = await ClipTokenizer.load(tokPath);
    const session = await createSession(path, { executionProvider: opts.executionProvider, intraOpThreads: opts.intraOpThreads });
    try {
      checkSessionIO(session, path, OWLV2_IO, "OWLv2 text-prompted detector");
      const px = inputShape(session, "pixel_values");
      if (px && (px.length !== 4 || (typeof px[1] === "number" && px[1] !== 3))) {
        throw new ModelError(`${path}: pixel_values is [${px.join(", ")}], expected [1, 3, size, size]`);
      }
      const size = typeof px?.[2] === "number" ? px[2] : DEFAULT_SIZE;
      const ids = inputShape(session, "input_ids");
      const textLength = typeof ids?.[1] === "number" ? ids[1] : DEFAULT_TEXT_LENGTH;
      return new Owlv2Model(model.name, session, tokenizer, size, textLength, opts.executionProvider ?? "cpu");
    } catch (err) {
      await session.release();
      throw err;
    }
  }

  /** Raw scores (sigmoid) [P * Q] and boxes [P * 4] in pixels of `image` (x0, y0, x1, y1, unclamped). */
  async run(image: RgbImage, texts: readonly string[]): Promise<{ scores: Float32Array; boxes: Float32Array; patches: number }> {
    if (texts.length === 0) throw new ConfigError("target", "no query text");
    const pixels = await preprocess(image, this.size);
    const { inputIds, attentionMask, length } = this.tokenizer.encode(texts, this.textLength);
    const out = await this.session.run({
      input_ids: new Tensor("int64", inputIds, [texts.length, length]),
      attention_mask: new Tensor("int64", attentionMask, [texts.length, length]),
      pixel_values: new Tensor("float32", pixels, [1, 3, this.size, this.size]),
    });
    const logits = out.logits;
    const predBoxes = out.pred_boxes;
    const p = logits?.dims[1] ?? 0;
    if (!logits || !predBoxes || logits.dims[2] !== texts.length || predBoxes.dims[1] !== p || predBoxes.dims[2] !== 4) {
      throw new ModelError(`${this.name}: expected logits [1, P, ${texts.length}] and pred_boxes [1, P, 4], got [${logits?.dims.join(", ")}] and [${predBoxes?.dims.join(", ")}]`);
    }
    const l = logits.data as Float32Array;
    const scores = new Float32Array(l.length);
    for (let i = 0; i < l.length; i++) scores[i] = 1 / (1 + Math.exp(-l[i]!));
    const side = Math.max(image.width, image.height);
    const b = predBoxes.data as Float32Array;
    const boxes = new Float32Array(p * 4);
    for (let i = 0; i < p; i++) {
      const cx = b[i * 4]! * side;
      const cy = b[i * 4 + 1]! * side;
      const w = b[i * 4 + 2]! * side;
      const h = b[i * 4 + 3]! * side;
      boxes.set([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], i * 4);
    }
    return { scores, boxes, patches: p };
  }

  /** A Detector for one label (sharing this model's session; closing it does not close the model). */
  detector(label: string, opts: TextDetectorOptions = {}): Detector {
    const threshold = opts.scoreThreshold ?? DEFAULT_TEXT_SCORE_THRESHOLD;
    const nmsIou = opts.nmsIou ?? 0.3;
    const maxObjects = opts.maxObjects ?? 16;
    if (!(threshold >= 0 && threshold <= 1)) throw new ConfigError("textMinConfidence", `expected 0-1, got ${threshold}`);
    if (label.trim().length === 0) throw new ConfigError("target", "an empty label");
    const query = queryOf(label);
    return {
      name: `owlv2:${this.name}`,
      detect: async (image) => {
        const { scores, boxes } = await this.run(image, [query]);
        return decodeTextDetections(scores, boxes, 1, image, threshold, nmsIou, maxObjects, [label.trim()]);
      },
      close: async () => {},
    };
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/** pixel_values [3 * size * size]: padded to a grey square (bottom/right), resized, CLIP-normalised. */
export async function preprocess(image: RgbImage, size: number): Promise<Float32Array> {
  const side = Math.max(image.width, image.height);
  const rw = Math.max(1, Math.min(size, Math.round((image.width * size) / side)));
  const rh = Math.max(1, Math.min(size, Math.round((image.height * size) / side)));
  const px = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(rw, rh, { kernel: "linear", fit: "fill" })
    .raw()
    .toBuffer();
  const out = new Float32Array(3 * size * size);
  for (let c = 0; c < 3; c++) {
    const plane = c * size * size;
    const grey = (PAD_GREY - CLIP_MEAN[c]!) / CLIP_STD[c]!;
    out.fill(grey, plane, plane + size * size);
    for (let y = 0; y < rh; y++) {
      for (let x = 0; x < rw; x++) out[plane + y * size + x] = (px[(y * rw + x) * 3 + c]! / 255 - CLIP_MEAN[c]!) / CLIP_STD[c]!;
    }
  }
  return out;
}

/**
 * scores [P * Q] (0-1), boxes [P * 4] corners in pixels: per query, candidates above `threshold`,
 * NMS, clamped and rounded inside the image; all queries merged best first, at most maxObjects.
 */
export function decodeTextDetections(
  scores: Float32Array,
  boxes: Float32Array,
  queries: number,
  image: { width: number; height: number },
  threshold: number,
  nmsIou: number,
  maxObjects: number,
  labels: readonly string[],
): Box[] {
  const p = boxes.length / 4;
  const { width: W, height: H } = image;
  const clamp = (v: number, max: number) => Math.min(Math.max(v, 0), max);
  const out: Box[] = [];
  for (let q = 0; q < queries; q++) {
    const order: number[] = [];
    for (let i = 0; i < p; i++) if (scores[i * queries + q]! > threshold) order.push(i);
    order.sort((a, b) => scores[b * queries + q]! - scores[a * queries + q]!);
    for (const i of nms(boxes, order, nmsIou)) {
      const x0 = clamp(Math.round(boxes[i * 4]!), W);
      const y0 = clamp(Math.round(boxes[i * 4 + 1]!), H);
      const x1 = clamp(Math.round(boxes[i * 4 + 2]!), W);
      const y1 = clamp(Math.round(boxes[i * 4 + 3]!), H);
      if (x1 > x0 && y1 > y0) out.push({ x0, y0, x1, y1, score: scores[i * queries + q]!, label: labels[q] ?? `query ${q}` });
    }
  }
  out.sort((a, b) => b.score! - a.score!);
  return out.slice(0, maxObjects);
}
