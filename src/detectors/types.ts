/** The detect stage's interface: what a detector takes and returns, and its defaults. */
import type { ExecutionProvider } from "../runtime/onnx.js";
import type { Box, RgbImage } from "../imaging/types.js";

/** Where the image came from, for detectors that can read it themselves (Rekognition's S3Object). */
export interface ImageSource {
  s3?: { bucket: string; key: string };
}

export interface Detector {
  readonly name: string;
  /** Boxes in pixels of `image` (EXIF-oriented), clamped inside it, highest score first. */
  detect(image: RgbImage, source?: ImageSource): Promise<Box[]>;
  close(): Promise<void>;
}

export interface DetectorOptions {
  executionProvider?: ExecutionProvider;
  intraOpThreads?: number;
  cacheDir?: string;
  /** Download a missing manifest model on first use (default true). */
  download?: boolean;
  /** Keep candidates whose face probability is above this (default 0.7). */
  scoreThreshold?: number;
  /** Non-maximum suppression: drop a box overlapping a better one by more than this IoU (default 0.3). */
  nmsIou?: number;
}

export const DEFAULT_SCORE_THRESHOLD = 0.7;
export const DEFAULT_NMS_IOU = 0.3;
