/**
 * Mask: image + boxes -> one cleaned mask (SAM encoder once, decoder once for all boxes), written
 * as mask.png, the Bedrock black/white form and an RGBA cutout; then fans out one generate job
 * per (prompt, seed) under a finalize parent.
 */
import type { Job } from "bullmq";
import { InputError } from "../runtime/errors.js";
import { generateJobData, generateJobsOf, outputKeys, parseJobData, queuedImageSchema, resultCountOf, type DataOf, type ImageJob } from "../pipeline/jobs.js";
import { detectionsSchema, maskInfoSchema, parseArtifact, type MaskInfo } from "../pipeline/artifacts.js";
import type { Store } from "../storage/index.js";
import { encodePng, rgbaFrom } from "../imaging/image.js";
import { estimateForeground } from "../imaging/foreground.js";
import { featherMask, fillHoles, growMask, maskStats, removeSmallIslands, toBedrockMask, unionMasks } from "../imaging/mask-ops.js";
import { maskQuality } from "../imaging/mask-quality.js";
import { observeStep } from "../runtime/metrics.js";
import { finalizeFlow } from "../pipeline/queues.js";
import { dominantColorName, type PromptVars } from "../pipeline/prompts.js";
import type { Box, Mask, RgbImage } from "../imaging/types.js";
import { decodeMask } from "../imaging/mask-codec.js";
import type { WorkerContext } from "./context.js";
import { SalientSegmenter } from "../segmenters/salient.js";
import { usesSalient } from "../pipeline/jobs.js";
import type { Segmenter } from "../segmenters/types.js";

/** target auto with salientModel: the salient soft mask, refined by SAM unless salientRefine is false. */
async function salientSegmenter(ctx: WorkerContext, opts: ImageJob["options"]): Promise<Segmenter> {
  const salient = await ctx.salient(opts.salientModel as string);
  return new SalientSegmenter(salient, opts.salientRefine === false ? undefined : await ctx.segmenter(opts.samModel, opts.refineMask, opts.maskSelection));
}

