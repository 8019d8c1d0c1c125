/** Detect: image -> boxes (given, whole image, or a face detector), then hands on to mask. */
import type { Job } from "bullmq";
import { InputError } from "../../shared/errors.js";
import { imageJobSchema, outputKeys, type ImageJob } from "../../shared/jobs.js";
import { jobOptions } from "../../shared/queues.js";
import type { Box, RgbImage } from "../../shared/types.js";
import { isS3Uri, parseS3Uri } from "../../shared/storage/s3.js";
import type { WorkerContext } from "../context.js";
import { DEFAULT_TEXT_SCORE_THRESHOLD } from "./owlv2.js";

/** Label targets with the local detector: OWLv2 (manifest name). */
export const DEFAULT_TEXT_DETECTOR_MODEL = "owlv2-base-patch16-ensemble";

export interface Detections {
  imageId: string;
  name: string;
  width: number;
  height: number;
  target: string;
  detector: string;
  boxes: Box[];
  ms: number;
}

export async function detectStage(job: Job, ctx: WorkerContext): Promise<{ boxes: number }> {
  const data = imageJobSchema.parse(job.data);
  const started = performance.now();
  const image = await ctx.loadImage(data);
  const { boxes, detector } = await findBoxes(data, image, ctx);
  if (boxes.length === 0) throw new InputError(`${data.name}: no ${data.options.target} found`);
  const kept = [...boxes].sort((a, b) => (b.score ?? 1) - (a.score ?? 1)).slice(0, data.options.maxObjects);
  const detections: Detections = {
    imageId: data.imageId,
    name: data.name,
    width: image.width,
    height: image.height,
    target: data.options.target,
    detector,
    boxes: kept,
    ms: Math.round(performance.now() - started),
  };
  await ctx.store(data.out).write(outputKeys(data.outPrefix).detections, Buffer.from(JSON.stringify(detections, null, 2)));
  await ctx.queues.mask.add("mask", data, { ...jobOptions(ctx.config.attempts), jobId: data.imageId });
  await ctx.runState.stageDone(data.imageId, "detect");
  return { boxes: kept.length };
}

async function findBoxes(data: ImageJob, image: RgbImage, ctx: WorkerContext): Promise<{ boxes: Box[]; detector: string }> {
  const { target } = data.options;
  if (target === "auto") return { boxes: [{ x0: 0, y0: 0, x1: image.width, y1: image.height, label: "auto" }], detector: "whole-image" };
  if (target === "boxes") {
    const boxes = (data.boxes ?? []).map((b) => clampBox(b, image)).filter((b) => b.x1 > b.x0 && b.y1 > b.y0);
    return { boxes, detector: "given" };
  }
  const { minConfidence, maxObjects } = data.options;
  if (data.options.detector === "rekognition") {
    const detector = await ctx.rekognition(target, minConfidence, maxObjects);
    const source = isS3Uri(data.input) ? { s3: parseS3Uri(data.input) } : undefined;
    return { boxes: await detector.detect(image, source), detector: detector.name };
  }
  if (target === "face") {
    const detector = await ctx.faceDetector(data.options.detectorModel, minConfidence);
    return { boxes: (await detector.detect(image)).map((b) => clampBox(b, image)), detector: detector.name };
  }
  const detector = await ctx.textDetector(
    data.options.textDetectorModel ?? DEFAULT_TEXT_DETECTOR_MODEL,
    target,
    data.options.textMinConfidence ?? DEFAULT_TEXT_SCORE_THRESHOLD,
    maxObjects,
  );
  return { boxes: (await detector.detect(image)).map((b) => clampBox(b, image)), detector: detector.name };
}

/** Boxes can fall partly outside the image: clamp to it. */
export function clampBox(b: Box, image: { width: number; height: number }): Box {
  const clamp = (v: number, max: number) => Math.min(Math.max(v, 0), max);
  return { ...b, x0: clamp(b.x0, image.width), y0: clamp(b.y0, image.height), x1: clamp(b.x1, image.width), y1: clamp(b.y1, image.height) };
}
