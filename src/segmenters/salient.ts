/**
 * Salient-object / background-removal models (format "salient": BiRefNet, BRIA RMBG-1.4 and the
 * like, one ONNX file): image -> a soft alpha (0-255) of the main object, the original size.
 *
 * Input float32 [1, 3, H, W]: the photo resized to the model's size (aspect not kept, as these
 * models are trained), scaled to 0-1, then (x - mean) / std per RGB channel. Output [1, 1, h, w]:
 * logits (BiRefNet; sigmoid applied here) or probabilities (RMBG-1.4), as the model's
 * `preprocess` block says (model.json or the manifest). The low-resolution map becomes 8 bits and
 * is upscaled to the photo by sharp (linear), so a soft edge (hair, fur, glass) stays soft.
 *
 * Tensor names: `preprocess.input` / `preprocess.outputName` when given, else the first of the
 * usual names the file has (inputs: input, pixel_values, input_image; outputs: output,
 * output_image, or the only output). A file without them fails at load, naming what is missing.
 */
import { ModelError, InputError } from "../runtime/errors.js";
import { sharpRaw } from "../imaging/image.js";
import { checkSessionIO, createSession, inputShape, Tensor, type ExecutionProvider, type InferenceSession } from "../runtime/onnx.js";
import { growMask, maskStats, unionMasks } from "../imaging/mask-ops.js";
import { maskIoU } from "../imaging/mask-metrics.js";
import type { Box, Mask, RgbImage } from "../imaging/types.js";
import type { SegmentResult, Segmenter } from "./types.js";
import { resolveModel, type Preprocess, type ResolvedModel } from "../models/registry.js";

export const SALIENT_INPUT_NAMES = ["input", "pixel_values", "input_image"] as const;
export const SALIENT_OUTPUT_NAMES = ["output", "output_image"] as const;

export interface SalientOptions {
  executionProvider?: ExecutionProvider;
  intraOpThreads?: number;
  cacheDir?: string;
  download?: boolean;
}

export interface SalientResult {
  /** Soft alpha, the image's size: 255 = object, 0 = background, between = soft edge. */
  alpha: Mask;
  timings: { preprocessMs: number; inferMs: number; postprocessMs: number };
}

export class SalientModel {
  private constructor(
    readonly name: string,
    readonly executionProvider: string,
    private readonly session: InferenceSession,
    private readonly inputName: string,
    private readonly outputName: string,
    readonly preprocess: Preprocess,
  ) {}

  static async load(spec: string, opts: SalientOptions = {}): Promise<SalientModel> {
    const model = await resolveModel(spec, { cacheDir: opts.cacheDir, download: opts.download, task: "salient" });
    return SalientModel.fromResolved(model, opts);
  }

  static async fromResolved(model: ResolvedModel, opts: SalientOptions = {}): Promise<SalientModel> {
    const path = model.files.model;
    if (!path) throw new ModelError(`${model.name}: a salient model needs a "model" file`);
    const pre = model.preprocess;
    if (!pre) {
      throw new ModelError(
        `${model.name}: a salient model needs its preprocessing: a folder with model.json like {"format": "salient", "files": {"model": "model.onnx"}, ` +
          `"preprocess": {"size": [1024, 1024], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "output": "logits"}}`,
      );
    }
    const session = await createSession(path, { executionProvider: opts.executionProvider, intraOpThreads: opts.intraOpThreads });
    try {
      const inputName = pre.input ?? SALIENT_INPUT_NAMES.find((n) => session.inputNames.includes(n)) ?? SALIENT_INPUT_NAMES[0];
      const outputName =
        pre.outputName ??
        SALIENT_OUTPUT_NAMES.find((n) => session.outputNames.includes(n)) ??
        (session.outputNames.length === 1 ? (session.outputNames[0] as string) : SALIENT_OUTPUT_NAMES[0]);
      const what = pre.input ? "salient-object model" : `salient-object model (input one of ${SALIENT_INPUT_NAMES.join(", ")})`;
      checkSessionIO(session, path, { inputs: [inputName], outputs: [outputName] }, what);
      const shape = inputShape(session, inputName);
      if (!shape || shape.length !== 4 || (typeof shape[1] === "number" && shape[1] !== 3)) {
        throw new ModelError(`${path}: input ${inputName} is [${shape?.join(", ") ?? "?"}], expected [1, 3, H, W]`);
      }
      const [w, h] = pre.size;
      if ((typeof shape[2] === "number" && shape[2] !== h) || (typeof shape[3] === "number" && shape[3] !== w)) {
        throw new ModelError(`${path}: input ${inputName} is [${shape.join(", ")}] but preprocess.size says ${w} x ${h}`);
      }
      return new SalientModel(model.name, opts.executionProvider ?? "cpu", session, inputName, outputName, pre);
    } catch (err) {
      await session.release();
      throw err;
    }
  }

