/**
 * The two-way transformer pieces every SAM mask decoder shares (segment_anything, SAM 2 and
 * transformers' SamMaskDecoder differ only in parameter names): attention with a downsampled inner
 * width, ReLU MLPs, and the two-way block. Used by benchmarks/standins/make-sam-decoder.ts, make-sam2.ts and
 * make-hf-sam.ts.
 */
import type { GraphBuilder, Shape, Value } from "../../test/support/onnx/onnx-graph.js";

/** Transformer width, heads, MLP width and the cross-attention downsampling of every SAM decoder. */
export const DIM = 256;
export const HEADS = 8;
export const MLP_DIM = 2048;
export const DOWNSAMPLE = 2;
const LN_EPS = 1e-5;

/** Reshape whose target may copy input dimensions (0) and infer one (-1): the batch stays dynamic. */
export function reshapeTo(g: GraphBuilder, x: Value, target: readonly number[], shape: Shape, outName?: string): Value {
  return g.node("Reshape", [x, g.ints(target)], shape, {}, outName);
}

/** [B, T, C] -> [B, heads, T, C / heads]. */
function separateHeads(g: GraphBuilder, x: Value): Value {
  const [b, t, c] = x.shape as [number, number, number];
  return g.transpose(reshapeTo(g, x, [0, 0, HEADS, c / HEADS], [b, t, HEADS, c / HEADS]), [0, 2, 1, 3]);
}

/** Attention: q/k/v projections to DIM / downsample, 8 heads, out projection back to DIM. */
export function attention(g: GraphBuilder, q: Value, k: Value, v: Value, prefix: string, downsample: number): Value {
  const inner = DIM / downsample;
  const qh = separateHeads(g, g.linear(q, `${prefix}.q_proj`, DIM, inner));
  const kh = separateHeads(g, g.linear(k, `${prefix}.k_proj`, DIM, inner));
  const vh = separateHeads(g, g.linear(v, `${prefix}.v_proj`, DIM, inner));
  const scores = g.binary("Mul", g.matmul(qh, g.transpose(kh, [0, 1, 3, 2])), g.scalar((inner / HEADS) ** -0.5));
  const out = g.transpose(g.matmul(g.softmax(scores), vh), [0, 2, 1, 3]);
  const [b, t] = out.shape as [number, number];
  return g.linear(reshapeTo(g, out, [0, 0, inner], [b, t, inner]), `${prefix}.out_proj`, inner, DIM);
}

/** MLP: Linear layers `${prefix}.layers.i` with ReLU between them (optionally a sigmoid at the end). */
export function mlp(g: GraphBuilder, x: Value, prefix: string, dims: readonly number[], sigmoid = false): Value {
  let y = x;
  for (let i = 0; i + 1 < dims.length; i++) {
    y = g.linear(y, `${prefix}.layers.${i}`, dims[i] as number, dims[i + 1] as number);
    if (i + 2 < dims.length) y = g.unary("Relu", y);
  }
  return sigmoid ? g.node("Sigmoid", [y], y.shape) : y;
}

/** How one implementation names a block's parameters below its prefix. */
export interface TwoWayNames {
  /** The four post-norms, e.g. ["norm1", ...] or ["layer_norm1", ...]. */
  norms: readonly [string, string, string, string];
  /** The MLP's two linears, e.g. ["mlp.lin1", "mlp.lin2"]. */
  mlp: readonly [string, string];
}

/** TwoWayAttentionBlock: self attention (no PE and no residual in layer 0), token -> image, MLP, image -> token; post-norms. */
export function twoWayBlock(g: GraphBuilder, queries: Value, keys: Value, queryPe: Value, keyPe: Value, prefix: string, first: boolean, names: TwoWayNames): [Value, Value] {
  const p = prefix;
  const [n1, n2, n3, n4] = names.norms;
  if (first) queries = attention(g, queries, queries, queries, `${p}.self_attn`, 1);
  else {
    const q = g.binary("Add", queries, queryPe);
    queries = g.binary("Add", queries, attention(g, q, q, queries, `${p}.self_attn`, 1));
  }
  queries = g.layerNorm(queries, `${p}.${n1}`, DIM, LN_EPS);
  let q = g.binary("Add", queries, queryPe);
  let k = g.binary("Add", keys, keyPe);
  queries = g.layerNorm(g.binary("Add", queries, attention(g, q, k, keys, `${p}.cross_attn_token_to_image`, DOWNSAMPLE)), `${p}.${n2}`, DIM, LN_EPS);
  const m = g.linear(g.unary("Relu", g.linear(queries, `${p}.${names.mlp[0]}`, DIM, MLP_DIM)), `${p}.${names.mlp[1]}`, MLP_DIM, DIM);
  queries = g.layerNorm(g.binary("Add", queries, m), `${p}.${n3}`, DIM, LN_EPS);
  q = g.binary("Add", queries, queryPe);
  k = g.binary("Add", keys, keyPe);
  keys = g.layerNorm(g.binary("Add", keys, attention(g, k, q, queries, `${p}.cross_attn_image_to_token`, DOWNSAMPLE)), `${p}.${n4}`, DIM, LN_EPS);
  return [queries, keys];
}
