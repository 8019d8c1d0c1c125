/**
 * The detector interface of the detect stage and the face-detector loader: the spec (a manifest
 * name, a local folder with model.json, or one .onnx) is resolved once and the adapter is picked by
 * the model's format. Load once per process; sessions live as long as the Detector.
 */
import { ConfigError, ModelError } from "../runtime/errors.js";
import { resolveModel } from "../models/registry.js";
import { Owlv2Model } from "./owlv2.js";
import { UltraFaceDetector } from "./ultraface.js";
import { DEFAULT_NMS_IOU, DEFAULT_SCORE_THRESHOLD, type Detector, type DetectorOptions } from "./types.js";

export type { Detector, DetectorOptions, ImageSource } from "./types.js";
export { DEFAULT_NMS_IOU, DEFAULT_SCORE_THRESHOLD } from "./types.js";

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
