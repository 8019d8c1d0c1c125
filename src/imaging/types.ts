/** Core value types passed between modules. Pixel coordinates are in the EXIF-oriented image. */

/** Interleaved 8-bit RGB pixels, row-major. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** One 8-bit channel, row-major: 0 = background, 255 = object (values between are soft edges). */
export interface Mask {
  data: Uint8Array;
  width: number;
  height: number;
}

/** Axis-aligned box in pixels, x0,y0 inclusive top-left; x1,y1 exclusive bottom-right. */
export interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  /** Detector confidence in [0,1], when a detector produced the box. */
  score?: number;
  /** What the box holds ("face", "car", ...). */
  label?: string;
  /**
   * Extra point prompts for this box, in the same pixel coordinates: label 1 = on the object,
   * 0 = background. Honoured by every SAM format (samexporter, sam2, hf-sam).
   */
  points?: BoxPoint[];
}

/** A point prompt of a Box. */
export interface BoxPoint {
  x: number;
  y: number;
  label: 0 | 1;
}
