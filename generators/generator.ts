/**
 * The generator interface of the generate stage: one (image, mask, prompt, seed) in, one image of
 * the same size out. Backends, one file each: composite (local), titan and nova (Bedrock).
 *
 * Errors a backend throws tell the pool what to do: ThrottledError (pause the queue, retry without
 * spending an attempt), RejectedError (record on this prompt x seed, no retry), FatalServiceError
 * (stop the pool), InputError (this image is bad), anything else (transient: retry with backoff).
 */
import type { Mask, RgbImage } from "../shared/types.js";

export interface GenerateRequest {
  /** The EXIF-oriented original at full size. */
  image: RgbImage;
  /** Same size as `image`: 255 = object, 0 = background (soft values at a feathered edge). */
  mask: Mask;
  /** Bedrock only: let the service find the region from this text (maskPrompt) instead of sending `mask`. */
  maskPrompt?: string;
  /** outpaint: keep the object, new background. inpaint: keep the background, new object. */
  mode: "outpaint" | "inpaint";
  prompt: string;
  negativePrompt?: string;
  seed: number;
  cfgScale: number;
  quality: "standard" | "premium";
  /** Bedrock OUTPAINTING's outPaintingMode: PRECISE keeps the masked region's edge exactly. */
  outpaintingMode: "DEFAULT" | "PRECISE";
}

export interface Generator {
  /** Name recorded in the manifest (e.g. "composite", "amazon.titan-image-generator-v2:0"). */
  readonly name: string;
  /** Same width and height as request.image; the region that must not change is pasted back exactly. */
  generate(request: GenerateRequest): Promise<RgbImage>;
  close(): Promise<void>;
}
