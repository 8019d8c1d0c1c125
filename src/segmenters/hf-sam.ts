/**
 * Adapter for the transformers.js (Xenova) SAM export, e.g. Xenova/slimsam-77-uniform and
 * Xenova/sam-vit-base (onnx/vision_encoder.onnx + onnx/prompt_encoder_mask_decoder.onnx):
 *
 * - encoder: pixel_values float32 [1, 3, 1024, 1024] -> image_embeddings [1, 256, 64, 64],
 *   image_positional_embeddings [1, 256, 64, 64];
 * - decoder: input_points float32 [1, B, N, 2], input_labels int64 [1, B, N], image_embeddings,
 *   image_positional_embeddings -> iou_scores [1, B, 3], pred_masks [1, B, 3, 256, 256] (logits).
 *
 * Pre/post-processing as SamProcessor: longest side resized to 1024, rescaled to 0-1 and
 * normalised with the ImageNet mean/std, padded bottom-right to 1024 x 1024; points scaled into
 * the resized frame; masks upscaled to 1024, cropped to the resized size, resized to the original.
 *
 * The export takes points only (no box input): a box is sent as its corners labelled 2 and 3 (as
 * the samexporter/Meta ONNX decoders take boxes), plus the box's points (1 = object, 0 = background);
 * shorter prompts are padded with label -10, which HF's prompt encoder zeroes. CAVEAT: the stock
 * transformers SamPromptEncoder._embed_points adds a label embedding only for labels 0 and 1 (its
 * box corner embeddings live in _embed_boxes, which this export does not include), so in such a
 * file the corners carry their position but not their "corner" type: box prompts are weaker than
 * with a real box input. Not measured here (no weights offline). Of the three
 * candidates the one with the best iou_score is kept. The decoder has no mask input, so the refine
 * pass is refused at load.
 */
import { ConfigError, ModelError } from "../runtime/errors.js";
import { checkSessionIO, inputShape, Tensor, type InferenceSession } from "../runtime/onnx.js";
import type { Box, RgbImage } from "../imaging/types.js";
import type { ResolvedModel } from "../models/registry.js";
import { chooseCandidates, EncoderDecoderSegmenter, loadSessionPair, selectionFor, toResult, type Chosen } from "./sam-common.js";
import { normalizePadChw, resizeLongestSide, SAM_INPUT_SIDE, type Size } from "./sam-processing.js";
import { boxPrompts, checkPoints } from "./sam-prompts.js";
import { checkInput } from "./sam-prompts.js";
import type { MaskSelection, SegmentResult, Segmenter, SegmenterOptions } from "./types.js";

export const HF_SAM_ENCODER_IO = { inputs: ["pixel_values"], outputs: ["image_embeddings", "image_positional_embeddings"] } as const;
export const HF_SAM_DECODER_IO = {
  inputs: ["input_points", "input_labels", "image_embeddings", "image_positional_embeddings"],
  outputs: ["iou_scores", "pred_masks"],
} as const;

/** HF SamProcessor's label for padding points (the prompt encoder zeroes their embedding). */
const PAD_LABEL = -10;

export class HfSamSegmenter extends EncoderDecoderSegmenter implements Segmenter {
  private constructor(
    name: string,
    executionProvider: string,
    encoder: InferenceSession,
    decoder: InferenceSession,
    private readonly batched: boolean,
    private readonly int64Labels: boolean,
    private readonly maskSelection: MaskSelection | undefined,
  ) {
    super(name, executionProvider, encoder, decoder);
  }

  static async load(model: ResolvedModel, opts: SegmenterOptions = {}): Promise<HfSamSegmenter> {
    if (opts.refine) throw new ConfigError("refineMask", `${model.name}: format hf-sam has no mask input, so the refine pass is not available (use a sam2 or samexporter model)`);
    return loadSessionPair(model, opts, ({ encoder, decoder, encoderPath, decoderPath }) => {
      checkSessionIO(encoder, encoderPath, HF_SAM_ENCODER_IO, "transformers.js SAM vision encoder");
      checkSessionIO(decoder, decoderPath, HF_SAM_DECODER_IO, "transformers.js SAM prompt encoder + mask decoder");
      const shape = inputShape(encoder, "pixel_values");
      const fixed = (i: number, want: number) => typeof shape?.[i] !== "number" || shape[i] === want;
      if (shape?.length !== 4 || !fixed(1, 3) || !fixed(2, SAM_INPUT_SIDE) || !fixed(3, SAM_INPUT_SIDE)) {
        throw new ModelError(`${encoderPath}: pixel_values is [${shape?.join(", ") ?? "?"}], expected [1, 3, 1024, 1024]`);
      }
      const labels = decoder.inputMetadata.find((m) => m.name === "input_labels");
      const int64Labels = !labels?.isTensor || labels.type === "int64";
      const batched = typeof inputShape(decoder, "input_points")?.[1] !== "number";
      return new HfSamSegmenter(model.name, opts.executionProvider ?? "cpu", encoder, decoder, batched, int64Labels, opts.maskSelection);
    });
  }

  async segment(image: RgbImage, boxes: Box[]): Promise<SegmentResult> {
    checkInput(image, boxes);
    checkPoints(boxes);
    const t0 = performance.now();
    const resized = await resizeLongestSide(image);
    const pixels = new Tensor("float32", normalizePadChw(resized), [1, 3, SAM_INPUT_SIDE, SAM_INPUT_SIDE]);
    const t1 = performance.now();

    const emb = await this.encode({ pixel_values: pixels }, HF_SAM_ENCODER_IO.outputs);
    const t2 = performance.now();
    const groups = this.batched ? [boxes] : boxes.map((b) => [b]);
    const chosen: Chosen[] = [];
    for (const group of groups) chosen.push(...(await this.decode(emb, group, image, resized)));
    return toResult(chosen, resized, image, [t0, t1, t2, performance.now()]);
  }

  private async decode(emb: Record<string, Tensor>, boxes: Box[], original: Size, resized: Size): Promise<Chosen[]> {
    const sx = resized.width / original.width;
    const sy = resized.height / original.height;
    const p = boxPrompts(boxes, (x, y) => [x * sx, y * sy], PAD_LABEL);
    const n = p.boxes;
    const labels = this.int64Labels
      ? new Tensor(
          "int64",
          BigInt64Array.from(p.labels, (l) => BigInt(l)),
          [1, n, p.points],
        )
      : new Tensor("float32", Float32Array.from(p.labels), [1, n, p.points]);
    const out = await this.decoder.run(
      {
        input_points: new Tensor("float32", p.coords, [1, n, p.points, 2]),
        input_labels: labels,
        image_embeddings: emb.image_embeddings as Tensor,
        image_positional_embeddings: emb.image_positional_embeddings as Tensor,
      },
      [...HF_SAM_DECODER_IO.outputs],
    );
    this.stats.decoderRuns++;
    const masks = out.pred_masks;
    const iou = out.iou_scores;
    if (!masks || !iou || masks.dims.length !== 5 || masks.dims[1] !== n || masks.dims[3] !== masks.dims[4]) {
      throw new ModelError(`${this.name}: unexpected decoder output pred_masks [${masks?.dims.join(", ") ?? "missing"}] for ${n} box(es)`);
    }
    const [, , k = 1, side = 0] = masks.dims;
    return chooseCandidates(masks.data as Float32Array, iou.data as Float32Array, n, k, side, selectionFor(this.maskSelection, k, { model: this.name, oneMaskRule: "single" }));
  }
}