  async predict(image: RgbImage): Promise<SalientResult> {
    if (!(image.width > 0 && image.height > 0) || image.data.length !== image.width * image.height * 3) {
      throw new InputError(`salient: expected ${image.width}x${image.height} RGB pixels, got ${image.data.length} bytes`);
    }
    const t0 = performance.now();
    const [w, h] = this.preprocess.size;
    const input = new Tensor("float32", await toNchw(image, this.preprocess), [1, 3, h, w]);
    const t1 = performance.now();
    const out = (await this.session.run({ [this.inputName]: input }, [this.outputName]))[this.outputName];
    const t2 = performance.now();
    const dims = out?.dims ?? [];
    const [oh, ow] = dims.slice(-2) as [number, number];
    if (!out || dims.length < 2 || dims.slice(0, -2).some((d) => d !== 1) || !(oh > 0 && ow > 0)) {
      throw new ModelError(`${this.name}: output ${this.outputName} is [${dims.join(", ")}], expected [1, 1, h, w]`);
    }
    const low = toAlpha8(out.data as Float32Array, this.preprocess.output);
    const alpha = await upscaleAlpha({ data: low, width: ow, height: oh }, image.width, image.height);
    return { alpha, timings: { preprocessMs: t1 - t0, inferMs: t2 - t1, postprocessMs: performance.now() - t2 } };
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/** The photo resized to the model's size (sharp, aspect not kept), normalised, planar RGB. */
async function toNchw(image: RgbImage, pre: Preprocess): Promise<Float32Array> {
  const [w, h] = pre.size;
  const resized = await sharpRaw({ ...image, channels: 3 })
    .resize(w, h, { fit: "fill", kernel: "linear" })
    .raw()
    .toBuffer();
  const plane = w * h;
  const out = new Float32Array(plane * 3);
  for (let c = 0; c < 3; c++) {
    const scale = 1 / (255 * pre.std[c]!);
    const shift = pre.mean[c]! / pre.std[c]!;
    for (let i = 0, j = c; i < plane; i++, j += 3) out[c * plane + i] = resized[j]! * scale - shift;
  }
  return out;
}

/** Low-resolution output -> 0-255 (sigmoid first for logits). */
export function toAlpha8(values: Float32Array, kind: Preprocess["output"]): Uint8Array {
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const p = kind === "logits" ? 1 / (1 + Math.exp(-v)) : v;
    out[i] = p >= 1 ? 255 : p > 0 ? Math.round(p * 255) : 0;
  }
  return out;
}

/** 8-bit alpha upscaled (or downscaled) to width x height by sharp, one grey channel. */
export async function upscaleAlpha(low: Mask, width: number, height: number): Promise<Mask> {
  if (low.width === width && low.height === height) return low;
  const data = await sharpRaw({ ...low, channels: 1 })
    .resize(width, height, { fit: "fill", kernel: "linear" })
    .toColourspace("b-w")
    .raw()
    .toBuffer();
  if (data.length !== width * height) throw new Error(`upscaleAlpha: sharp returned ${data.length} bytes, expected ${width * height}`);
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height };
}

/** The band around SAM's boundary where the salient soft edge is kept: 2% of the shorter side, at least 3 px. */
export function refineBandPx(width: number, height: number): number {
  return Math.max(3, Math.round(Math.min(width, height) / 50));
}

/**
 * The salient model behind the mask stage's Segmenter interface (target auto): segment() ignores
 * the whole-image box it is given and returns one soft mask, the salient alpha. With a SAM
 * segmenter (salientRefine, default on) SAM is prompted with the box of the salient mask
 * (alpha >= 128) and the two are merged: SAM's hard mask decides everywhere except in a band of
 * refineBandPx around SAM's boundary, where the salient alpha is kept. So SAM removes the salient
 * model's stray blobs and fills its holes, and the soft edge (hair, fur, glass) survives.
 */
export class SalientSegmenter implements Segmenter {
  readonly name: string;
  readonly executionProvider: string;
  /** The SAM prompt of the last refinement (tests, mask.json). */
  lastRefineBox: Box | undefined;

  constructor(
    private readonly salient: Pick<SalientModel, "name" | "executionProvider" | "predict">,
    private readonly sam?: Pick<Segmenter, "name" | "segment">,
  ) {
    this.name = sam ? `${salient.name}+${sam.name}` : salient.name;
    this.executionProvider = salient.executionProvider;
  }

  async segment(image: RgbImage): Promise<SegmentResult> {
    const t0 = performance.now();
    const { alpha, timings } = await this.salient.predict(image);
    const t1 = performance.now();
    const box = maskStats(alpha).bbox;
    if (!this.sam || !box) {
      // No predicted IoU: a salient model gives none.
      return { masks: [alpha], scores: [], timings: { preprocessMs: timings.preprocessMs, encodeMs: timings.inferMs, decodeMs: 0, postprocessMs: timings.postprocessMs } };
    }
    this.lastRefineBox = box;
    const refined = await this.sam.segment(image, [box]);
    const t2 = performance.now();
    const hard = unionMasks(refined.masks);
    const merged = mergeSoftEdge(hard, alpha, refineBandPx(image.width, image.height));
    return {
      masks: [merged],
      scores: [refined.scores[0] ?? 1],
      ...(refined.stability && { stability: refined.stability.slice(0, 1) }),
      ...(refined.selection && { selection: refined.selection }),
      salientAgreement: maskIoU(alpha, hard),
      timings: {
        preprocessMs: timings.preprocessMs,
        encodeMs: t1 - t0 - timings.preprocessMs - timings.postprocessMs,
        decodeMs: t2 - t1,
        postprocessMs: timings.postprocessMs + (performance.now() - t2),
      },
    };
  }

  async close(): Promise<void> {}
}

/** hard (0/255) everywhere, except within bandPx of its boundary, where soft is kept. */
export function mergeSoftEdge(hard: Mask, soft: Mask, bandPx: number): Mask {
  const outer = growMask(hard, bandPx).data;
  const inner = growMask(hard, -bandPx).data;
  const h = hard.data;
  const s = soft.data;
  const out = new Uint8Array(h.length);
  for (let i = 0; i < out.length; i++) out[i] = outer[i] !== inner[i] ? s[i]! : h[i]! >= 128 ? 255 : 0;
  return { data: out, width: hard.width, height: hard.height };
}
