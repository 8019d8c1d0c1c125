/**
 * The detector interface of the detect stage and the face-detector loader: the spec (a manifest
 * name, a local folder with model.json, or one .onnx) is resolved once and the adapter is picked by
 * the model's format. Load once per process; sessions live as long as the Detector.
 */
import { ConfigError, ModelError } from "../../shared/errors.js";
import type { ExecutionProvider } from "../../shared/onnx.js";
import type { Box, RgbImage } from "../../shared/types.js";
import { resolveModel } from "../../models/registry.js";
import { Owlv2Model } from "./owlv2.js";
import { UltraFaceDetector } from "./ultraface.js";

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

export async function loadFaceDetector(spec: string, opts: DetectorOptions = {}): Promise<Detector> {
  const scoreThreshold = opts.scoreThreshold ?? DEFAULT_SCORE_THRESHOLD;
  const nmsIou = opts.nmsIou ?? DEFAULT_NMS_IOU;
  if (!(scoreThreshold >= 0 && scoreThreshold <= 1)) throw new ConfigError("minConfidence", `expected 0-1, got ${scoreThreshold}`);
  if (!(nmsIou > 0 && nmsIou <= 1)) throw new ConfigError("nmsIou", `expected a number in (0, 1], got ${nmsIou}`);
  const model = await resolveModel(spec, { cacheDir: opts.cacheDir, download: opts.download, task: "face-detect" });
  switch (model.format) {
    case "ultraface":
      return UltraFaceDetector.load(model, { ...opts, scoreThreshold, nmsIou });
    default:
      throw new ModelError(`${spec}: format ${model.format} is not a face-detection format`);
  }
}

/** A text-prompted detection model (task "detect"); one session shared by every label (Owlv2Model.detector). */
export async function loadTextDetectionModel(spec: string, opts: DetectorOptions = {}): Promise<Owlv2Model> {
  const model = await resolveModel(spec, { cacheDir: opts.cacheDir, download: opts.download, task: "detect" });
  switch (model.format) {
    case "owlv2":
      return Owlv2Model.load(model, opts);
    default:
      throw new ModelError(`${spec}: format ${model.format} is not a text-prompted detection format`);
  }
}
