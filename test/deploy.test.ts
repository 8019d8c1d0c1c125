/**
 * deploy/: the Dockerfiles, the compose file and the Kubernetes manifests, checked offline.
 *
 * - Dockerfiles (test/deploy/dockerfile.ts): non-root USER, HEALTHCHECK, ENTRYPOINT, every COPY
 *   source in the repository and not excluded by .dockerignore, every folder the build compiles
 *   copied, onnxruntime-node's CUDA download skipped in the CPU image and run in the CUDA one with
 *   a value its install script accepts; the entrypoint's model checks run for real.
 * - docker-compose.yml: validated by Docker Compose itself (`docker compose config`, or Debian's
 *   docker-compose 1.29 that scripts/setup.sh installs; no engine needed), then its normalised
 *   form is checked against the fleet's settings.
 * - deploy/k8s: every overlay built (test/deploy/kustomize.ts, compared with `kubectl kustomize`
 *   where installed), every object validated against the Kubernetes and KEDA schemas and their
 *   TypeScript types (unknown kinds and unknown fields fail), then the fleet's rules
 *   (test/deploy/k8s.ts). The ScaledObjects' list names are checked against where BullMQ really
 *   keeps the jobs, on Redis.
 * Every checker is also shown rejecting a broken input.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { Worker } from "bullmq";
import { parse as parseYaml } from "yaml";
import { defaultUiPort } from "../src/cli/ui.js";
import { keyPrefix, openQueue, stages } from "../src/pipeline/queues.js";
import type { JobData } from "../src/pipeline/jobs.js";
import { connect } from "../src/runtime/redis.js";
import { copyArgs, dockerfileProblems, dockerignore, parseDockerfile, valuesOf, type RepoView } from "./deploy/dockerfile.js";
import { environmentProblems, fleetProblems, modelFor, unknownFieldProblems, validateManifest } from "./deploy/k8s.js";
import { applyJsonPatch, kustomize, readYamlDocs, type Manifest } from "./deploy/kustomize.js";
import { freshRedis, repoRoot, scratchDir } from "./helpers.js";

const deploy = join(repoRoot, "deploy");
const dockerfiles = { cpu: join(deploy, "docker", "Dockerfile"), cuda: join(deploy, "docker", "Dockerfile.cuda") };
const composeFile = join(deploy, "docker-compose.yml");
const k8s = join(deploy, "k8s");
const repo: RepoView = {
  exists: (p) => existsSync(join(repoRoot, p)),
  ignored: dockerignore(existsSync(join(repoRoot, ".dockerignore")) ? readFileSync(join(repoRoot, ".dockerignore"), "utf8") : ""),
};

describe("Dockerfiles", () => {
  for (const [name, path] of Object.entries(dockerfiles)) {
    it(`${name}: non-root, health check, entrypoint, COPY sources in the build context`, () => {
      assert.deepEqual(dockerfileProblems(readFileSync(path, "utf8"), repo), []);
    });

    it(`${name}: the build stage copies every folder tsconfig.json compiles`, () => {
      const include = (JSON.parse(readFileSync(join(repoRoot, "tsconfig.json"), "utf8")) as { include: string[] }).include;
      const instructions = parseDockerfile(readFileSync(path, "utf8"));
      const built = instructions.find((i) => i.keyword === "RUN" && /npm run build/.test(i.args));
      assert.ok(built, "a RUN npm run build");
      const copied = instructions
        .filter((i) => i.keyword === "COPY" && i.stage === built.stage && i.line < built.line)
        .flatMap((i) => copyArgs(i.args).sources.map((s) => s.replace(/^\.\/|\/$/g, "")));
      for (const file of ["package.json", "package-lock.json", "tsconfig.json", ...include]) assert.ok(copied.includes(file), `${file} is copied before the build`);
    });
  }

  it("the CPU image skips onnxruntime-node's CUDA download; the CUDA image runs it with a value its install script accepts", () => {
    const installFlag = onnxruntimeInstallFlag();
    const cpu = valuesOf(parseDockerfile(readFileSync(dockerfiles.cpu, "utf8")), "ONNXRUNTIME_NODE_INSTALL");
    assert.ok(cpu.length > 0 && cpu.every((v) => installFlag(v.value) === false), "CPU image: ONNXRUNTIME_NODE_INSTALL=skip only");

    const cuda = parseDockerfile(readFileSync(dockerfiles.cuda, "utf8"));
    const install = cuda.filter((i) => i.keyword === "RUN" && /node node_modules\/onnxruntime-node\/script\/install/.test(i.args));
    assert.equal(install.length, 1, "the CUDA image runs the install script once, directly (npm rebuild honours allowScripts' deny)");
    const run = install[0] as (typeof install)[number];
    const flag = /ONNXRUNTIME_NODE_INSTALL=(\S+) node/.exec(run.args)?.[1] ?? "";
    // The script's parser returns undefined for a named set (1.30), and then installs the platform's default set.
    const parsed = installFlag(flag);
    const fetched = typeof parsed === "string" ? [parsed] : parsed === false ? [] : onnxruntimeDefaultInstall("linux/x64");
    assert.deepEqual(fetched, ["cuda12"], `ONNXRUNTIME_NODE_INSTALL=${flag} fetches CUDA 12`);
    assert.match(run.args, /test -f \S*libonnxruntime_providers_cuda\.so/, "the build fails when the CUDA provider did not arrive");
    const lastStage = Math.max(...cuda.map((i) => i.stage));
    assert.deepEqual(
      valuesOf(
        cuda.filter((i) => i.stage === lastStage),
        "MASKFLEET_EXECUTION_PROVIDER",
      ).map((v) => v.value),
      ["cuda"],
      "--ep cuda by default",
    );
  });

  it("both images: Node 22 LTS or newer, and the other platforms' onnxruntime binaries pruned after npm prune", () => {
    for (const [name, path] of Object.entries(dockerfiles)) {
      const text = readFileSync(path, "utf8");
      const major = Number(/^ARG NODE_IMAGE=node:(\d+)/m.exec(text)?.[1]);
      assert.ok(major >= 22, `${name}: node:${major}`);
      const runs = parseDockerfile(text).filter((i) => i.keyword === "RUN");
      const pruned = runs.find((i) => /sh prune-node-modules\.sh node_modules/.test(i.args));
      assert.ok(pruned, `${name}: runs prune-node-modules.sh`);
      const lastPrune = Math.max(...runs.filter((i) => /npm prune|script\/install/.test(i.args)).map((i) => i.line));
      assert.ok(pruned.line >= lastPrune && pruned.args.lastIndexOf("prune-node-modules") > pruned.args.lastIndexOf("npm prune"), `${name}: after npm prune and the CUDA download`);
    }
  });

  it("prune-node-modules.sh keeps only linux/<arch> of onnxruntime-node's binaries, and refuses an arch it lacks", async () => {
    const modules = await scratchDir("prune-node-modules");
    const bins = join(modules, "onnxruntime-node", "bin", "napi-v6");
    for (const dir of ["darwin/arm64", "linux/arm64", "linux/x64", "win32/arm64", "win32/x64"]) {
      mkdirSync(join(bins, dir), { recursive: true });
      writeFileSync(join(bins, dir, "onnxruntime_binding.node"), dir);
    }
    const script = join(deploy, "docker", "prune-node-modules.sh");
    const refused = spawnSync("sh", [script, modules, "riscv64"], { encoding: "utf8" });
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /no onnxruntime-node binaries for linux\/riscv64/);
    assert.equal(readdirSync(bins).length, 3, "nothing removed on a refusal");
    const r = spawnSync("sh", [script, modules, "x64"], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readdirSync(bins), ["linux"]);
    assert.deepEqual(readdirSync(join(bins, "linux")), ["x64"]);
    assert.equal(readFileSync(join(bins, "linux", "x64", "onnxruntime_binding.node"), "utf8"), "linux/x64");
  });

  it(".dockerignore keeps local installs, builds, caches and outputs out of the build context", () => {
    for (const p of ["node_modules", "node_modules/sharp/package.json", "dist/cli/main.js", ".cache/x", "test/.tmp/a", "out/sample", ".git/HEAD"]) assert.ok(repo.ignored(p), p);
    for (const p of ["package.json", "src/cli/main.ts", "src/models/manifest.json", "deploy/docker/entrypoint.sh", "test/deploy.test.ts"]) assert.ok(!repo.ignored(p), p);
  });

  it("the checks reject a root user, no health check, missing or ignored sources, an unknown stage", () => {
    const good = readFileSync(dockerfiles.cpu, "utf8");
    const cases: [string, string, RegExp][] = [
      ["USER root", good.replace(/^USER .*$/m, "USER root"), /USER root is root/],
      ["no USER", good.replace(/^USER .*$/m, ""), /sets no USER/],
      ["no HEALTHCHECK", good.replace(/^HEALTHCHECK[\s\S]*?\n(?=ENTRYPOINT)/m, ""), /no HEALTHCHECK/],
      ["HEALTHCHECK NONE", good.replace(/^HEALTHCHECK[\s\S]*?\n(?=ENTRYPOINT)/m, "HEALTHCHECK NONE\n"), /runs no command/],
      ["no ENTRYPOINT", good.replace(/^ENTRYPOINT .*$/m, ""), /no ENTRYPOINT/],
      ["missing source", good.replace("COPY src ./src", "COPY client ./src"), /COPY client: not in the repository/],
      ["ignored source", good.replace("COPY src ./src", "COPY node_modules ./node_modules"), /COPY node_modules: excluded by \.dockerignore/],
      ["unknown stage", good.replace("--from=build /app/dist", "--from=builder /app/dist"), /--from=builder names no earlier stage/],
    ];
    for (const [what, text, problem] of cases) {
      assert.notEqual(text, good, `${what}: the case changed the file`);
      assert.ok(
        dockerfileProblems(text, repo).some((p) => problem.test(p)),
        `${what}: ${JSON.stringify(dockerfileProblems(text, repo))}`,
      );
    }
  });
});

/** What onnxruntime-node's install script fetches on a platform when no set is named. */
function onnxruntimeDefaultInstall(platform: string): string[] {
  const require = createRequire(import.meta.url);
  const metadata = require(join(repoRoot, "node_modules", "onnxruntime-node", "script", "install-metadata.js")) as { requirements: Record<string, string[]> };
  return metadata.requirements[platform] ?? [];
}

