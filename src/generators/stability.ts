/**
 * The Stability AI Image Services generator (Bedrock, `us.` cross-region inference profiles):
 * one editing service per result (stability-inpaint.ts, stability-search-replace.ts,
 * stability-erase.ts), optionally after Stable Outpaint has extended the canvas
 * (stability-outpaint.ts). Per image, `prepare` fits the photo to Stability's size rules (each
 * side >= 64 px, <= 9,437,184 px, aspect 1:2.5-2.5:1; bedrock-image.ts planSize) and encodes it
 * and the mask once. Every result comes back at the original size (plus any extension) with the
 * region that must not change pasted back from the original through the soft mask, so kept
 * pixels are the input's exactly.
 */
import type { BedrockRuntimeClient } from "@aws-sdk/client-bedrock-runtime";
import { z } from "zod";
import { ConfigError } from "../runtime/errors.js";
import { encodePng, resizeRgb } from "../imaging/image.js";
import { invertMask } from "../imaging/mask-ops.js";
import type { Mask, RgbImage } from "../imaging/types.js";
import { STABILITY_SIZE_RULES, decodeModelImage, finishEdit, fitImage, fitMask, planSize, type SizePlan } from "./bedrock-image.js";
import type { GeneratorBackend, GeneratorSettings } from "./backend.js";
import { createBedrockClient } from "./bedrock-client.js";
import { familyOf, stabilityModelFor, stabilityServiceOf, type StabilityService } from "./bedrock-models.js";
import { STABILITY_MAX_SEED, STABILITY_MAX_TEXT, STYLE_PRESETS, commonFields, invokeStability, stabilityText, type StabilityEdit } from "./stability-common.js";
import { stabilityErase } from "./stability-erase.js";
import { stabilityInpaint } from "./stability-inpaint.js";
import { extensionFor, outpaintFields, type ExtendSpec } from "./stability-outpaint.js";
import { stabilitySearchReplace } from "./stability-search-replace.js";
import { editInputBytes, keptPixels, type EditInput, type GenerateRequest, type Generator, type PreparedEdit } from "./generator.js";

export type StabilityEditName = "inpaint" | "search-replace" | "erase" | "extend";

const EDITS: Record<Exclude<StabilityEditName, "extend">, StabilityEdit> = {
  inpaint: stabilityInpaint,
  "search-replace": stabilitySearchReplace,
  erase: stabilityErase,
};

export interface StabilityOptions {
  /** The editing service's model id; with edit "extend", the outpaint model's. */
  modelId: string;
  edit: StabilityEditName;
  searchPrompt?: string | undefined;
  stylePreset?: string | undefined;
  /** Stability's grow_mask, 0-20. */
  growMask: number;
  /** Extend the canvas first (Stable Outpaint). */
  extend?: ExtendSpec | undefined;
  creativity?: number | undefined;
  /** The outpaint model used for `extend` (default us.stability.stable-outpaint-v1:0). */
  outpaintModelId?: string;
}

interface PreparedStabilityEdit extends PreparedEdit {
  plan: SizePlan;
  imageBase64: string;
  /** The region to regenerate (white), fitted like the image; absent when the service takes no mask. */
  maskBase64?: string;
}

export class StabilityGenerator implements Generator {
  readonly name: string;
  private readonly edit: StabilityEdit | undefined;
  private readonly outpaintModelId: string;

  constructor(
    private readonly client: BedrockRuntimeClient,
    private readonly opts: StabilityOptions,
  ) {
    this.edit = opts.edit === "extend" ? undefined : EDITS[opts.edit];
    this.outpaintModelId = opts.edit === "extend" ? opts.modelId : (opts.outpaintModelId ?? stabilityModelFor("outpaint"));
    this.name = opts.extend && this.edit ? `${this.outpaintModelId}+${opts.modelId}` : opts.modelId;
  }

  async prepare(input: EditInput): Promise<PreparedStabilityEdit> {
    const plan = planSize(STABILITY_SIZE_RULES, input.image.width, input.image.height);
    const imageBase64 = (await encodePng(await fitImage(input.image, plan))).toString("base64");
    const regenerates = this.edit ? this.edit.regenerates(input.mode) : "none";
    const maskBase64 = regenerates === "none" ? undefined : await encodeRegion(await fitMask(input.mask, plan), regenerates);
    return { input, plan, imageBase64, ...(maskBase64 && { maskBase64 }), bytes: editInputBytes(input) + imageBase64.length + (maskBase64?.length ?? 0) };
  }

