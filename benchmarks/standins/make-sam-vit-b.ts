/**
 * A loadable full-size random-weight SAM ViT-B model folder: the encoder of
 * make-sam-vit-encoder.ts and the decoder of make-sam-decoder.ts, with model.json (format
 * samexporter), which src/segmenters/samexporter.ts loads.
 *
 *   npx tsx benchmarks/standins/make-sam-vit-b.ts <dir> [--seed N]
 *
 * writes <dir>/sam-vit-b-random-full/{decoder.onnx, model.json} (and the encoder in
 * <dir>/sam-vit-b-random/ when missing).
 */
import { existsSync } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { writeFileAtomic } from "../../test/support/onnx/onnx-graph.js";
import { encodeSamDecoder, samDecoderStats } from "./make-sam-decoder.js";
import { makeVitBEncoder } from "./make-sam-vit-encoder.js";

/**
 * A loadable full-size random-weight SAM ViT-B model folder: <dir>/sam-vit-b-random-full/ with
 * decoder.onnx, model.json (format samexporter) and the encoder of <dir>/sam-vit-b-random/
 * (written first when missing). Returns the folder.
 */
export async function makeVitBSamModel(dir: string, opts: { seed?: number } = {}): Promise<string> {
  const encoder = path.join(dir, "sam-vit-b-random", "encoder.onnx");
  if (!existsSync(encoder)) await makeVitBEncoder(dir);
  const outDir = path.join(dir, "sam-vit-b-random-full");
  await mkdir(outDir, { recursive: true });
  await writeFileAtomic(path.join(outDir, "decoder.onnx"), encodeSamDecoder(opts.seed));
  const files = { encoder: path.relative(outDir, encoder), decoder: "decoder.onnx" };
  await writeFileAtomic(path.join(outDir, "model.json"), JSON.stringify({ format: "samexporter", task: "segment", files }, null, 2) + "\n");
  return outDir;
}

async function main(argv: string[]): Promise<void> {
  const { parseArgs } = await import("node:util");
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { seed: { type: "string" } } });
  const dir = positionals[0];
  if (!dir || positionals.length > 1) {
    console.error("usage: npx tsx benchmarks/standins/make-sam-vit-b.ts <dir> [--seed N]");
    process.exitCode = 2;
    return;
  }
  const seed = values.seed !== undefined ? Number(values.seed) : undefined;
  const folder = await makeVitBSamModel(dir, seed !== undefined ? { seed } : {});
  const stats = samDecoderStats(seed);
  const size = (await stat(path.join(folder, "decoder.onnx"))).size;
  console.log(
    `${folder}: decoder.onnx ${(size / 1e6).toFixed(1)} MB, params ${stats.params.toLocaleString("en-US")}, ` +
      `${stats.gflopPerBox.toFixed(2)} GFLOP per box (${(stats.macsPerBox / 1e9).toFixed(2)} G multiply-adds), ${stats.nodes} nodes`,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
