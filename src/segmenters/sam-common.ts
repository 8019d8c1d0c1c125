/**
 * What the two-file SAM adapters (samexporter.ts, sam2.ts, hf-sam.ts) share: loading the encoder +
 * decoder sessions (both released if either fails to load or a check throws), choosing each
 * prompt's mask among the decoder's candidates (maskSelection), and turning the chosen low-res
 * logits into the result.
 */
import { ConfigError, ModelError } from "../runtime/errors.js";
import { createSession, type InferenceSession, type Tensor } from "../runtime/onnx.js";
import type { Mask, RgbImage } from "../imaging/types.js";
import type { ResolvedModel } from "../models/registry.js";
import { SAM_INPUT_SIDE, upscaleMask, type Size } from "./sam-processing.js";
import type { MaskSelection, SegmentResult, SegmenterOptions } from "./types.js";

export interface SessionPair {
  encoder: InferenceSession;
  decoder: InferenceSession;
  encoderPath: string;
  decoderPath: string;
}

export async function loadSessionPair<T>(model: ResolvedModel, opts: SegmenterOptions, build: (pair: SessionPair) => T): Promise<T> {
  const encoderPath = model.files.encoder;
  const decoderPath = model.files.decoder;
  if (!encoderPath || !decoderPath) throw new ModelError(`${model.name}: format ${model.format} needs an encoder and a decoder file`);
  const sessionOpts = { executionProvider: opts.executionProvider, intraOpThreads: opts.intraOpThreads };
  const [encoder, decoder] = await Promise.allSettled([createSession(encoderPath, sessionOpts), createSession(decoderPath, sessionOpts)]);
  if (encoder.status === "rejected" || decoder.status === "rejected") {
    for (const s of [encoder, decoder]) if (s.status === "fulfilled") await s.value.release();
    throw encoder.status === "rejected" ? encoder.reason : (decoder as PromiseRejectedResult).reason;
  }
  try {
    return build({ encoder: encoder.value, decoder: decoder.value, encoderPath, decoderPath });
  } catch (err) {
    await Promise.all([encoder.value.release(), decoder.value.release()]);
    throw err;
  }
}

/** The sessions, counters and close() of an encoder + decoder segmenter. */
export abstract class EncoderDecoderSegmenter {
  /** How often each session ran (the encoder once per image). */
  readonly stats = { encoderRuns: 0, decoderRuns: 0 };

  protected constructor(
    readonly name: string,
    readonly executionProvider: string,
    protected readonly encoder: InferenceSession,
    protected readonly decoder: InferenceSession,
  ) {}

  /** Runs the encoder (counted) and checks that every output asked for came back. */
  protected async encode(feeds: Record<string, Tensor>, outputs: readonly string[]): Promise<Record<string, Tensor>> {
    const out = await this.encoder.run(feeds, [...outputs]);
    this.stats.encoderRuns++;
    for (const n of outputs) if (!out[n]) throw new ModelError(`${this.name}: the encoder returned no ${n}`);
    return out as Record<string, Tensor>;
  }

  async close(): Promise<void> {
    await Promise.all([this.encoder.release(), this.decoder.release()]);
  }
}

/** One box's chosen candidate: its low-res logits (a view, side x side), predicted IoU and the rule that chose it. */
export interface Chosen {
  logits: Float32Array;
  side: number;
  score: number;
  rule: MaskSelection;
}

/**
 * What a decoder's K candidates per prompt are:
 * - K = 4: all of SAM's masks, mask 0 (the single-mask token) then the three multimask candidates;
 * - K = 3: the multimask candidates only (SAM 2 exports, transformers.js with multimask_output);
 * - K = 1: one mask the export chose already, by `oneMaskRule` (Meta's return_single_mask export
 *   applies select_masks, which for a box is the best of the multimask candidates).
 */
export interface DecoderMasks {
  model: string;
  oneMaskRule: MaskSelection;
}

/**
 * The rule in force for a decoder returning k candidates: the one asked for, or (unset) `single`
 * where mask 0 is among them, else `best`. A rule the candidates cannot serve is a ConfigError
 * (no retry helps) that names the export to use.
 */