  async generate(request: GenerateRequest, prepared?: PreparedEdit): Promise<RgbImage> {
    const p = (prepared as PreparedStabilityEdit | undefined) ?? (await this.prepare(request));
    const extended = this.opts.extend && (await this.extendCanvas(request, p));
    // Extend only: the extended canvas, or the photo itself when there was nothing to extend (nothing sent).
    if (!this.edit) return extended ? extended.image : request.image;
    // The edit runs on the photo as prepared, or on the extended canvas, prepared the same way.
    const target = extended ? await this.prepare({ ...extended, mode: request.mode }) : p;
    const answer = await invokeStability(this.client, this.opts.modelId, {
      image: target.imageBase64,
      ...(target.maskBase64 && { mask: target.maskBase64 }),
      ...this.edit.fields(this.opts.modelId, this.editRequest(request)),
      ...this.common(this.opts.modelId, request),
    });
    const keeps = this.edit.keeps(request.mode);
    return finishEdit(keptPixels(target.input, keeps), target.input.mask, keeps, target.plan, answer.base64, this.opts.modelId);
  }

  /**
   * Stable Outpaint on the prepared image: the canvas grown by the extension (in the original's
   * pixels), the original pasted back exactly where it was, and the object mask on that canvas.
   * Undefined when there is nothing to extend (a square photo with --extend square).
   */
  private async extendCanvas(request: GenerateRequest, p: PreparedStabilityEdit): Promise<{ image: RgbImage; mask: Mask } | undefined> {
    const { plan } = p;
    const ext = extensionFor(this.opts.extend!, plan.canvasWidth, plan.canvasHeight);
    if (ext.left + ext.right + ext.up + ext.down === 0) return undefined;
    const sx = plan.sentWidth / plan.canvasWidth;
    const sy = plan.sentHeight / plan.canvasHeight;
    const sent = { left: Math.round(ext.left * sx), right: Math.round(ext.right * sx), up: Math.round(ext.up * sy), down: Math.round(ext.down * sy) };
    const prompt = request.prompt ? stabilityText(this.outpaintModelId, "prompt", request.prompt) : "";
    const answer = await invokeStability(this.client, this.outpaintModelId, {
      image: p.imageBase64,
      ...outpaintFields(sent, this.opts.creativity, prompt, `image ${plan.width}x${plan.height}`),
      ...this.common(this.outpaintModelId, request),
    });
    const width = plan.canvasWidth + ext.left + ext.right;
    const height = plan.canvasHeight + ext.up + ext.down;
    const output = await decodeModelImage(answer.base64, this.outpaintModelId);
    const canvas = await resizeRgb(output, width, height, "fill");
    const x = ext.left + plan.offsetX;
    const y = ext.up + plan.offsetY;
    return { image: pasteInto(canvas, request.image, x, y, 3), mask: pasteInto({ data: new Uint8Array(width * height), width, height }, request.mask, x, y, 1) };
  }

  private editRequest(request: GenerateRequest) {
    return { mode: request.mode, prompt: request.prompt, searchPrompt: this.opts.searchPrompt, growMask: this.opts.growMask };
  }

