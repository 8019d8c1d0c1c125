/** What the Bedrock stand-ins read from a request body, and the colour a seed paints: shared by the Titan/Nova and Stability stand-ins. */
import type { StabilityService } from "../../src/generators/bedrock-models.js";

/** What the stand-in read from a body (as far as it got). */
export interface RequestFacts {
  taskType?: string;
  prompt?: string;
  maskPrompt?: string;
  seed?: number;
  /** Size of the image sent (when it decoded). */
  width?: number;
  height?: number;
  /** sha256 (hex, 16 chars) of the image bytes sent. */
  imageHash?: string;
  /** Stability only, from here on. The service the model id names. */
  service?: StabilityService;
  searchPrompt?: string;
  /** The seed answered in `seeds` (a random 1-4294967294 when 0 or none was sent; 0 for remove-background). */
  answeredSeed?: number;
  maskWidth?: number;
  maskHeight?: number;
  /** false: the mask's size differs from the image's (the real service resizes it). */
  maskSameSize?: boolean;
  /** Distinct values in the mask's first channel. */
  maskValues?: number;
  /** Fraction of mask pixels >= 128 (to be regenerated). */
  maskWhiteFraction?: number;
  /** grow_mask as sent (the service's default is 5). */
  growMask?: number;
  /** output_format as sent (the default is png). */
  outputFormat?: string;
  /** Outpaint: pixels added per side (0 where not sent). */
  extend?: { left: number; right: number; up: number; down: number };
  /** The finish reason when the content filter refused the request. */
  filtered?: string;
}

/** The colour the stand-in paints for `seed`. */
export function seedColour(seed: number): [number, number, number] {
  return [(seed * 67 + 40) % 256, (seed * 131 + 90) % 256, (seed * 29 + 170) % 256];
}
