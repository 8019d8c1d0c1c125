/**
 * A pool's warm-up before it takes jobs. The mask pool loads the models its config names and runs
 * them once on a small grey image, so that no job pays for the sessions and onnxruntime's first-run
 * allocations under its lock (issue 14 reported a fresh process's first photo at 17-22 s against
 * 7 s afterwards). A warm-up that fails (a model missing) is logged and the pool takes jobs
 * anyway: they then fail with the usual error.
 */
import { isBedrockSalient } from "../generators/stability-remove-background.js";
import { usesSalient } from "../pipeline/jobs.js";
import { log } from "../runtime/log.js";
import type { Stage } from "../pipeline/queues.js";
import type { Box, RgbImage } from "../imaging/types.js";
import type { WorkerContext } from "../stages/context.js";

const GREY: RgbImage = { data: new Uint8Array(64 * 48 * 3).fill(128), width: 64, height: 48 };
const BOX: Box = { x0: 16, y0: 12, x1: 48, y1: 36 };

/** The models of the config's mask jobs, each run once: the instances src/stages/mask.ts asks the context for. */
async function warmUpMask(ctx: WorkerContext): Promise<void> {
  const { config } = ctx;
  // The salient model whenever one is named (its jobs say target auto; a worker's config need not).
  const spec = config.salientModel;
  if (spec) {
    const salient = await ctx.salient(spec);
    // Bedrock's is a paid request, with nothing of this process to warm.
    if (!isBedrockSalient(spec)) await salient.predict(GREY);
  }
  // SAM: the mask of every other job, and the salient mask's refinement unless that is off.
  if (!usesSalient(config) || config.salientRefine !== false) await (await ctx.segmenter(config.samModel, config.refineMask ?? false, config.maskSelection)).segment(GREY, [BOX]);
}

const warmUps: Partial<Record<Stage, (ctx: WorkerContext) => Promise<void>>> = { mask: warmUpMask };

/** Warms `stage`'s models up, logging how long it took or why it failed; never rejects. */
export async function warmUp(stage: Stage, ctx: WorkerContext): Promise<void> {
  const warm = warmUps[stage];
  if (!warm) return;
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  try {
    await warm(ctx);
    log.info({ stage, ms: ms() }, "warmed up");
  } catch (err) {
    log.warn({ stage, ms: ms(), err: err instanceof Error ? err.message : String(err) }, "warm-up failed; taking jobs anyway");
  }
}
