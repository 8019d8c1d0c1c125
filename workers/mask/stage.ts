/**
 * Mask: image + boxes -> one cleaned mask (SAM encoder once, decoder once for all boxes), written
 * as mask.png, the Bedrock black/white form and an RGBA cutout; then fans out one generate job
 * per (prompt, seed) under a finalize parent.
 */
import type { Job } from "bullmq";
import { InputError } from "../../shared/errors.js";
import {
  generateJobData,
  generateJobId,
  generateJobsOf,
  outputKeys,
  promptVarsSchema,
  queuedImageSchema,
  resultCountOf,
  type ImageJob,
  type QueuedFinalize,
} from "../../shared/jobs.js";
import type { Store } from "../../shared/storage/index.js";
import { encodePng, rgbaFrom } from "../../shared/image.js";
import { estimateForeground } from "../../shared/foreground.js";
import { fillHoles, growMask, maskStats, removeSmallIslands, toBedrockMask, unionMasks } from "../../shared/mask-ops.js";
import { maskQuality } from "../../shared/mask-quality.js";
import { observeStep } from "../../shared/metrics.js";
import { jobOptions } from "../../shared/queues.js";
import { dominantColorName, type PromptVars } from "../../shared/prompts.js";
import type { Mask } from "../../shared/types.js";
import type { WorkerContext } from "../context.js";
import type { Detections } from "../detect/stage.js";
import { SalientSegmenter, usesSalient } from "./salient.js";
import type { Segmenter } from "./segmenter.js";

/** target auto with salientModel: the salient soft mask, refined by SAM unless salientRefine is false. */
async function salientSegmenter(ctx: WorkerContext, opts: { samModel: string; salientModel?: string | undefined; salientRefine?: boolean | undefined }): Promise<Segmenter> {
  const salient = await ctx.salient(opts.salientModel as string);
  return new SalientSegmenter(salient, opts.salientRefine === false ? undefined : await ctx.segmenter(opts.samModel));
}

export async function maskStage(job: Job, ctx: WorkerContext): Promise<{ area: number; reused?: true; review?: true }> {
  const data = await ctx.imageJob(job.data);
  const keys = outputKeys(data.outPrefix);
  const store = ctx.store(data.out);
  const opts = data.options;
  // A mask already stored for this image id (mask.json is written last) is the same: not segmented again.
  const stored = await storedMask(store, keys.maskInfo);
  if (stored) {
    if (await heldForReview(job, ctx, data, stored.quality)) return { area: stored.area, reused: true, review: true };
    await fanOut(job, ctx, data, stored.promptVars);
    return { area: stored.area, reused: true };
  }
  const image = await ctx.loadImage(data);
  const detections = JSON.parse((await store.read(keys.detections)).toString("utf8")) as Detections;

  const segmenter = usesSalient(opts) ? await salientSegmenter(ctx, opts) : await ctx.segmenter(opts.samModel, opts.refineMask, opts.maskSelection);
  const segmented = await segmenter.segment(image, detections.boxes).catch((err: unknown) => {
    throw err instanceof InputError ? new InputError(`${data.name}: ${err.message.replace(/^segment: /, "")}`, { cause: err }) : err;
  });
  observeStep("sam_encode", segmented.timings.encodeMs);
  observeStep("sam_decode", segmented.timings.decodeMs);
  const cleanStart = performance.now();
  let mask: Mask = unionMasks(segmented.masks);
  if (opts.fillHoles) mask = fillHoles(mask, { maxArea: opts.maxHoleFraction * maskStats(mask).area });
  if (opts.minIslandArea > 0) mask = removeSmallIslands(mask, opts.minIslandArea);
  if (opts.growPx !== 0) mask = growMask(mask, opts.growPx);
  const stats = maskStats(mask);
  if (stats.area === 0) throw new InputError(`${data.name}: the mask is empty (nothing segmented inside the boxes)`);
  const quality = maskQuality({
    masks: segmented.masks,
    ...(segmented.scores.length > 0 && { predictedIoU: segmented.scores }),
    ...(segmented.stability && { stability: segmented.stability }),
    ...(segmented.salientAgreement !== undefined && { salientAgreement: segmented.salientAgreement }),
    final: mask,
  });
  const cleanMs = performance.now() - cleanStart;
  // The object's own colours in the soft edge, for the cutout and (read back from it) every composite.
  const foregroundStart = performance.now();
  const colours = opts.estimateForeground ? estimateForeground(image, mask) : image;
  const foregroundMs = performance.now() - foregroundStart;

  const writeStart = performance.now();
  // Encode all three first, then write: a write must never be left pending (and its rejection
  // unobserved, which ends the process) while another await runs. Every write settles before the
  // job ends, so a retry never races a write of the failed attempt; the first failure is the reason.
  const pngs: [string, Buffer][] = [
    [keys.mask, await encodePng(mask)],
    [keys.bedrockMask, await encodePng(toBedrockMask(mask))],
    [keys.cutout, await encodePng(rgbaFrom(colours, mask))],
  ];
  const written = await Promise.allSettled(pngs.map(([key, png]) => store.write(key, png)));
  const failed = written.find((w): w is PromiseRejectedResult => w.status === "rejected");
  if (failed) throw failed.reason;
  const promptVars: PromptVars = { label: (detections.boxes[0]?.label ?? opts.target).toLowerCase(), color: dominantColorName(image, mask) };
  const info = {
    model: segmenter.name,
    executionProvider: segmenter.executionProvider,
    ...(segmented.selection && { maskSelection: segmented.selection }),
    boxes: detections.boxes.map((box, i) => ({ box, score: segmented.scores[i], stability: segmented.stability?.[i] })),
    stats,
    quality,
    foregroundEstimated: opts.estimateForeground,
    promptVars,
    timings: { ...segmented.timings, cleanMs, foregroundMs, writeMs: performance.now() - writeStart },
  };
  await store.write(keys.maskInfo, Buffer.from(JSON.stringify(info, null, 2)));

  if (await heldForReview(job, ctx, data, quality.score)) return { area: stats.area, review: true };
  await fanOut(job, ctx, data, promptVars);
  return { area: stats.area };
}

