/**
 * Stable Image Inpaint (`us.stability.stable-image-inpaint-v1:0`): regenerates the white part of
 * the mask from the prompt. Background replacement (mode outpaint) sends the background as the
 * region to regenerate and keeps the object; mode inpaint sends the object. Soft mask values
 * (a feathered edge, a salient model's alpha) are sent as grey: partial regeneration.
 */
import { requiredText, type StabilityEdit } from "./stability-common.js";

export const stabilityInpaint: StabilityEdit = {
  service: "inpaint",
  regenerates: (mode) => (mode === "outpaint" ? "background" : "object"),
  keeps: (mode) => mode,
  fields: (modelId, r) => ({ prompt: requiredText(modelId, "prompt", r.prompt), grow_mask: r.growMask }),
};
