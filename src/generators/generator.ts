/**
 * The generator interface of the generate stage: one (image, mask, prompt, seed) in, one image
 * out (the image's size; larger only when an edit extends the canvas). Backends, one file each,
 * registered in registry.ts: composite (local), stability, titan and nova (Bedrock).
 *
 * What a backend does once per image (fitting the photo to the model's size rules, encoding it,
 * base64) is `prepare`; the generate stage keeps that per process and hands it to every
 * prompt x seed of the image, so the photo and its mask are read and encoded once, not once per
 * result.
 *
 * Errors a backend throws tell the pool what to do: ThrottledError (pause the queue, retry without
 * spending an attempt), RejectedError (record on this prompt x seed, no retry), FatalServiceError
 * (stop the pool), InputError (this image is bad), anything else (transient: retry with backoff).
 */
import type { Mask, RgbImage } from "../imaging/types.js";

/** The per-image part of a request: what `prepare` works from. */
export interface EditInput {
  /** The EXIF-oriented original at full size. */
  image: RgbImage;
  /** Same size as `image`: 255 = object, 0 = background (soft values at a feathered edge). */
  mask: Mask;
  /** outpaint: keep the object, new background. inpaint: keep the background, new object. */
  mode: "outpaint" | "inpaint";
  /** Titan/Nova only: let the service find the region from this text (maskPrompt) instead of sending `mask`. */
  maskPrompt?: string;
  /**
   * The object's own colours, same size as `image`: the estimated foreground in the soft edge
   * (src/imaging/foreground.ts), the photo elsewhere. Where the object is kept, results blend these
   * instead of the photo, so the old background does not bleed into the edge. Absent: the photo.
   */
  foreground?: RgbImage;
}

export interface GenerateRequest extends EditInput {
  prompt: string;
  negativePrompt?: string;
  seed: number;
  cfgScale: number;
  quality: "standard" | "premium";
  /** Bedrock OUTPAINTING's outPaintingMode: PRECISE keeps the masked region's edge exactly. */
  outpaintingMode: "DEFAULT" | "PRECISE";
}

/** What a backend prepared for one image; `bytes` bounds the per-process cache. */
export interface PreparedEdit {
  readonly input: EditInput;
  /** Approximate memory held, in bytes. */
  readonly bytes: number;
}

export interface Generator {
  /** Name recorded in the manifest (e.g. "composite", "us.stability.stable-image-inpaint-v1:0"). */
  readonly name: string;
  /** The per-image work, done once and shared by the image's prompt x seed results. */
  prepare(input: EditInput): Promise<PreparedEdit>;
  /**
   * One result; `prepared` (from this generator's prepare, for the request's image) saves that
   * work. The region that must not change is pasted back from the original exactly.
   */
  generate(request: GenerateRequest, prepared?: PreparedEdit): Promise<RgbImage>;
  close(): Promise<void>;
}

/** Bytes an image and its mask hold. */
export function editInputBytes(input: EditInput): number {
  return input.image.data.byteLength + input.mask.data.byteLength + (input.foreground?.data.byteLength ?? 0);
}

/** The pixels a result keeps from the input: the object's colours where the object is kept (outpaint), else the photo. */
export function keptPixels(input: EditInput, keeps: "outpaint" | "inpaint"): RgbImage {
  return keeps === "outpaint" && input.foreground ? input.foreground : input.image;
}