/**
 * An image whose mask quality is below the run's minMaskQuality finishes held for review instead
 * of going on to generation (nothing is paid for). `maskfleet retry --stage mask` sends it on: its
 * job then says `reviewed`, and the stored mask (mask.png may have been fixed by hand) is used.
 */
async function heldForReview(job: Job, ctx: WorkerContext, data: ImageJob, quality: number | undefined): Promise<boolean> {
  const bar = data.options.minMaskQuality;
  if (bar === undefined || data.reviewed || quality === undefined || quality >= bar) return false;
  const reason = `mask quality ${quality} is below minMaskQuality ${bar}: held for review`;
  const notAttempted = resultCountOf(data.options);
  await ctx.runState.finished(data.runId, data.imageId, {
    outcome: "review",
    stage: "mask",
    name: data.name,
    failedResults: 0,
    notAttempted,
    causes: [],
    record: { stage: "mask", reason, name: data.name, job: queuedImageSchema.parse(job.data), notAttempted, causes: [], review: { quality, bar } },
  });
  return true;
}

/** The prompt variables, area and quality score of a mask stored by an earlier run or attempt; undefined when there is none. */
async function storedMask(store: Store, key: string): Promise<{ promptVars: PromptVars; area: number; quality?: number } | undefined> {
  if (!(await store.exists(key))) return undefined;
  const info = JSON.parse((await store.read(key)).toString("utf8")) as { promptVars?: unknown; stats?: { area?: unknown }; quality?: { score?: unknown } };
  const vars = promptVarsSchema.safeParse(info.promptVars);
  if (!vars.success) return undefined;
  const score = info.quality?.score;
  return { promptVars: vars.data, area: typeof info.stats?.area === "number" ? info.stats.area : 0, ...(typeof score === "number" && { quality: score }) };
}

/** One generate job per (prompt, seed) under the image's finalize parent, then mask counts as done. */
export async function fanOut(job: Job, ctx: WorkerContext, data: ImageJob, promptVars: PromptVars): Promise<void> {
  const imageJobId = String(job.id);
  // The children carry only their prompt x seed; the image is stored once, in the parent.
  const children = generateJobsOf(data, promptVars).map((g) => ({
    name: "generate",
    queueName: "generate",
    data: generateJobData(g),
    opts: { ...jobOptions(ctx.config.attempts), jobId: generateJobId(imageJobId, g), ignoreDependencyOnFailure: true },
  }));
  // A retried mask job must not add the fan-out twice.
  if (!(await ctx.queues.finalize.getJob(imageJobId))) {
    await ctx.flows.add({
      name: "finalize",
      queueName: "finalize",
      data: { ...queuedImageSchema.parse(job.data), promptVars } satisfies QueuedFinalize,
      opts: { ...jobOptions(ctx.config.attempts), jobId: imageJobId },
      children,
    });
  }
  await ctx.runState.stageDone(data.runId, data.imageId, "mask");
}