export async function maskStage(job: Job, ctx: WorkerContext): Promise<{ area: number; reused?: true; review?: true }> {
  const queued = parseJobData("mask", job.data);
  const data = await ctx.imageJob(queued);
  const keys = outputKeys(data.outPrefix);
  const store = ctx.store(data.out);
  const opts = data.options;
  // A mask already stored for this image id (mask.json is written last) is the same: not segmented again.
  const stored = await storedMask(store, keys.maskInfo);
  if (stored) {
    // Reviewed: its mask.png may have been fixed by hand, so what is made from it is made again.
    const promptVars = data.reviewed ? await remakeFromStoredMask(ctx, data, stored) : stored.promptVars;
    if (await heldForReview(job, ctx, data, stored.quality.score)) return { area: stored.stats.area, reused: true, review: true };
    await fanOut(job, ctx, data, promptVars);
    return { area: stored.stats.area, reused: true };
  }
  const image = await ctx.loadImage(data);
  const boxes = queued.detected ?? (await detectedBoxes(store, keys.detections));

  const segmenter = usesSalient(opts) ? await salientSegmenter(ctx, opts) : await ctx.segmenter(opts.samModel, opts.refineMask, opts.maskSelection);
  const segmented = await segmenter.segment(image, boxes).catch((err: unknown) => {
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

  const writeStart = performance.now();
  const { foregroundMs } = await writeMaskImages(store, keys, image, mask, opts, { withMask: true });
  const promptVars: PromptVars = { label: (boxes[0]?.label ?? opts.target).toLowerCase(), color: dominantColorName(image, mask) };
  const info: MaskInfo = {
    model: segmenter.name,
    executionProvider: segmenter.executionProvider,
    ...(segmented.selection && { maskSelection: segmented.selection }),
    boxes: boxes.map((box, i) => ({ box, score: segmented.scores[i], stability: segmented.stability?.[i] })),
    stats,
    quality,
    foregroundEstimated: opts.estimateForeground,
    promptVars,
    timings: { ...segmented.timings, cleanMs, foregroundMs, writeMs: performance.now() - writeStart - foregroundMs },
  };
  await store.write(keys.maskInfo, Buffer.from(JSON.stringify(info, null, 2)));

  if (await heldForReview(job, ctx, data, quality.score)) return { area: stats.area, review: true };
  await fanOut(job, ctx, data, promptVars);
  return { area: stats.area };
}

/**
 * The Bedrock mask and the cutout of `mask` (and mask.png itself `withMask`). The cutout's colours
 * are the object's own where `estimateForeground` is on, estimated under the alpha the results
 * blend with: the mask feathered by featherPx (a salient model's soft mask as it is), so the
 * whole blended edge loses the old background's colour.
 */
async function writeMaskImages(
  store: Store,
  keys: ReturnType<typeof outputKeys>,
  image: RgbImage,
  mask: Mask,
  opts: ImageJob["options"],
  o: { withMask: boolean },
): Promise<{ foregroundMs: number }> {
  const foregroundStart = performance.now();
  const colours = opts.estimateForeground ? estimateForeground(image, await featherMask(mask, usesSalient(opts) ? 0 : opts.featherPx)) : image;
  const foregroundMs = performance.now() - foregroundStart;
  // Encode all first, then write: a write must never be left pending (and its rejection
  // unobserved, which ends the process) while another await runs. Every write settles before the
  // job ends, so a retry never races a write of the failed attempt; the first failure is the reason.
  const pngs: [string, Buffer][] = [
    ...(o.withMask ? [[keys.mask, await encodePng(mask)] as [string, Buffer]] : []),
    [keys.bedrockMask, await encodePng(toBedrockMask(mask))],
    [keys.cutout, await encodePng(rgbaFrom(colours, mask))],
  ];
  const written = await Promise.allSettled(pngs.map(([key, png]) => store.write(key, png)));
  const failed = written.find((w): w is PromiseRejectedResult => w.status === "rejected");
  if (failed) throw failed.reason;
  return { foregroundMs };
}

/**
 * A reviewed image's outputs made again from its stored mask.png (fixed by hand, perhaps): the
 * Bedrock mask, the cutout, and mask.json's stats and colour, marked reviewed. Returns its prompt
 * variables.
 */
async function remakeFromStoredMask(ctx: WorkerContext, data: ImageJob, info: MaskInfo): Promise<PromptVars> {
  const store = ctx.store(data.out);
  const keys = outputKeys(data.outPrefix);
  const image = await ctx.loadImage(data);
  const mask = await decodeMask(await store.read(keys.mask));
  if (mask.width !== image.width || mask.height !== image.height) {
    throw new InputError(`${data.name}: mask.png is ${mask.width}x${mask.height}, the photo ${image.width}x${image.height}`);
  }
  const stats = maskStats(mask);
  if (stats.area === 0) throw new InputError(`${data.name}: the reviewed mask.png is empty`);
  await writeMaskImages(store, keys, image, mask, data.options, { withMask: false });
  const promptVars: PromptVars = { label: info.promptVars.label, color: dominantColorName(image, mask) };
  const reviewed: MaskInfo = { ...info, stats, promptVars, reviewed: true };
  await store.write(keys.maskInfo, Buffer.from(JSON.stringify(reviewed, null, 2)));
  return promptVars;
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

/** mask.json of a mask stored by an earlier run or attempt; undefined when there is none, or none this version reads. */
async function storedMask(store: Store, key: string): Promise<MaskInfo | undefined> {
  if (!(await store.exists(key))) return undefined;
  const stored = maskInfoSchema.safeParse(JSON.parse((await store.read(key)).toString("utf8")));
  return stored.success ? stored.data : undefined;
}

/** The boxes of detections.json, for a mask job that carries none (see maskJobSchema). */
async function detectedBoxes(store: Store, key: string): Promise<Box[]> {
  return parseArtifact(detectionsSchema, await store.read(key), key).boxes;
}

/** One generate job per (prompt, seed) under the image's finalize parent, then mask counts as done. */
export async function fanOut(job: Job, ctx: WorkerContext, data: ImageJob, promptVars: PromptVars): Promise<void> {
  const imageJobId = String(job.id);
  // A retried mask job must not add the fan-out twice.
  if (!(await ctx.queues.finalize.getJob(imageJobId))) {
    // The children carry only their prompt x seed; the image is stored once, in the parent.
    const finalize: DataOf<"finalize"> = { ...queuedImageSchema.parse(job.data), kind: "finalize", promptVars };
    await ctx.flows.add(finalizeFlow(finalize, generateJobsOf(data, promptVars).map(generateJobData), { jobId: imageJobId, attempts: ctx.config.attempts }));
  }
  await ctx.runState.stageDone(data.runId, data.imageId, "mask");
}