/** onnxruntime-node's own parser of its install variable: false = skip, "cuda12", ... */
function onnxruntimeInstallFlag(): (value: string) => unknown {
  const require = createRequire(import.meta.url);
  const utils = require(join(repoRoot, "node_modules", "onnxruntime-node", "script", "install-utils.js")) as { parseInstallFlag(): unknown };
  return (value) => {
    const saved = { cuda: process.env.ONNXRUNTIME_NODE_INSTALL_CUDA, install: process.env.ONNXRUNTIME_NODE_INSTALL };
    delete process.env.ONNXRUNTIME_NODE_INSTALL_CUDA;
    process.env.ONNXRUNTIME_NODE_INSTALL = value;
    try {
      return utils.parseInstallFlag();
    } finally {
      for (const [k, v] of [
        ["ONNXRUNTIME_NODE_INSTALL_CUDA", saved.cuda],
        ["ONNXRUNTIME_NODE_INSTALL", saved.install],
      ] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  };
}

describe("the image entrypoint", () => {
  const script = join(deploy, "docker", "entrypoint.sh");
  let cache: string;
  before(async () => {
    cache = await scratchDir("deploy-entrypoint");
    assert.ok(existsSync(join(repoRoot, "dist", "cli", "main.js")), "the CLI is built (npm run build)");
  });
  /** The entrypoint under POSIX sh, with the repository's built CLI and a scratch model cache. */
  const entrypoint = (args: string[], env: Record<string, string> = {}) =>
    spawnSync("sh", [script, ...args], {
      encoding: "utf8",
      timeout: 60_000,
      env: { PATH: process.env.PATH, HOME: cache, MASKFLEET_CLI: join(repoRoot, "dist", "cli", "main.js"), MASKFLEET_CACHE: cache, ...env },
    });

  it("is valid sh, and the Dockerfiles run it with the CLI where they install it", () => {
    assert.equal(spawnSync("sh", ["-n", script]).status, 0);
    assert.match(readFileSync(script, "utf8"), /cli=\$\{MASKFLEET_CLI:-\/app\/dist\/cli\/main\.js\}/);
    for (const path of Object.values(dockerfiles)) {
      const ins = parseDockerfile(readFileSync(path, "utf8"));
      const last = ins.filter((i) => i.stage === Math.max(...ins.map((x) => x.stage)));
      assert.ok(
        last.some((i) => i.keyword === "WORKDIR" && i.args === "/app"),
        `${path}: WORKDIR /app`,
      );
      assert.ok(
        last.some((i) => i.keyword === "COPY" && copyArgs(i.args).dest === "./dist"),
        `${path}: dist in /app/dist`,
      );
      const copied = last.find((i) => i.keyword === "COPY" && copyArgs(i.args).sources.includes("deploy/docker/entrypoint.sh"));
      assert.ok(copied, `${path}: copies the entrypoint`);
      assert.match(last.find((i) => i.keyword === "ENTRYPOINT")?.args ?? "", new RegExp(copyArgs(copied.args).dest.split("/").pop() as string));
    }
  });

  it("verify: a model missing from the cache stops the mask pool before it starts", () => {
    const r = entrypoint(["worker", "mask"], { MASKFLEET_MODEL_CHECK: "verify" });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /models verify sam-vit-b/);
    assert.match(r.stdout, /sam-vit-b encoder: missing/);
    assert.match(r.stderr, /not starting/);
  });

  it("verify: a cached file whose sha256 is not the manifest's stops the detect pool", async () => {
    await mkdir(join(cache, "ultraface-rfb-320"), { recursive: true });
    await writeFile(join(cache, "ultraface-rfb-320", "version-RFB-320.onnx"), "not the model");
    const r = entrypoint(["worker", "detect"], { MASKFLEET_MODEL_CHECK: "verify" });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stdout, /ultraface-rfb-320 model: mismatch \(expected 34cd7e60/);
  });

  it("pools without models, Rekognition detection and local model paths start maskfleet at once", () => {
    const cases: [string[], Record<string, string>][] = [
      [["worker", "finalize"], {}],
      [["worker", "generate"], {}],
      [["worker", "mask"], { MASKFLEET_SAM_MODEL: "/models/my-sam" }],
      [["worker", "detect"], { MASKFLEET_DETECTOR: "rekognition", MASKFLEET_MODEL_CHECK: "verify" }],
      [["worker", "mask"], { MASKFLEET_MODELS: "none" }],
      [["worker", "mask"], { MASKFLEET_MODEL_CHECK: "off" }],
    ];
    for (const [args, env] of cases) {
      // Redis on a closed port: maskfleet itself ran when it says so.
      const r = entrypoint([...args, "--redis", "redis://127.0.0.1:1"], { ...env, AWS_ACCESS_KEY_ID: "x", AWS_SECRET_ACCESS_KEY: "y" });
      assert.match(r.stderr, /cannot reach Redis at redis:\/\/127\.0\.0\.1:1/, `${args.join(" ")} ${JSON.stringify(env)}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /models (pull|verify)/, `${args.join(" ")}: no model check`);
    }
    assert.equal(entrypoint(["models", "list"]).status, 0);
  });

  it("a SIGTERM during a model download stops it and the container at once", async () => {
    const slow = join(cache, "slow-cli.mjs");
    await writeFile(slow, 'process.on("SIGTERM", () => process.exit(143));\nsetTimeout(() => {}, 60_000);\n');
    const child = spawn("sh", [script, "worker", "mask"], { env: { PATH: process.env.PATH, MASKFLEET_CLI: slow, MASKFLEET_CACHE: cache }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    await new Promise<void>((started) => child.stderr.on("data", (b: Buffer) => (stderr += b.toString()).includes("models pull sam-vit-b") && started()));
    const t0 = Date.now();
    child.kill("SIGTERM");
    const [code] = (await once(child, "exit")) as [number | null];
    assert.equal(code, 143);
    assert.ok(Date.now() - t0 < 5000, "exits without waiting for the download");
  });

  it("refuses an unknown MASKFLEET_MODEL_CHECK", () => {
    const r = entrypoint(["worker", "mask"], { MASKFLEET_MODEL_CHECK: "maybe" });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /must be pull, verify or off/);
  });
});

/** `docker compose` where the plugin is installed, else docker-compose (Debian's 1.29, installed by scripts/setup.sh). */
function composeCommand(): string[] | undefined {
  if (spawnSync("docker", ["compose", "version"], { encoding: "utf8" }).status === 0) return ["docker", "compose"];
  if (spawnSync("docker-compose", ["version"], { encoding: "utf8" }).status === 0) return ["docker-compose"];
  return undefined;
}

describe("docker-compose.yml", () => {
  const compose = composeCommand();
  const run = (file: string, ...args: string[]) => {
    assert.ok(compose, "Docker Compose is installed (scripts/setup.sh installs Debian's docker-compose; elsewhere install Docker Compose v2)");
    const [cmd, ...pre] = compose;
    return spawnSync(cmd as string, [...pre, "-f", file, "--profile", "gpu", "--profile", "producer", ...args], {
      encoding: "utf8",
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
    });
  };
  type Service = {
    image?: string;
    build?: { context: string; dockerfile: string };
    command?: string[];
    environment?: Record<string, string | null>;
    stop_grace_period?: string;
    healthcheck?: { test?: string[]; disable?: boolean };
    deploy?: { replicas?: number; resources?: { reservations?: { devices?: { capabilities: string[] }[] } } };
    volumes?: (string | { type: string; source: string; target: string })[];
  };
  let services: Record<string, Service>;

  before(() => {
    const r = run(composeFile, "config");
    assert.equal(r.status, 0, r.stderr);
    services = (parseYaml(r.stdout) as { services: Record<string, Service> }).services;
  });

  it("validates (docker compose config -q)", () => {
    const r = run(composeFile, "config", "-q");
    assert.equal(r.status, 0, r.stderr);
  });

  it("the validator rejects a broken copy of it", async () => {
    const dir = join(await scratchDir("deploy-compose"), "deploy");
    await mkdir(dir, { recursive: true });
    const text = await readFile(composeFile, "utf8");
    for (const [what, broken] of [
      ["misspelt key", text.replace("stop_grace_period: 45s", "stop_grace_periodd: 45s")],
      ["wrong type", text.replace("replicas: 2", "replicas: two")],
      ["unknown dependency", text.replace("condition: service_healthy", "condition: service_healthy\n    nosuch:\n      condition: service_started")],
    ] as const) {
      assert.notEqual(broken, text, what);
      await writeFile(join(dir, "docker-compose.yml"), broken);
      const r = run(join(dir, "docker-compose.yml"), "config", "-q");
      assert.notEqual(r.status, 0, `${what} was accepted`);
    }
  });

  it("one service per pool from the one image, `worker <stage>`, grace longer than shutdownGraceMs", () => {
    for (const stage of stages) {
      const s = services[stage];
      assert.ok(s, `service ${stage}`);
      assert.deepEqual(s.command, ["worker", stage]);
      assert.equal(s.build?.dockerfile, "deploy/docker/Dockerfile");
      assert.equal(relative(repoRoot, s.build?.context ?? ""), "");
      assert.ok(Number.isInteger(s.deploy?.replicas) && (s.deploy?.replicas as number) >= 1, `${stage}: deploy.replicas`);
      const env = Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, v ?? ""]));
      assert.deepEqual(environmentProblems(env, stage), []);
      assert.equal(env.MASKFLEET_METRICS_PORT, "9464");
      assert.match(env.MASKFLEET_REDIS_URL ?? "", /^redis:\/\/redis:6379/);
      assert.match(env.MASKFLEET_OUT ?? "", /^s3:\/\//);
      assert.equal(env.MASKFLEET_S3_ENDPOINT, "http://minio:9000");
      const grace = Number(env.MASKFLEET_SHUTDOWN_GRACE_MS);
      const stop = /^(\d+)s$/.exec(s.stop_grace_period ?? "");
      assert.ok(stop && Number(stop[1]) * 1000 >= grace + 5000, `${stage}: stop_grace_period ${s.stop_grace_period} covers ${grace} ms + 5 s`);
    }
    assert.equal(new Set(stages.map((st) => services[st]?.image)).size, 1, "one image for every pool");
  });

  it("the GPU mask variant, the producer, Redis, MinIO, Prometheus and Grafana", () => {
    const gpu = services["mask-gpu"] as Service;
    assert.equal(gpu.build?.dockerfile, "deploy/docker/Dockerfile.cuda");
    assert.deepEqual(gpu.command, ["worker", "mask", "--ep", "cuda"]);
    assert.ok(
      gpu.deploy?.resources?.reservations?.devices?.some((d) => d.capabilities.includes("gpu")),
      "a GPU reservation",
    );
    for (const s of Object.values(services)) {
      if (s.build) assert.ok(existsSync(join(s.build.context, s.build.dockerfile)), s.build.dockerfile);
    }

    const producer = services.producer as Service;
    assert.deepEqual(producer.command?.slice(0, 3), ["enqueue", "/data/in", "--wait"]);
    const mountsInput = (s: Service) => s.volumes?.some((v) => (typeof v === "string" ? v : `${v.source}:${v.target}`).includes(":/data/in"));
    for (const name of [...stages, "mask-gpu", "producer"]) assert.ok(mountsInput(services[name] as Service), `${name} sees the input folder at /data/in`);

    const redis = services.redis as Service;
    assert.ok(redis.command?.join(" ").includes("--appendonly yes"), "Redis with persistence");
    assert.ok(redis.healthcheck?.test, "Redis health check");
    assert.ok(services.minio && services["minio-init"], "MinIO and its bucket job");

    const binds = (s: Service | undefined) => (s?.volumes ?? []).map((v) => (typeof v === "string" ? v.split(":")[0] : v.source) as string).filter((p) => p.startsWith("/"));
    const mounted = [...binds(services.prometheus), ...binds(services.grafana)].map((p) => relative(repoRoot, p));
    for (const p of ["deploy/prometheus/prometheus.yml", "deploy/grafana/provisioning/datasources", "deploy/grafana/provisioning/dashboards", "deploy/grafana/dashboards"]) {
      assert.ok(mounted.includes(p), `${p} is mounted`);
      assert.ok(existsSync(join(repoRoot, p)), `${p} exists (a missing bind source becomes an empty folder)`);
    }
    assert.ok(existsSync(join(repoRoot, "deploy/grafana/dashboards/maskfleet.json")), "the maskfleet dashboard");
  });

  it("the queue browser: the workers' image, read-only `ui --host 0.0.0.0`, published on 127.0.0.1 only, on the workers' Redis, with a health check of its own", () => {
    type Port = string | { host_ip?: string; target: number; published?: string | number };
    const ui = services.ui as Service & { ports?: Port[]; depends_on?: Record<string, unknown>; deploy?: { resources?: { limits?: { memory?: string | number } } } };
    assert.ok(ui, "service ui");
    const detect = services.detect as Service;
    assert.equal(ui.image, detect.image);
    assert.deepEqual(ui.build, detect.build);
    const args = ui.command ?? [];
    const flag = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
    assert.equal(args[0], "ui");
    assert.equal(flag("--host"), "0.0.0.0", "reachable from outside its container");
    assert.ok(!args.includes("--allow-retries"), "read-only");
    const port = Number(flag("--port") ?? defaultUiPort);

    // Docker Compose v2 gives ports as objects, docker-compose 1.29 as "host_ip:published:target/proto".
    const ports = (ui.ports ?? []).map((p) => {
      if (typeof p !== "string") return { hostIp: p.host_ip, target: Number(p.target) };
      const m = /^(?:([^:]+):)?(?:\d+):(\d+)(?:\/\w+)?$/.exec(p);
      return { hostIp: m?.[1], target: Number(m?.[2]) };
    });
    assert.ok(
      ports.some((p) => p.target === port),
      `port ${port} published: ${JSON.stringify(ui.ports)}`,
    );
    for (const p of ports) assert.equal(p.hostIp, "127.0.0.1", "published on the host's loopback only (it has no login)");

    assert.equal(ui.environment?.MASKFLEET_REDIS_URL, detect.environment?.MASKFLEET_REDIS_URL);
    assert.ok(!Object.keys(ui.environment ?? {}).some((k) => k.startsWith("AWS_")), "no credentials");
    assert.deepEqual(Object.keys(ui.depends_on ?? {}), ["redis"]);
    // The image's HEALTHCHECK asks the metrics port, which `ui` does not serve.
    assert.match((ui.healthcheck?.test ?? []).join(" "), new RegExp(`:${port}/ready`));
    assert.ok(ui.deploy?.resources?.limits?.memory, "a memory limit");
  });
});

// --- Kubernetes --------------------------------------------------------------------------------

/** Every folder under deploy/k8s, and every file in it. */
function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? [p, ...walk(p)] : [p];
  });
}

describe("Kubernetes manifests (deploy/k8s)", () => {
  // deploy/k8s/monitoring: Prometheus Operator kinds (no schema here), checked in test/metrics.test.ts.
  const paths = walk(k8s).filter((p) => !relative(k8s, p).startsWith("monitoring"));
  const builds = paths.filter((p) => existsSync(join(p, "kustomization.yaml")));
  const built = new Map(builds.map((dir) => [relative(k8s, dir), kustomize(dir)]));
  const at = (name: string) => built.get(name) as Manifest[];
  const find = (docs: readonly Manifest[], kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata.name === name) as Manifest;

  /** Files that kustomizations use as resources or patches; the rest (examples) are checked alone. */
  const referenced = new Set(
    builds.flatMap((dir) => {
      const k = readYamlDocs(join(dir, "kustomization.yaml"))[0] as { resources?: string[]; patches?: { path: string }[] };
      return [...(k.resources ?? []), ...(k.patches ?? []).map((p) => p.path)].map((r) => join(dir, r));
    }),
  );
  const standalone = paths.filter((p) => /\.ya?ml$/.test(p) && !p.endsWith("kustomization.yaml") && !referenced.has(p));

  it("builds base and every overlay", () => {
    assert.deepEqual([...built.keys()].sort(), ["base", "overlays/dev", "overlays/gpu"]);
    for (const [name, docs] of built) assert.ok(docs.length > 0, name);
  });

  it("every object validates against the Kubernetes / KEDA schemas, with no unknown kinds or fields", async () => {
    const items = [
      ...[...built].flatMap(([name, docs]) => docs.map((manifest) => ({ source: name, manifest }))),
      ...standalone.flatMap((file) => readYamlDocs(file).map((manifest) => ({ source: relative(k8s, file), manifest: manifest as Manifest }))),
    ];
    for (const { source, manifest } of items) {
      await validateManifest(manifest).catch((err: Error) => assert.fail(`${source}: ${manifest.kind} ${manifest.metadata.name}: ${err.message}`));
    }
    assert.deepEqual(unknownFieldProblems(items, repoRoot), []);
  });

  for (const name of ["base", "overlays/gpu", "overlays/dev"]) {
    it(`${name}: a Deployment, a PodDisruptionBudget and a ScaledObject per pool, and the queue browser, by the fleet's rules`, () => {
      assert.deepEqual(fleetProblems(at(name)), []);
    });
  }

  it("every namespaced object is in the maskfleet namespace, which the base creates", () => {
    for (const [name, docs] of built) {
      for (const d of docs) if (d.kind !== "Namespace") assert.equal(d.metadata.namespace, "maskfleet", `${name}: ${d.kind} ${d.metadata.name}`);
    }
    assert.ok(find(at("base"), "Namespace", "maskfleet"));
  });

  it("overlays/gpu: the mask pool on the CUDA image with --ep cuda and a GPU; the other pools as in the base", () => {
    const gpu = at("overlays/gpu");
    const base = at("base");
    type Dep = { spec: { template: { spec: { containers: { image: string; args: string[]; resources: { limits: Record<string, unknown> } }[] } } } };
    const worker = (docs: Manifest[], stage: string) => (find(docs, "Deployment", `maskfleet-${stage}`) as unknown as Dep).spec.template.spec.containers[0];
    const mask = worker(gpu, "mask");
    assert.match(mask?.image ?? "", /^maskfleet-cuda:/);
    assert.deepEqual(mask?.args, ["worker", "mask", "--ep", "cuda"]);
    assert.equal(Number(mask?.resources.limits["nvidia.com/gpu"]), 1);
    for (const stage of stages.filter((s) => s !== "mask")) assert.deepEqual(worker(gpu, stage), worker(base, stage), stage);
    assert.match(worker(base, "mask")?.image ?? "", /^maskfleet:/);
  });

  it("overlays/dev: Redis and MinIO where the ConfigMap points", () => {
    const dev = at("overlays/dev");
    const config = (find(dev, "ConfigMap", "maskfleet-config") as unknown as { data: Record<string, string> }).data;
    const redis = new URL(config.MASKFLEET_REDIS_URL as string);
    assert.ok(find(dev, "Service", redis.hostname), `a Service ${redis.hostname}`);
    assert.ok(find(dev, "Service", new URL(config.MASKFLEET_S3_ENDPOINT as string).hostname), "a MinIO Service");
    assert.ok(find(dev, "Secret", "maskfleet-aws"), "the workers' S3 credentials");
  });

  it("matches `kubectl kustomize` (where kubectl is installed)", (t) => {
    if (spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" }).status !== 0) {
      t.skip("kubectl is not installed; the builds above come from test/deploy/kustomize.ts alone");
      return;
    }
    const key = (m: Manifest) => `${m.kind}/${m.metadata.namespace ?? ""}/${m.metadata.name}`;
    for (const [name, docs] of built) {
      const out = execFileSync("kubectl", ["kustomize", join(k8s, name)], { encoding: "utf8" });
      const theirs = new Map(
        out
          .split(/^---$/m)
          .map((d) => parseYaml(d) as Manifest)
          .filter(Boolean)
          .map((m) => [key(m), m]),
      );
      assert.deepEqual([...theirs.keys()].sort(), docs.map(key).sort(), name);
      for (const m of docs) assert.deepEqual(m, theirs.get(key(m)), `${name}: ${key(m)}`);
    }
  });

  describe("the checks reject", () => {
    const deployment = () => structuredClone(find(at("base"), "Deployment", "maskfleet-mask"));

    it("a Deployment with a wrong type, a ScaledObject with a wrong type, an unknown kind", async () => {
      const bad = applyJsonPatch(deployment(), [{ op: "replace", path: "/spec/template/spec/containers/0/ports/0/containerPort", value: "9464" }]);
      await assert.rejects(validateManifest(bad), /containerPort must be integer/);
      const so = applyJsonPatch(find(at("base"), "ScaledObject", "maskfleet-mask"), [{ op: "replace", path: "/spec/minReplicaCount", value: "0" }]);
      await assert.rejects(validateManifest(so), /minReplicaCount must be integer/);
      await assert.rejects(modelFor("example.com/v1", "Widget"), /unknown kind/);
      await assert.rejects(modelFor("apps/v1", "DeploymentSpec"), /unknown kind/);
    });

    it("a misspelt field", () => {
      const bad = applyJsonPatch(deployment(), [{ op: "add", path: "/spec/template/spec/terminationGracePeriodSecond", value: 45 }]);
      const problems = unknownFieldProblems([{ source: "test", manifest: bad }], repoRoot);
      assert.equal(problems.length, 1, problems.join("\n"));
      assert.match(problems[0] as string, /test: Deployment maskfleet\/maskfleet-mask: .*terminationGracePeriodSecond/);
    });

    it("a pool without its PDB, on another list, with too short a grace period, as root, without probes", () => {
      const base = at("base");
      const without = (kind: string, name: string) => base.filter((d) => !(d.kind === kind && d.metadata.name === name));
      const patched = (kind: string, name: string, ops: Parameters<typeof applyJsonPatch>[1]) =>
        base.map((d) => (d.kind === kind && d.metadata.name === name ? applyJsonPatch(d, ops) : d));
      const cases: [string, Manifest[], RegExp][] = [
        ["no PDB", without("PodDisruptionBudget", "maskfleet-detect"), /maskfleet-detect: 0 PodDisruptionBudgets/],
        ["no ScaledObject", without("ScaledObject", "maskfleet-generate"), /maskfleet-generate: 0 ScaledObjects/],
        ["no Deployment", without("Deployment", "maskfleet-finalize"), /0 Deployments for the finalize pool/],
        [
          "another queue's list",
          patched("ScaledObject", "maskfleet-mask", [{ op: "replace", path: "/spec/triggers/0/metadata/listName", value: "maskfleet:detect:wait" }]),
          /listName maskfleet:detect:wait is not a BullMQ list of the mask queue/,
        ],
        [
          "bull's default prefix",
          patched("ScaledObject", "maskfleet-mask", [{ op: "replace", path: "/spec/triggers/0/metadata/listName", value: "bull:mask:wait" }]),
          /no redis trigger on BullMQ's waiting list maskfleet:mask:wait/,
        ],
        [
          "short grace",
          patched("Deployment", "maskfleet-mask", [{ op: "replace", path: "/spec/template/spec/terminationGracePeriodSeconds", value: 30 }]),
          /terminationGracePeriodSeconds 30 does not cover shutdownGraceMs 30000/,
        ],
        [
          "longer shutdown grace",
          patched("ConfigMap", "maskfleet-config", [{ op: "replace", path: "/data/MASKFLEET_SHUTDOWN_GRACE_MS", value: "60000" }]),
          /terminationGracePeriodSeconds 45 does not cover shutdownGraceMs 60000/,
        ],
        [
          "another Redis",
          patched("ConfigMap", "maskfleet-config", [{ op: "replace", path: "/data/REDIS_ADDRESS", value: "other:6379" }]),
          /scales on Redis other:6379, the workers use redis:6379/,
        ],
        [
          "unknown setting",
          patched("ConfigMap", "maskfleet-config", [{ op: "add", path: "/data/MASKFLEET_SHUTDOWN_GRACE", value: "1" }]),
          /MASKFLEET_SHUTDOWN_GRACE is not a maskfleet setting/,
        ],
        [
          "bad setting",
          patched("ConfigMap", "maskfleet-config", [{ op: "replace", path: "/data/MASKFLEET_LOCK_DURATION_MS", value: "5" }]),
          /the config refuses these settings: .*lockDurationMs/,
        ],
        ["root", patched("Deployment", "maskfleet-mask", [{ op: "remove", path: "/spec/template/spec/securityContext/runAsNonRoot" }]), /maskfleet-mask: runAsNonRoot is not set/],
        ["no probe", patched("Deployment", "maskfleet-mask", [{ op: "remove", path: "/spec/template/spec/containers/0/livenessProbe" }]), /livenessProbe does not GET \/healthz/],
        [
          "ready before the warm-up",
          patched("Deployment", "maskfleet-detect", [{ op: "replace", path: "/spec/template/spec/containers/0/readinessProbe/httpGet/path", value: "/metrics" }]),
          /maskfleet-detect: readinessProbe does not GET \/ready/,
        ],
        [
          "startup waiting for the warm-up",
          patched("Deployment", "maskfleet-mask", [{ op: "replace", path: "/spec/template/spec/containers/0/startupProbe/httpGet/path", value: "/ready" }]),
          /startupProbe does not GET \/healthz/,
        ],
        [
          "wrong stage",
          patched("Deployment", "maskfleet-mask", [{ op: "replace", path: "/spec/template/spec/containers/0/args/1", value: "detect" }]),
          /runs \["worker","detect"\], expected \["worker", "mask"/,
        ],
        [
          "too little memory",
          patched("Deployment", "maskfleet-mask", [{ op: "replace", path: "/spec/template/spec/containers/0/resources/requests/memory", value: "512Mi" }]),
          /ViT-B needs at least 1\.5Gi/,
        ],
      ];
      for (const [what, docs, problem] of cases) {
        const problems = fleetProblems(docs);
        assert.ok(
          problems.some((p) => problem.test(p)),
          `${what}: ${JSON.stringify(problems)}`,
        );
      }
    });

    it("a queue browser on loopback only, writable, without probes or its Service, or exposed", () => {
      const base = at("base");
      const patched = (kind: string, name: string, ops: Parameters<typeof applyJsonPatch>[1]) =>
        base.map((d) => (d.kind === kind && d.metadata.name === name ? applyJsonPatch(d, ops) : d));
      const cases: [string, Manifest[], RegExp][] = [
        ["no ui", base.filter((d) => d.metadata.name !== "maskfleet-ui"), /0 Deployments for the queue browser/],
        [
          "loopback",
          patched("Deployment", "maskfleet-ui", [{ op: "replace", path: "/spec/template/spec/containers/0/args", value: ["ui", "--port", "3001"] }]),
          /maskfleet-ui: needs --host 0\.0\.0\.0/,
        ],
        [
          "retries",
          patched("Deployment", "maskfleet-ui", [{ op: "add", path: "/spec/template/spec/containers/0/args/-", value: "--allow-retries" }]),
          /--allow-retries: the base is read-only/,
        ],
        [
          "another port",
          patched("Deployment", "maskfleet-ui", [{ op: "replace", path: "/spec/template/spec/containers/0/ports/0/containerPort", value: 3000 }]),
          /container port "http" is 3000, it listens on 3001/,
        ],
        [
          "no readiness",
          patched("Deployment", "maskfleet-ui", [{ op: "remove", path: "/spec/template/spec/containers/0/readinessProbe" }]),
          /maskfleet-ui: readinessProbe does not GET \/ready/,
        ],
        ["two replicas", patched("Deployment", "maskfleet-ui", [{ op: "replace", path: "/spec/replicas", value: 2 }]), /replicas 2, expected 1/],
        ["a token", patched("Deployment", "maskfleet-ui", [{ op: "remove", path: "/spec/template/spec/automountServiceAccountToken" }]), /service account token/],
        ["no Service", base.filter((d) => !(d.kind === "Service" && d.metadata.name === "maskfleet-ui")), /maskfleet-ui: 0 Services select its pods/],
        [
          "the workers' pods too",
          patched("Service", "maskfleet-ui", [{ op: "remove", path: "/spec/selector/app.kubernetes.io~1component" }]),
          /Service maskfleet\/maskfleet-ui: selects the pods of .*maskfleet-detect/,
        ],
        ["exposed", patched("Service", "maskfleet-ui", [{ op: "add", path: "/spec/type", value: "LoadBalancer" }]), /type LoadBalancer: it has no login/],
      ];
      for (const [what, docs, problem] of cases) {
        const problems = fleetProblems(docs);
        assert.ok(
          problems.some((p) => problem.test(p)),
          `${what}: ${JSON.stringify(problems)}`,
        );
      }
    });

    it("a patch whose target is not there", () => {
      assert.throws(() => applyJsonPatch({ a: {} }, [{ op: "replace", path: "/a/b", value: 1 }]), /nothing there/);
      assert.throws(() => applyJsonPatch({ a: {} }, [{ op: "add", path: "/x/y", value: 1 }]), /x does not exist/);
    });
  });
});

describe("KEDA list names are where BullMQ keeps the jobs", () => {
  let redisUrl: string;
  before(async () => {
    redisUrl = await freshRedis(10);
  });
  after(async () => {
    const r = connect(redisUrl);
    await r.flushdb();
    r.disconnect();
  });

  it("a job added to a stage's queue is in <listName wait>; taken by a worker, in <listName active>", async () => {
    const scaled = kustomize(join(k8s, "base")).filter((d) => d.kind === "ScaledObject");
    const redis = connect(redisUrl);
    try {
      for (const stage of stages) {
        const so = scaled.find((d) => d.metadata.labels?.["app.kubernetes.io/component"] === stage) as Manifest;
        const lists = (so.spec as { triggers: { metadata: { listName: string } }[] }).triggers.map((t) => t.metadata.listName);
        const [wait, active] = [`${keyPrefix}:${stage}:wait`, `${keyPrefix}:${stage}:active`];
        assert.deepEqual(lists, [wait, active], stage);

        const queue = openQueue(stage, redis);
        const workerConnection = connect(redisUrl);
        const worker = new Worker(stage, null, { connection: workerConnection, prefix: keyPrefix, autorun: false });
        try {
          const job = await queue.add("probe", {} as JobData, { jobId: `deploy-test-${stage}` });
          assert.equal(await redis.type(wait), "list");
          assert.ok((await redis.lrange(wait, 0, -1)).includes(job.id as string), `${stage}: job in ${wait}`);
          const taken = await worker.getNextJob("deploy-test-token");
          assert.equal(taken?.id, job.id);
          assert.ok((await redis.lrange(active, 0, -1)).includes(job.id as string), `${stage}: job in ${active}`);
          assert.equal(await redis.llen(wait), 0);
        } finally {
          await worker.close();
          await queue.close();
          await workerConnection.quit();
        }
      }
    } finally {
      await redis.quit();
    }
  });
});