export function selectionFor(asked: MaskSelection | undefined, k: number, decoder: DecoderMasks): MaskSelection {
  const given = k === 1 ? decoder.oneMaskRule : k === 3 ? "best" : undefined;
  if (given === undefined) {
    if (k !== 4) throw new ModelError(`${decoder.model}: the decoder returns ${k} masks per prompt, expected 1, 3 or 4`);
    return asked ?? "single";
  }
  if (asked && asked !== given) {
    const what = k === 1 ? `one mask chosen by the export (${given})` : "only the three multimask candidates";
    throw new ConfigError(
      "maskSelection",
      `${decoder.model}: maskSelection ${asked} is not available: the decoder returns ${what}; use maskSelection ${given}, or a decoder exported with all four masks (src/models/EXPORT.md)`,
    );
  }
  return given;
}

/**
 * Each of `boxes` prompts' candidate under `rule`, from logits [boxes, k, side, side] and scores
 * [boxes, k]: single = mask 0 (k = 4), best = the highest score among the multimask candidates
 * (the last three when k = 4; the first on ties); k = 1 is the one mask there is.
 */
export function chooseCandidates(logits: Float32Array, scores: Float32Array, boxes: number, k: number, side: number, rule: MaskSelection): Chosen[] {
  const hw = side * side;
  const first = k === 4 ? 1 : 0;
  return Array.from({ length: boxes }, (_, i) => {
    const b = k === 1 || (k === 4 && rule === "single") ? 0 : first + bestIndex(scores.subarray(i * k + first, i * k + k));
    return { logits: logits.subarray((i * k + b) * hw, (i * k + b + 1) * hw), side, score: scores[i * k + b] ?? 0, rule };
  });
}

/** Index of the highest score (the first on ties). */
export function bestIndex(scores: ArrayLike<number>): number {
  let best = 0;
  for (let k = 1; k < scores.length; k++) if ((scores[k] as number) > (scores[best] as number)) best = k;
  return best;
}

/** SAM's stability-score offset: the mask at logit > +1 against the mask at logit > -1. */
export const STABILITY_OFFSET = 1;

/**
 * SAM's stability score of one low-res mask: IoU of (logit > +offset) and (logit > -offset), as
 * segment_anything's calculate_stability_score, over the cells that cover the image (`frame`, the
 * image's extent in the 1024 x 1024 input). 1 when both are empty.
 */
export function stabilityScore(c: Chosen, frame: Size, offset = STABILITY_OFFSET): number {
  const cols = Math.min(c.side, Math.ceil((frame.width * c.side) / SAM_INPUT_SIDE));
  const rows = Math.min(c.side, Math.ceil((frame.height * c.side) / SAM_INPUT_SIDE));
  let inner = 0;
  let outer = 0;
  for (let y = 0; y < rows; y++) {
    const row = y * c.side;
    for (let x = 0; x < cols; x++) {
      const v = c.logits[row + x]!;
      if (v > -offset) outer++;
      if (v > offset) inner++;
    }
  }
  return outer === 0 ? 1 : inner / outer;
}

/**
 * The segment result: each chosen mask upscaled from the model's frame (`frame`: the resized image
 * inside the 1024 x 1024 input) to the original size; `marks` = performance.now() at the start and
 * after pre-processing, encoding and decoding.
 */
export function toResult(chosen: readonly Chosen[], frame: Size, image: RgbImage, marks: readonly [number, number, number, number]): SegmentResult {
  const [t0, t1, t2, t3] = marks;
  const masks: Mask[] = chosen.map((c) => ({ data: upscaleMask(c.logits, c.side, frame, image), width: image.width, height: image.height }));
  const t4 = performance.now();
  return {
    masks,
    scores: chosen.map((c) => c.score),
    stability: chosen.map((c) => stabilityScore(c, frame)),
    ...(chosen[0] && { selection: chosen[0].rule }),
    timings: { preprocessMs: t1 - t0, encodeMs: t2 - t1, decodeMs: t3 - t2, postprocessMs: t4 - t3 },
  };
}
