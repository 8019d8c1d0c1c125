/**
 * What the two-file SAM adapters (samexporter.ts, sam2.ts, hf-sam.ts) share: loading the encoder +
 * decoder sessions (both released if either fails to load or a check throws), keeping the best of
 * a multimask decoder's candidates, and turning the chosen low-res logits into the result.
 */
import { ModelError } from "../../shared/errors.js";
import { createSession, type InferenceSession, type Tensor } from "../../shared/onnx.js";
import type { Mask, RgbImage } from "../../shared/types.js";
import type { ResolvedModel } from "../../models/registry.js";
import { upscaleMask, type Size } from "./sam-processing.js";
import type { SegmentResult, SegmenterOptions } from "./segmenter.js";

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

/** One box's chosen candidate: its low-res logits (a view, side x side) and predicted IoU. */
export interface Chosen {
  logits: Float32Array;
  side: number;
  score: number;
}

/**
 * The candidate with the best score for each of `boxes` prompts, from logits [boxes, k, side, side]
 * and scores [boxes, k]; `pick` chooses the index (default: the highest score, the first on ties).
 */
export function chooseCandidates(logits: Float32Array, scores: Float32Array, boxes: number, k: number, side: number, pick: (s: Float32Array) => number = bestIndex): Chosen[] {
  const hw = side * side;
  return Array.from({ length: boxes }, (_, i) => {
    const b = pick(scores.subarray(i * k, i * k + k));
    return { logits: logits.subarray((i * k + b) * hw, (i * k + b + 1) * hw), side, score: scores[i * k + b] ?? 0 };
  });
}

/** Index of the highest score (the first on ties): the multimask candidate to keep. */
export function bestIndex(scores: ArrayLike<number>): number {
  let best = 0;
  for (let k = 1; k < scores.length; k++) if ((scores[k] as number) > (scores[best] as number)) best = k;
  return best;
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
    timings: { preprocessMs: t1 - t0, encodeMs: t2 - t1, decodeMs: t3 - t2, postprocessMs: t4 - t3 },
  };
}
