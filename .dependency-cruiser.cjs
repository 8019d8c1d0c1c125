/**
 * The direction imports may take between src/ folders (docs/architecture.md has the picture).
 * Each folder lists the folders it may import; anything else is an error in `npm run lint`.
 */
const mayImport = {
  runtime: [],
  imaging: ["runtime"],
  storage: ["runtime"],
  models: ["runtime"],
  detectors: ["imaging", "models", "runtime"],
  segmenters: ["imaging", "models", "runtime"],
  generators: ["imaging", "storage", "runtime"],
  eval: ["segmenters", "imaging", "models", "runtime"],
  config: ["generators", "runtime"],
  pipeline: ["config", "generators", "imaging", "runtime"],
  rate: ["pipeline", "runtime"],
  runs: ["pipeline", "rate", "config", "storage", "imaging", "runtime"],
  stages: ["runs", "rate", "pipeline", "config", "detectors", "segmenters", "generators", "storage", "models", "imaging", "runtime"],
  fleet: ["stages", "runs", "rate", "pipeline", "config", "detectors", "segmenters", "generators", "storage", "models", "imaging", "runtime"],
  producer: ["runs", "pipeline", "config", "generators", "models", "storage", "imaging", "runtime"],
};
/** The stage names and key prefix: plain constants every layer may name. */
const sharedNames = "^src/pipeline/stages\\.ts$";

module.exports = {
  forbidden: [
    { name: "no-circular", severity: "error", comment: "an import circle", from: {}, to: { circular: true } },
    {
      name: "no-orphans",
      severity: "error",
      comment: "a product module nothing imports",
      from: { orphan: true, path: "^src/", pathNot: "^src/cli/main\\.ts$|\\.d\\.ts$" },
      to: {},
    },
    { name: "product-imports-no-tests", severity: "error", comment: "src/ never imports tests or benchmarks", from: { path: "^src/" }, to: { path: "^(test|benchmarks)/" } },
    {
      name: "stages-stand-alone",
      severity: "error",
      comment: "a stage never imports another stage: what they share is in pipeline/ or imaging/",
      from: { path: "^src/stages/(detect|mask|generate|finalize)\\.ts$" },
      to: { path: "^src/stages/(detect|mask|generate|finalize)\\.ts$" },
    },
    ...Object.entries(mayImport).map(([folder, allowed]) => ({
      name: `layers-${folder}`,
      severity: "error",
      comment: `src/${folder} may import only ${allowed.length ? allowed.join(", ") : "no other folder"}`,
      from: { path: `^src/${folder}/` },
      to: { path: "^src/", pathNot: [`^src/(${[folder, ...allowed].join("|")})/`, sharedNames] },
    })),
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^test/(\\.tmp|artifacts)/|^benchmarks/results/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.test.json" },
    enhancedResolveOptions: { extensions: [".ts", ".js", ".json"] },
  },
};
