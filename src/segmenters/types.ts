/** The mask stage's segmenter interface: what a segmenter takes and returns, and its options. */
import type { ExecutionProvider } from "../runtime/onnx.js";
import type { Box, Mask, RgbImage } from "../imaging/types.js";

export interface SegmentResult {
  /** One per box, in box order: 0/255, the original image size. */
  masks: Mask[];
  /** The model's predicted IoU of each mask, in box order (empty for a model without one). */
  scores: number[];
  /** SAM's stability score of each mask (IoU of the mask at logit thresholds +1 and -1), in box order; absent for models without logits. */
  stability?: number[];
  /** The rule that chose each prompt's mask among SAM's candidates. */
  selection?: MaskSelection;
  /** A salient model refined by SAM: IoU of the salient mask and SAM's. */
  salientAgreement?: number;
  timings: { preprocessMs: number; encodeMs: number; decodeMs: number; postprocessMs: number };
}

export interface Segmenter {
  readonly name: string;
  readonly executionProvider: string;
  /** Encodes the image once and decodes all boxes against that one embedding. */
  segment(image: RgbImage, boxes: Box[]): Promise<SegmentResult>;
  close(): Promise<void>;
}

/** single = SAM's mask 0, as SamPredictor.predict(multimask_output=False); best = the multimask candidate with the highest predicted IoU. */
export type MaskSelection = "single" | "best";

export interface SegmenterOptions {
  executionProvider?: ExecutionProvider;
  /** onnxruntime intra-op threads per session (default: onnxruntime's own; the workers pass cores / mask concurrency). */
  intraOpThreads?: number;
  /** Model download cache root (default $MASKFLEET_CACHE or ~/.cache/maskfleet/models). */
  cacheDir?: string;
  /** Download a missing manifest model on first use (default true). */
  download?: boolean;
  /**
   * A second decoder pass per box that feeds the first pass's chosen low-res logits back as
   * mask_input (has_mask_input = 1), as SAM's interactive refinement does; the second pass's best
   * mask is kept. Default false. Formats samexporter and sam2; hf-sam (its decoder takes no mask) refuses it at load.
   */
  refine?: boolean;
  /** Which of SAM's masks a prompt gets; unset = single where the decoder returns all its masks, else best. */
  maskSelection?: MaskSelection;
}