  private common(modelId: string, request: GenerateRequest) {
    return commonFields(modelId, { seed: request.seed, negativePrompt: request.negativePrompt, stylePreset: this.opts.stylePreset });
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

/** The mask of the region to regenerate (white), as a grey PNG in base64. */
async function encodeRegion(objectMask: Mask, regenerates: "object" | "background"): Promise<string> {
  return (await encodePng(regenerates === "object" ? objectMask : invertMask(objectMask))).toString("base64");
}

/** `src` copied into `target` (same channel count) with its top-left corner at (x, y). */
function pasteInto<T extends { data: Uint8Array; width: number; height: number }>(
  target: T,
  src: { data: Uint8Array; width: number; height: number },
  x: number,
  y: number,
  channels: number,
): T {
  const out = new Uint8Array(target.data);
  for (let row = 0; row < src.height; row++) {
    out.set(src.data.subarray(row * src.width * channels, (row + 1) * src.width * channels), ((row + y) * target.width + x) * channels);
  }
  return { ...target, data: out };
}

const stabilitySettings = (s: GeneratorSettings) => ({
  edit: (s.edit ?? "inpaint") as StabilityEditName,
  searchPrompt: s.searchPrompt as string | undefined,
  stylePreset: s.stylePreset as string | undefined,
  growMask: (s.growMask ?? 0) as number,
  extend: s.extend as ExtendSpec | undefined,
  creativity: s.creativity as number | undefined,
});

const EDIT_OF_SERVICE: Partial<Record<StabilityService, StabilityEditName>> = {
  inpaint: "inpaint",
  "search-replace": "search-replace",
  erase: "erase",
  outpaint: "extend",
};

export const stabilityBackend: GeneratorBackend = {
  name: "stability",
  summary: "Stability AI Image Services on Bedrock (inpaint, search-replace, erase, outpaint); the default cloud editor",
  needsAws: true,
  family: "stability",
  defaultModel: stabilityModelFor("inpaint"),
  sizeRules: STABILITY_SIZE_RULES,
  seeds: { min: 1, max: STABILITY_MAX_SEED, default: { from: 1, to: 1 } },
  options: {
    /** Which Stability service edits each result: inpaint (a mask), search-replace (a search prompt), erase, or extend only. */
    edit: z.enum(["inpaint", "search-replace", "erase", "extend"]).optional(),
    /** search-replace: what the service looks for and replaces ("background", "the shoe"). */
    searchPrompt: z.string().min(1).max(STABILITY_MAX_TEXT).optional(),
    stylePreset: z.enum(STYLE_PRESETS).optional(),
    /** Stability's own grow_mask (0-20); maskfleet's mask growing is growPx. */
    growMask: z.number().int().min(0).max(20).optional(),
    /** Extend the canvas first with Stable Outpaint: pixels per side of the original, or "square". */
    extend: z
      .union([z.literal("square"), z.strictObject({ left: z.number().int().min(0), right: z.number().int().min(0), up: z.number().int().min(0), down: z.number().int().min(0) })])
      .optional(),
    /** Stable Outpaint's creativity, 0.1-1.0. */
    creativity: z.number().min(0.1).max(1).optional(),
  },
  resolve: (s) => {
    const given = s.edit as StabilityEditName | undefined;
    if (s.modelId) {
      if (familyOf(s.modelId) !== "stability") throw new ConfigError("modelId", `${s.modelId} is not a Stability AI Image Services model (e.g. ${stabilityModelFor("inpaint")})`);
      const service = stabilityServiceOf(s.modelId);
      const edit = service && EDIT_OF_SERVICE[service];
      if (!edit) throw new ConfigError("modelId", `${s.modelId} is not an editing service maskfleet runs (inpaint, search-replace, erase-object, outpaint)`);
      if (given && given !== edit) throw new ConfigError("edit", `${given} does not match the model ${s.modelId} (a ${edit} service)`);
      return { modelId: s.modelId, edit };
    }
    const edit = given ?? "inpaint";
    return { modelId: stabilityModelFor(edit === "extend" ? "outpaint" : edit), edit };
  },
  check: (s) => {
    const o = stabilitySettings(s);
    const { from, to } = s.seeds;
    if (from < 1 || to > STABILITY_MAX_SEED) {
      throw new ConfigError(
        "seeds",
        `Stability AI Image Services read seed 0 as "pick a random seed", so that result could never be made again: give seeds 1-${STABILITY_MAX_SEED} (e.g. --seeds 1-13); the range is ${from}-${to}`,
      );
    }
    if (o.edit === "search-replace" && !o.searchPrompt) throw new ConfigError("searchPrompt", "--edit search-replace needs --search-prompt (what to replace, e.g. background)");
    if (o.edit !== "search-replace" && o.searchPrompt) throw new ConfigError("searchPrompt", `only --edit search-replace uses a search prompt (the edit is ${o.edit})`);
    if (o.edit === "extend" && !o.extend) throw new ConfigError("extend", '--edit extend needs --extend "left,right,up,down" (pixels) or --extend square');
    if (o.creativity !== undefined && !o.extend) throw new ConfigError("creativity", "only applies with --extend (Stable Outpaint)");
    if (o.edit === "erase" && s.prompts.length > 1) throw new ConfigError("prompts", "Erase Object takes no prompt: give one prompt (or none), and seeds for variations");
  },
  bedrockModels: (s) => {
    const o = stabilitySettings(s);
    if (o.edit === "extend") return [s.modelId];
    return o.extend ? [stabilityModelFor("outpaint"), s.modelId] : [s.modelId];
  },
  instanceKey: (s) => ["stability", s.modelId, stabilitySettings(s)],
  open: async (s, ctx) => new StabilityGenerator(createBedrockClient(ctx.aws, { timeoutMs: ctx.timeoutMs }), { modelId: s.modelId, ...stabilitySettings(s) }),
};
