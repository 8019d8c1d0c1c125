/**
 * Stable Image Search and Replace (`us.stability.stable-image-search-replace-v1:0`): the service
 * finds what `search_prompt` names ("background", "the shoe") and replaces it from the prompt; no
 * mask is sent. Our mask still decides what is kept: mode outpaint pastes the object back, mode
 * inpaint the background.
 */
import { requiredText, type StabilityEdit } from "./stability-common.js";

export const stabilitySearchReplace: StabilityEdit = {
  service: "search-replace",
  regenerates: () => "none",
  keeps: (mode) => mode,
  fields: (modelId, r) => ({
    prompt: requiredText(modelId, "prompt", r.prompt),
    search_prompt: requiredText(modelId, "search prompt", r.searchPrompt),
    grow_mask: r.growMask,
  }),
};
