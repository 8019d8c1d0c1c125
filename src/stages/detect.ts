/** Detect: image -> boxes (given, whole image, or a face detector), then hands on to mask. */
import type { Job } from "bullmq";
import { InputError } from "../runtime/errors.js";
import { outputKeys, parseJobData, type DataOf, type ImageJob } from "../pipeline/jobs.js";
import { detectionsSchema, type Detections } from "../pipeline/artifacts.js";
import { jobOptions } from "../pipeline/queues.js";
import type { Box, RgbImage } from "../imaging/types.js";
import { isS3Uri, parseS3Uri } from "../storage/s3.js";
import type { WorkerContext } from "./context.js";
import { DEFAULT_TEXT_SCORE_THRESHOLD } from "../detectors/owlv2.js";
import { DEFAULT_TEXT_DETECTOR_MODEL } from "../config/config.js";

export async function detectStage(job: Job, ctx: WorkerContext): Promise<{ boxes: number; reused?: true }> {
  const data = await ctx.imageJob(job.data);
  const store = ctx.store(data.out);
  const key = outputKeys(data.outPrefix).detections;
  // Detections already stored for this image id (an earlier run, or an attempt that died after
  // writing them) are the same: not detected again (not paid again, with Rekognition).
  if (await store.exists(key)) {
    const stored = detectionsSchema.safeParse(JSON.parse((await store.read(key)).toString("utf8")));
    if (stored.success && stored.data.imageId === data.imageId) {
      const { boxes } = stored.data;
      if (boxes.length === 0) throw nothingFound(data);
      await handOn(job, ctx, data, boxes);
      return { boxes: boxes.length, reused: true };
    }
  }
  const started = performance.now();
  const image = await ctx.loadImage(data);
  const { boxes, detector } = await findBoxes(data, image, ctx);
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
  // Written when nothing was found too: a later run of this image fails the same way without asking again.
  await store.write(key, Buffer.from(JSON.stringify(detections, null, 2)));
  if (kept.length === 0) throw nothingFound(data);
  await handOn(job, ctx, data, kept);
  return { boxes: kept.length };
}

const nothingFound = (data: ImageJob) => new InputError(`${data.name}: no ${data.options.target} found`);

/**
 * The image's mask job (same job id: the image as queued, with the boxes found, which mask
 * segments; without them, mask reads detections.json), then detect counts as done.
 */
export async function handOn(job: Job, ctx: WorkerContext, data: ImageJob, detected?: Box[]): Promise<void> {
  const mask: DataOf<"mask"> = { ...parseJobData("detect", job.data), kind: "mask", ...(detected && { detected }) };
  await ctx.queues.mask.add("mask", mask, { ...jobOptions(ctx.config.attempts), jobId: String(job.id) });
  await ctx.runState.stageDone(data.runId, data.imageId, "detect");
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
