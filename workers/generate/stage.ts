/**
 * Generate: image + mask + (prompt, seed) -> one result. A result already in the store is never
 * made again (no duplicate work, no double charge for paid generators).
 */
import type { Job } from "bullmq";
import sharp from "sharp";
import { generateJobSchema, outputKeys } from "../../shared/jobs.js";
import { encodePng } from "../../shared/image.js";
import { featherMask } from "../../shared/mask-ops.js";
import { generatorRequest } from "../../shared/metrics.js";
import type { Mask } from "../../shared/types.js";
import type { WorkerContext } from "../context.js";
import { usesSalient } from "../mask/salient.js";

export interface GenerateResult {
  resultKey: string;
  promptIndex: number;
  prompt: string;
  seed: number;
  generator: string;
  ms: number;
  /** True when the result was already in the store and nothing was generated. */
  reused: boolean;
}

export async function generateStage(job: Job, ctx: WorkerContext): Promise<GenerateResult> {
  const g = generateJobSchema.parse(job.data);
  const { image: img } = g;
  const opts = img.options;
  const store = ctx.store(img.out);
  const started = performance.now();
  const generator = await ctx.generator(opts);
  const base = { resultKey: g.resultKey, promptIndex: g.promptIndex, prompt: g.prompt, seed: g.seed, generator: generator.name };
  // Checked before anything is sent: a result that exists was paid for once already.
  if (await store.exists(g.resultKey)) {
    await ctx.runState.resultDone(img.imageId, g.resultKey);
    return { ...base, ms: 0, reused: true };
  }
  const image = await ctx.loadImage(img);
  // A salient model's mask is already a soft alpha (hair, fur, glass): blend with it as it is.
  const mask = await featherMask(await decodeMask(await store.read(outputKeys(img.outPrefix).mask)), usesSalient(opts) ? 0 : opts.featherPx);
  const out = await generatorRequest(generator.name, () =>
    generator.generate({
      image,
      mask,
      mode: opts.mode,
      prompt: g.prompt,
      seed: g.seed,
      cfgScale: opts.cfgScale,
      quality: opts.quality,
      outpaintingMode: opts.outpaintingMode,
      ...(opts.negativePrompt && { negativePrompt: opts.negativePrompt }),
      ...(opts.maskPrompt && { maskPrompt: opts.maskPrompt }),
    }),
  );
  await store.write(g.resultKey, await encodePng(out));
  await ctx.runState.resultDone(img.imageId, g.resultKey);
  return { ...base, ms: Math.round(performance.now() - started), reused: false };
}

export async function decodeMask(png: Buffer): Promise<Mask> {
  const { data, info } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
}
