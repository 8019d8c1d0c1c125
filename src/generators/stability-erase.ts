/**
 * Stable Image Erase Object (`us.stability.stable-image-erase-object-v1:0`): removes the object
 * (the mask) and fills its place from the surroundings. No prompt; the background is kept and
 * pasted back, whatever the mode.
 */
import type { StabilityEdit } from "./stability-common.js";

export const stabilityErase: StabilityEdit = {
  service: "erase",
  regenerates: () => "object",
  keeps: () => "inpaint",
  fields: (_modelId, r) => ({ grow_mask: r.growMask }),
};
