/**
 * Stable Image Remove Background (`us.stability.stable-image-remove-background-v1:0`) as the
 * salient-object model of target auto (`--salient-model bedrock:remove-background`): the photo,
 * fitted to Stability's size rules, goes to the service; the alpha channel of its answer, brought
 * back to the photo's size, is the soft mask (255 = object). Refined by SAM like a local salient
 * model unless salientRefine is false.
 */
import type { BedrockRuntimeClient } from "@aws-sdk/client-bedrock-runtime";
import sharp from "sharp";
import { encodePng } from "../imaging/image.js";
import type { Mask, RgbImage } from "../imaging/types.js";
import { STABILITY_SIZE_RULES, fitImage, planSize } from "./bedrock-image.js";
import { stabilityModelFor } from "./bedrock-models.js";
import { invokeStability } from "./stability-common.js";

/** The salient-model spec that names this service. */
export const REMOVE_BACKGROUND_SPEC = "bedrock:remove-background";

export function isBedrockSalient(spec: string | undefined): boolean {
  return spec === REMOVE_BACKGROUND_SPEC;
}

export class BedrockRemoveBackground {
  readonly name = REMOVE_BACKGROUND_SPEC;
  readonly executionProvider = "bedrock";

  constructor(
    private readonly client: BedrockRuntimeClient,
    readonly modelId = stabilityModelFor("remove-background"),
  ) {}

  async predict(image: RgbImage): Promise<{ alpha: Mask; timings: { preprocessMs: number; inferMs: number; postprocessMs: number } }> {
    const t0 = performance.now();
    const plan = planSize(STABILITY_SIZE_RULES, image.width, image.height);
    const body = { image: (await encodePng(await fitImage(image, plan))).toString("base64"), output_format: "png" };
    const t1 = performance.now();
    const answer = await invokeStability(this.client, this.modelId, body);
    const t2 = performance.now();
    // The alpha at the padded canvas's size, then the padding cropped off.
    const raw = await sharp(Buffer.from(answer.base64, "base64"), { failOn: "error" })
      .ensureAlpha()
      .extractChannel(3)
      .resize(plan.canvasWidth, plan.canvasHeight, { fit: "fill", kernel: "linear" })
      .extract({ left: plan.offsetX, top: plan.offsetY, width: plan.width, height: plan.height })
      .toColourspace("b-w")
      .raw()
      .toBuffer();
    const alpha = { data: new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength), width: image.width, height: image.height };
    return { alpha, timings: { preprocessMs: t1 - t0, inferMs: t2 - t1, postprocessMs: performance.now() - t2 } };
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
