/**
 * Generate: image + mask + (prompt, seed) -> one result. A result already in the store is never
 * made again (no duplicate work, no double charge for paid generators).
 *
 * Per process, an image's photo and mask are read once and prepared once (fitted and encoded
 * for the service) for all its prompt x seed results: the context keeps prepared images in a
 * bounded cache (WorkerContext.preparedEdit).
 *
 * With a cloud generator and no fixed --rate, every request first takes a slot of the fleet's
 * adaptive rate (src/rate/adaptive-rate.ts, one rate in Redis for every worker on every host),
 * reports its success, and on a throttle cuts the rate and tries again after the next slot,
 * up to `adaptiveThrottleTries` times, before the queue-wide pause takes over.
 */
import type { Job } from "bullmq";
import sharp from "sharp";
import { ThrottledError } from "../runtime/errors.js";
import { generateJobOf, outputKeys, parseJobData, resultIndexOf, type GenerateJob } from "../pipeline/jobs.js";
import type { GenerateResult } from "../pipeline/artifacts.js";
import { encodePng } from "../imaging/image.js";
import { featherMask } from "../imaging/mask-ops.js";
import { decodeMask } from "../imaging/mask-codec.js";
import * as metrics from "../runtime/metrics.js";
import type { RgbImage } from "../imaging/types.js";
import type { Generator, PreparedEdit } from "../generators/generator.js";
import type { WorkerContext } from "./context.js";
import { usesSalient } from "../pipeline/jobs.js";

/** Throttled tries of one result under the adaptive rate before the job goes back to the queue. */
const adaptiveThrottleTries = 8;

/** What a generate job returns, for its finalize parent (the schema: src/pipeline/artifacts.ts). */

export async function generateStage(job: Job, ctx: WorkerContext): Promise<GenerateResult> {
  const ref = parseJobData("generate", job.data);
  const { image: img, promptVars } = await ctx.imageOfGenerate(job);
  if (img.imageId !== ref.imageId) throw new Error(`generate job ${job.id}: its parent is image ${img.imageId}, not ${ref.imageId}`);
  const g = generateJobOf(img, ref.promptIndex, ref.seed, promptVars);
  const resultIndex = resultIndexOf(img.options, g);
  const opts = img.options;
  const store = ctx.store(img.out);
  const started = performance.now();
  const generator = await ctx.generator(opts);
  const base = { resultKey: g.resultKey, promptIndex: g.promptIndex, prompt: g.prompt, seed: g.seed, generator: generator.name };
  // Checked before anything is sent: a result that exists was paid for once already.
  if (await store.exists(g.resultKey)) {
    await ctx.runState.resultDone(img.runId, img.imageId, resultIndex);
    return { ...base, ms: 0, reused: true };
  }
  const prepared = await ctx.preparedEdit(img, generator, async () => {
    const image = await ctx.loadImage(img);
    const keys = outputKeys(img.outPrefix);
    // A salient model's mask is already a soft alpha (hair, fur, glass): blend with it as it is.
    const mask = await featherMask(await decodeMask(await store.read(keys.mask)), usesSalient(opts) ? 0 : opts.featherPx);
    // The object's estimated colours, as the mask stage wrote them into the cutout.
    const foreground = opts.estimateForeground ? await decodeCutoutColours(await store.read(keys.cutout), image) : undefined;
    return generator.prepare({
      image: { data: image.data, width: image.width, height: image.height },
      mask,
      mode: opts.mode,
      ...(opts.maskPrompt && { maskPrompt: opts.maskPrompt }),
      ...(foreground && { foreground }),
    });
  });
  const out = await requestPaced(ctx, g, generator, prepared);
  await store.write(g.resultKey, await encodePng(out));
  await ctx.runState.resultDone(img.runId, img.imageId, resultIndex);
  return { ...base, ms: Math.round(performance.now() - started), reused: false };
}

/** One generator request, under the fleet's adaptive rate when one applies. */
async function requestPaced(ctx: WorkerContext, g: GenerateJob, generator: Generator, prepared: PreparedEdit): Promise<RgbImage> {
  const opts = g.image.options;
  const request = () =>
    metrics.generatorRequest(generator.name, () =>
      generator.generate(
        {
          ...prepared.input,
          prompt: g.prompt,
          seed: g.seed,
          cfgScale: opts.cfgScale,
          quality: opts.quality,
          outpaintingMode: opts.outpaintingMode,
          ...(opts.negativePrompt && { negativePrompt: opts.negativePrompt }),
        },
        prepared,
      ),
    );
  const rate = ctx.adaptiveRate(opts);
  if (!rate) return request();
  for (let tries = 1; ; tries++) {
    await rate.acquire();
    try {
      const out = await request();
      await rate.succeeded();
      return out;
    } catch (err) {
      if (!(err instanceof ThrottledError)) throw err;
      await rate.throttled();
      metrics.throttles.inc({ stage: "generate" });
      await ctx.runState.count(g.image.runId, "throttles").catch(() => undefined); // statistics only
      if (tries >= adaptiveThrottleTries) throw err;
    }
  }
}

/** The RGB of cutout.png (the estimated foreground colours), which must be the photo's size. */
async function decodeCutoutColours(png: Buffer, photo: RgbImage): Promise<RgbImage> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  if (info.width !== photo.width || info.height !== photo.height || info.channels !== 3) {
    throw new Error(`cutout.png is ${info.width}x${info.height}x${info.channels}, the photo ${photo.width}x${photo.height}`);
  }
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
}
