/**
 * The mask stage's segmenter loader (the interface is types.ts): the model spec (a manifest name or a
 * local folder) is resolved once, and the adapter is picked by the model's format. Sessions live
 * as long as the Segmenter: load it once per process and reuse it for every image.
 */
import { ModelError } from "../runtime/errors.js";
import { resolveModel } from "../models/registry.js";
import { SamexporterSegmenter } from "./samexporter.js";
import { Sam2Segmenter } from "./sam2.js";
import { HfSamSegmenter } from "./hf-sam.js";
import type { Segmenter, SegmenterOptions } from "./types.js";

export type { MaskSelection, SegmentResult, Segmenter, SegmenterOptions } from "./types.js";

export async function loadSegmenter(spec: string, opts: SegmenterOptions = {}): Promise<Segmenter> {
  const model = await resolveModel(spec, { cacheDir: opts.cacheDir, download: opts.download, task: "segment" });
  switch (model.format) {
    case "samexporter":
      return SamexporterSegmenter.load(model, opts);
    case "sam2":
      return Sam2Segmenter.load(model, opts);
    case "hf-sam":
      return HfSamSegmenter.load(model, opts);
    default:
      throw new ModelError(`${spec}: format ${model.format} is not a segmentation format`);
  }
}
