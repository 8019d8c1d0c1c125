/**
 * One builder per manifest model: a full-size random-weight graph of the model's architecture with
 * the real export's I/O (benchmarks/standins/make-*.ts), written as a loadable model folder under `dir`. Speed
 * does not depend on the weight values, so benchmarks/models.ts times these where the real weights
 * cannot be downloaded. A folder already built with the same settings is reused.
 */
import { makeBirefnet } from "./make-birefnet.js";
import { makeHfSam } from "./make-hf-sam.js";
import { makeIsnet } from "./make-isnet.js";
import type { BuiltModel } from "../../test/support/onnx/onnx-graph.js";
import { makeOwlv2 } from "./make-owlv2.js";
import { makeSam2 } from "./make-sam2.js";
import { makeSamVit } from "./make-sam-vit-encoder.js";
import { makeUltraFace } from "./make-ultraface.js";

export type FullSizeBuilder = (dir: string) => Promise<BuiltModel>;

/** Manifest name -> builder of its full-size stand-in. */
export const fullSizeBuilders: Readonly<Record<string, FullSizeBuilder>> = {
  "sam-vit-b": (dir) => makeSamVit(dir, "sam-vit-b"),
  "sam-vit-l": (dir) => makeSamVit(dir, "sam-vit-l"),
  "sam-vit-h": (dir) => makeSamVit(dir, "sam-vit-h"),
  "ultraface-rfb-320": (dir) => makeUltraFace(dir, "rfb-320"),
  "owlv2-base-patch16-ensemble": (dir) => makeOwlv2(dir, "base-patch16-ensemble"),
  "rmbg-1.4": (dir) => makeIsnet(dir, "rmbg-1.4"),
  "birefnet-general": (dir) => makeBirefnet(dir, "birefnet-general"),
  "birefnet-lite": (dir) => makeBirefnet(dir, "birefnet-lite"),
  "sam2.1-hiera-tiny": (dir) => makeSam2(dir, "tiny"),
  "sam2.1-hiera-small": (dir) => makeSam2(dir, "small"),
  "sam2.1-hiera-base-plus": (dir) => makeSam2(dir, "base-plus"),
  "sam2.1-hiera-large": (dir) => makeSam2(dir, "large"),
  "slimsam-77-uniform": (dir) => makeHfSam(dir, "slimsam-77-uniform"),
  "sam-vit-base-hf": (dir) => makeHfSam(dir, "sam-vit-base-hf"),
};
