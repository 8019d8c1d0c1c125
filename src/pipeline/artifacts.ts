/**
 * The artifacts the stages write under an image's output prefix (`outputKeys` in jobs.ts) and
 * read back, and the generate job's result: one schema each. Writers build values of these types;
 * readers parse what they read (a file may be from another version, or edited by hand).
 * manifest.json is the product's main output: docs/manifest.schema.json is its JSON Schema,
 * generated from manifestSchema by scripts/manifest-schema.ts.
 */
import { z } from "zod";
import { imageOptionsSchema } from "../config/image-options.js";
import { boxSchema, promptVarsSchema } from "./jobs.js";

const imageIdSchema = z.string().regex(/^[0-9a-f]{16,64}$/);
const countSchema = z.number().int().min(0);

/** detections.json (detect): the boxes found, best first, at most maxObjects; none when nothing was found. */
export const detectionsSchema = z.object({
  imageId: imageIdSchema,
  name: z.string(),
  width: countSchema.describe("The photo's width in pixels (EXIF orientation applied)."),
  height: countSchema,
  target: z.string().describe("What was looked for: auto, boxes, face, or a label."),
  detector: z.string().describe("What found the boxes: whole-image, given, or a detector's name."),
  boxes: z.array(boxSchema).describe("Pixel boxes, x0/y0 inclusive, x1/y1 exclusive."),
  ms: z.number().min(0),
});
export type Detections = z.infer<typeof detectionsSchema>;

const bboxSchema = z.object({ x0: z.number(), y0: z.number(), x1: z.number(), y1: z.number() });

/** mask.json (mask): how the mask was made and how good it looks; written last, so its presence means the mask's files are there. */
export const maskInfoSchema = z.object({
  model: z.string().describe("The segmenter (a SAM, or a salient model refined by SAM)."),
  executionProvider: z.string(),
  maskSelection: z.enum(["single", "best"]).optional(),
  boxes: z.array(
    z.object({
      box: boxSchema,
      score: z.number().optional().describe("The model's predicted IoU of this box's mask."),
      stability: z.number().optional().describe("SAM's stability score of this box's mask."),
    }),
  ),
  stats: z.object({
    area: countSchema.describe("Object pixels (>= 128)."),
    fraction: z.number().min(0).max(1),
    bbox: bboxSchema.nullable().describe("Tight box around the object pixels; null when there are none."),
  }),
  quality: z
    .object({
      score: z.number().min(0).max(1).describe("The lowest of the parts: the weakest evidence decides."),
      predictedIoU: z.number().optional(),
      stability: z.number().optional(),
      wholeness: z.number(),
      salientAgreement: z.number().optional(),
      softBandShare: z.number(),
    })
    .describe("Mask quality, each part 0-1 (src/imaging/mask-quality.ts); minMaskQuality holds images scoring below it for review."),
  foregroundEstimated: z.boolean().describe("Whether cutout.png holds estimated foreground colours."),
  promptVars: promptVarsSchema.describe("{label} and {color} of the prompt templates."),
  timings: z.object({
    preprocessMs: z.number(),
    encodeMs: z.number(),
    decodeMs: z.number(),
    postprocessMs: z.number(),
    cleanMs: z.number(),
    foregroundMs: z.number(),
    writeMs: z.number(),
  }),
  reviewed: z.literal(true).optional().describe("The image was held for review and sent on: its mask.png is the reviewed one."),
});
export type MaskInfo = z.infer<typeof maskInfoSchema>;

/** A generate job's result (BullMQ keeps it for its finalize parent). */
export const generateResultSchema = z.object({
  resultKey: z.string(),
  promptIndex: countSchema,
  prompt: z.string(),
  seed: countSchema,
  generator: z.string(),
  ms: z.number().min(0),
  /** True when the result was already in the store and nothing was generated. */
  reused: z.boolean(),
});
export type GenerateResult = z.infer<typeof generateResultSchema>;

const resultRowBase = {
  key: z.string().describe("Store key of the result image, under the output root."),
  prompt: z.string().describe("The prompt, its {label} and {color} filled."),
  promptIndex: countSchema,
  seed: countSchema,
  generator: z.string(),
};

/** One row of the manifest's results: every expected prompt x seed, made or not. */
export const manifestResultSchema = z.discriminatedUnion("status", [
  z.object({
    status: z.literal("ok"),
    ...resultRowBase,
    ms: z.number().min(0).optional().describe("The generate job's time; absent for a result made before this finalize's jobs (`retry` runs only the failed ones)."),
    reused: z.boolean().describe("True when the result was already in the store and nothing was generated."),
  }),
  z.object({ status: z.literal("failed"), ...resultRowBase, reason: z.string() }),
]);
export type ManifestResult = z.infer<typeof manifestResultSchema>;

/** manifest.json (finalize): everything known of one image and its results. */
export const manifestSchema = z
  .object({
    imageId: imageIdSchema.describe("Hash of the image's content, output root, options and given boxes."),
    name: z.string().describe("The input's path relative to what was enqueued."),
    input: z.string().describe("The input's absolute path or URI."),
    runId: z.string(),
    options: imageOptionsSchema.describe("The options that made the outputs."),
    detections: detectionsSchema.describe("detections.json, as detect wrote it."),
    mask: maskInfoSchema.describe("mask.json, as mask wrote it."),
    outputs: z
      .object({ mask: z.string(), bedrockMask: z.string(), cutout: z.string(), contactSheet: z.string() })
      .describe("Store keys of the image's other outputs, under the output root."),
    results: z.array(manifestResultSchema).describe("Every prompt x seed, in prompt then seed order."),
    finishedAt: z.iso.datetime(),
  })
  .meta({ title: "maskfleet manifest.json", description: "One image's manifest, written by maskfleet's finalize stage under <out>/<name>-<imageId>/." });
export type Manifest = z.infer<typeof manifestSchema>;

/** An artifact read back from the store, checked against its schema. */
export function parseArtifact<T>(schema: z.ZodType<T>, body: Buffer, key: string): T {
  const parsed = schema.safeParse(JSON.parse(body.toString("utf8")));
  if (!parsed.success) throw new Error(`${key} is not what this version writes: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}
