/** `maskfleet eval`: mask quality (mIoU, boundary F) of segmentation models on a COCO-format dataset. */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { InvalidArgumentError, Option, type Command } from "commander";
import { ConfigError, InputError } from "../runtime/errors.js";
import { defaultIntraOpThreads, type ExecutionProvider } from "../runtime/onnx.js";
import { formatEvalTable, runEval } from "../eval/run.js";

const wholeNumber = (min: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected a whole number >= ${min}`);
  return n;
};
const nonNegative = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError("expected a number >= 0");
  return n;
};
const provider = (v: string): ExecutionProvider => {
  if (v !== "cpu" && v !== "cuda") throw new InvalidArgumentError("expected cpu or cuda");
  return v;
};

interface EvalFlags {
  images: string;
  samModel?: string[];
  /** The flag's earlier name, kept hidden: `--model` is the Bedrock model everywhere else. */
  model?: string[];
  limit?: number;
  out?: string;
  threads?: number;
  ep?: ExecutionProvider;
  minArea: number;
  boundaryTolerance?: number;
  cache?: string;
  download: boolean;
  progress: boolean;
}

export function addEvalCommand(program: Command): void {
  program
    .command("eval")
    .description("mask quality on a COCO-format dataset: each instance prompted with its ground-truth box; mIoU, boundary F and ms/image per model")
    .argument("<annotations>", "COCO instances JSON (images, annotations with polygon or RLE segmentation, categories)")
    .requiredOption("--images <dir>", "folder the images' file_name values are relative to")
    .option("--sam-model <spec...>", "segmentation models, as run's --sam-model: manifest names or local folders (several: one row each)")
    .addOption(new Option("--model <spec...>").hideHelp())
    .option("--limit <n>", "only the first n images that have instances", wholeNumber(1))
    .option("--out <file>", "write the JSON report (per-model aggregates and one row per instance)")
    .option("--threads <n>", "onnxruntime threads per session (0 = default: all cores, as one model runs at a time)", wholeNumber(0))
    .option("--ep <provider>", "execution provider: cpu | cuda", provider)
    .option("--min-area <px>", "skip instances whose ground-truth mask has fewer pixels", wholeNumber(0), 1)
    .option("--boundary-tolerance <px>", "boundary F match distance in px (default ceil(0.008 x image diagonal))", nonNegative)
    .option("--cache <dir>", "model cache folder (default: $MASKFLEET_CACHE or ~/.cache/maskfleet/models)")
    .option("--no-download", "do not download missing manifest models")
    .option("--no-progress", "no per-image progress on stderr")
    .action(async (annotations: string, flags: EvalFlags, command: Command) => {
      const models = [...new Set([...(flags.samModel ?? []), ...(flags.model ?? [])])];
      if (models.length === 0) command.error("error: required option '--sam-model <spec...>' not specified", { exitCode: 2, code: "commander.missingMandatoryOptionValue" });
      let report;
      try {
        report = await runEval({
          annotations,
          images: flags.images,
          models,
          limit: flags.limit,
          minArea: flags.minArea,
          boundaryTolerance: flags.boundaryTolerance,
          executionProvider: flags.ep,
          intraOpThreads: flags.threads || defaultIntraOpThreads(1),
          cacheDir: flags.cache,
          download: flags.download,
          onImage: flags.progress ? (done, total, file) => process.stderr.write(`[${done}/${total}] ${file}\n`) : undefined,
        });
      } catch (err) {
        // An image that does not decode is the dataset's fault: one line naming it, like a bad field.
        if (err instanceof InputError) throw new ConfigError(flags.images, err.message);
        throw err;
      }
      process.stdout.write(formatEvalTable(report) + "\n");
      if (flags.out) {
        await mkdir(dirname(flags.out), { recursive: true });
        await writeFile(flags.out, JSON.stringify(report, null, 2) + "\n");
        process.stderr.write(`report written to ${flags.out}\n`);
      }
    });
}
