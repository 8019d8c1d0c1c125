/**
 * Offline checks of Kubernetes manifests: each object against its schema (kubernetes-models,
 * @kubernetes-models/keda), unknown fields through the same packages' TypeScript types, and the
 * fleet's own rules (a PDB and a KEDA ScaledObject per pool on BullMQ's lists, grace periods that
 * cover shutdownGraceMs, health probes on the metrics port, non-root, ...).
 */
import { join } from "node:path";
import ts from "typescript";
import { defaultUiPort } from "../../src/cli/ui.js";
import { configSchema, loadConfig } from "../../src/config/config.js";
import { keyPrefix, stages, type Stage } from "../../src/pipeline/queues.js";
import type { Manifest } from "./kustomize.js";

/** Where the model classes of an API group live; a group not listed here is an unknown kind. */
function modelPackage(apiVersion: string): string | undefined {
  const group = apiVersion.includes("/") ? (apiVersion.split("/")[0] as string) : "";
  if (group === "keda.sh") return `@kubernetes-models/keda/${apiVersion}`;
  if (group === "" || group === "apps" || group === "batch" || group === "policy" || group.endsWith(".k8s.io") || group === "autoscaling") {
    return `kubernetes-models/${apiVersion}`;
  }
  return undefined;
}

type ModelClass = (new (data: unknown) => { validate(): void }) & { apiVersion?: string; kind?: string };

/** The model class of a resource kind; throws for kinds the schema packages do not have. */
export async function modelFor(apiVersion: string, kind: string): Promise<ModelClass> {
  const pkg = modelPackage(apiVersion);
  const mod = pkg ? ((await import(pkg).catch(() => undefined)) as Record<string, unknown> | undefined) : undefined;
  const model = mod?.[kind] as ModelClass | undefined;
  if (!pkg || !model || model.apiVersion !== apiVersion || model.kind !== kind) throw new Error(`unknown kind ${apiVersion} ${kind}: no schema to validate it against`);
  return model;
}

/** Validates against the schema; throws with the schema's message. */
export async function validateManifest(m: Manifest): Promise<void> {
  const Model = await modelFor(m.apiVersion, m.kind);
  new Model(m).validate();
}

const describe = (m: Manifest) => `${m.kind} ${m.metadata.namespace ? `${m.metadata.namespace}/` : ""}${m.metadata.name}`;

/**
 * The schemas above ignore fields they do not know (a misspelt `terminationGracePeriodSecond`
 * passes). The packages' TypeScript interfaces do not: each object is type-checked as an object
 * literal of its interface, and excess properties are reported. Returns one line per problem.
 */
export function unknownFieldProblems(items: readonly { source: string; manifest: Manifest }[], repoRoot: string): string[] {
  const fileName = join(repoRoot, "test", "deploy", "__manifests__.ts");
  const imports = new Map<string, Set<string>>();
  const lines: string[] = [];
  const sources: string[] = [];
  for (const { source, manifest } of items) {
    const pkg = modelPackage(manifest.apiVersion);
    if (!pkg) throw new Error(`${source}: unknown kind ${manifest.apiVersion} ${manifest.kind}`);
    (imports.get(pkg) ?? imports.set(pkg, new Set()).get(pkg))?.add(`I${manifest.kind}`);
    sources.push(`${source}: ${describe(manifest)}`);
    lines.push(`export const m${lines.length}: I${manifest.kind} = ${JSON.stringify(manifest)};`);
  }
  const header = [...imports].map(([pkg, names]) => `import type { ${[...names].join(", ")} } from "${pkg}";`);
  const text = [...header, ...lines].join("\n");

  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, lang, ...rest) => (name === fileName ? ts.createSourceFile(name, text, lang) : getSourceFile.call(host, name, lang, ...rest));
  host.fileExists = (name) => name === fileName || fileExists.call(host, name);
  host.readFile = (name) => (name === fileName ? text : readFile.call(host, name));
  const program = ts.createProgram([fileName], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line - header.length : -1;
    return `${sources[line] ?? "manifests"}: ${ts.flattenDiagnosticMessageText(d.messageText, " ")}`;
  });
}

// --- the fleet's rules -------------------------------------------------------------------------

interface Container {
  name: string;
  image?: string;
  args?: string[];
  env?: { name: string; value?: string }[];
  envFrom?: { configMapRef?: { name: string; optional?: boolean }; secretRef?: { name: string; optional?: boolean } }[];
  ports?: { name?: string; containerPort: number }[];
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean };
  volumeMounts?: { name: string; mountPath: string }[];
}
interface Probe {
  httpGet?: { path?: string; port: string | number };
}
interface PodTemplate {
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    containers: Container[];
    serviceAccountName?: string;
    automountServiceAccountToken?: boolean;
    terminationGracePeriodSeconds?: number;
    securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
    volumes?: { name: string }[];
  };
}
interface RedisTrigger {
  type: string;
  metadata: Record<string, string>;
}

const spec = <T>(m: Manifest) => m.spec as T;
const subset = (small: Record<string, string> = {}, big: Record<string, string> = {}) =>
  Object.keys(small).length > 0 && Object.entries(small).every(([k, v]) => big[k] === v);

/** Kubernetes quantities (memory) in bytes: 512Mi, 4Gi, 1e9, 1500M. */
export function bytesOf(q: string | number | undefined): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q ?? ""));
  if (!m) return NaN;
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2] ?? ""] ?? 1;
  return Number(m[1]) * unit;
}

/** The names of MASKFLEET_* variables the code reads: the config keys, plus the model cache and metrics port. */
export function knownMaskfleetVariables(): Set<string> {
  const fromConfig = Object.keys(configSchema.shape).map((k) => `MASKFLEET_${k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`);
  return new Set([...fromConfig, "MASKFLEET_CACHE", "MASKFLEET_METRICS_PORT"]);
}

/** Problems with a set of MASKFLEET_* variables: unknown names, or values the config refuses. */
export function environmentProblems(env: Record<string, string>, where: string): string[] {
  const known = knownMaskfleetVariables();
  const problems = Object.keys(env)
    .filter((k) => k.startsWith("MASKFLEET_") && !known.has(k))
    .map((k) => `${where}: ${k} is not a maskfleet setting`);
  try {
    loadConfig({ env });
  } catch (err) {
    problems.push(`${where}: the config refuses these settings: ${(err as Error).message}`);
  }
  return problems;
}

/** A container's environment as the pod will see it: envFrom ConfigMaps (from `docs`), then env values. */
function environmentOf(c: Container, docs: readonly Manifest[], where: string, problems: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    const ref = from.configMapRef ?? from.secretRef;
    if (!ref) continue;
    const kind = from.configMapRef ? "ConfigMap" : "Secret";
    const found = docs.find((d) => d.kind === kind && d.metadata.name === ref.name);
    if (!found && !ref.optional) problems.push(`${where}: envFrom ${kind} ${ref.name} is not in the manifests`);
    if (found && kind === "ConfigMap") Object.assign(env, (found as { data?: Record<string, string> }).data);
  }
  for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return env;
}

/**
 * The rules every build of deploy/k8s must keep, one line per broken rule:
 * - one Deployment per pool (labels app.kubernetes.io/name=maskfleet, component=<stage>), its
 *   container running `worker <stage>`, selector matching the pod labels;
 * - valid maskfleet settings, and terminationGracePeriodSeconds >= shutdownGraceMs + 5 s;
 * - on the metrics port: startup and liveness probes on /healthz, readiness on /ready (the pool
 *   has warmed up), and the prometheus.io/port annotation;
 * - non-root, read-only root filesystem with /tmp (and the model cache for detect/mask) mounted;
 * - resource requests (mask: memory for ViT-B);
 * - exactly one PodDisruptionBudget selecting the pool's pods;
 * - exactly one KEDA ScaledObject targeting it, scaling on BullMQ's waiting list of its queue via
 *   the same Redis as MASKFLEET_REDIS_URL, with sane replica bounds;
 * - and the queue browser (component ui): see uiProblems.
 */
export function fleetProblems(docs: readonly Manifest[]): string[] {
  const problems: string[] = [];
  const pools = docs.filter((d) => d.kind === "Deployment" && d.metadata.labels?.["app.kubernetes.io/name"] === "maskfleet" && d.metadata.labels["app.kubernetes.io/component"] !== "ui");
  for (const d of pools) {
    const stage = d.metadata.labels?.["app.kubernetes.io/component"];
    if (!stages.includes(stage as Stage)) problems.push(`${describe(d)}: component ${stage} is not a stage (${stages.join(", ")})`);
  }
  for (const stage of stages) {
    const matching = pools.filter((d) => d.metadata.labels?.["app.kubernetes.io/component"] === stage);
    if (matching.length !== 1) {
      problems.push(`${matching.length} Deployments for the ${stage} pool (expected 1)`);
      continue;
    }
    problems.push(...poolProblems(stage, matching[0] as Manifest, docs));
  }
  problems.push(...uiProblems(docs));
  return problems;
}

/**
 * The queue browser (`maskfleet ui`): one Deployment (component ui) of 1 replica running `ui`
 * read-only on 0.0.0.0 (on 127.0.0.1 neither the probes nor the Service would reach it), on the
 * workers' Redis; GET /ready and /healthz on its port; non-root, read-only root filesystem, no
 * service account token; resources; and one Service selecting its pods only, on that port.
 */
export function uiProblems(docs: readonly Manifest[]): string[] {
  const uis = docs.filter((d) => d.kind === "Deployment" && d.metadata.labels?.["app.kubernetes.io/name"] === "maskfleet" && d.metadata.labels["app.kubernetes.io/component"] === "ui");
  if (uis.length !== 1) return [`${uis.length} Deployments for the queue browser (expected 1)`];
  const d = uis[0] as Manifest;
  const problems: string[] = [];
  const where = describe(d);
  const depSpec = spec<{ replicas?: number; selector: { matchLabels?: Record<string, string> }; template: PodTemplate }>(d);
  const pod = depSpec.template;
  const podLabels = pod.metadata?.labels ?? {};
  if (!subset(depSpec.selector.matchLabels, podLabels) || podLabels["app.kubernetes.io/component"] !== "ui") problems.push(`${where}: selector does not match the pod labels (component ui)`);
  if (depSpec.replicas !== 1) problems.push(`${where}: replicas ${depSpec.replicas}, expected 1`);
  const c = pod.spec.containers[0] as Container;
  const args = c.args ?? [];
  const flag = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  if (args[0] !== "ui") problems.push(`${where}: runs ${JSON.stringify(args)}, expected ["ui", ...]`);
  if (flag("--host") !== "0.0.0.0") problems.push(`${where}: needs --host 0.0.0.0 (it listens on 127.0.0.1 by default)`);
  if (args.includes("--allow-retries")) problems.push(`${where}: --allow-retries: the base is read-only`);

  const env = environmentOf(c, docs, where, problems);
  const workers = docs.find((x) => x.kind === "Deployment" && x.metadata.labels?.["app.kubernetes.io/component"] === "detect");
  const workersEnv = workers ? environmentOf(spec<{ template: PodTemplate }>(workers).template.spec.containers[0] as Container, docs, where, []) : {};
  if (!env.MASKFLEET_REDIS_URL || env.MASKFLEET_REDIS_URL !== workersEnv.MASKFLEET_REDIS_URL) problems.push(`${where}: MASKFLEET_REDIS_URL ${env.MASKFLEET_REDIS_URL}, the workers use ${workersEnv.MASKFLEET_REDIS_URL}`);

  const port = Number(flag("--port") ?? env.MASKFLEET_UI_PORT ?? defaultUiPort);
  const http = c.ports?.find((p) => p.name === "http");
  if (http?.containerPort !== port) problems.push(`${where}: container port "http" is ${http?.containerPort}, it listens on ${port}`);
  const probePaths = { readinessProbe: "/ready", livenessProbe: "/healthz" } as const;
  for (const [probe, path] of Object.entries(probePaths) as [keyof typeof probePaths, string][]) {
    const get = c[probe]?.httpGet;
    if (get?.path !== path || (get.port !== "http" && get.port !== port)) problems.push(`${where}: ${probe} does not GET ${path} on port ${port}`);
  }

  if (pod.spec.securityContext?.runAsNonRoot !== true || pod.spec.securityContext.runAsUser === 0) problems.push(`${where}: runAsNonRoot is not set`);
  if (c.securityContext?.readOnlyRootFilesystem !== true || c.securityContext.allowPrivilegeEscalation !== false) {
    problems.push(`${where}: needs readOnlyRootFilesystem true and allowPrivilegeEscalation false`);
  }
  if (pod.spec.automountServiceAccountToken !== false) problems.push(`${where}: mounts a service account token it does not need`);
  for (const mnt of c.volumeMounts ?? []) if (!pod.spec.volumes?.some((v) => v.name === mnt.name)) problems.push(`${where}: volumeMount ${mnt.name} has no volume`);
  const req = c.resources?.requests ?? {};
  if (req.cpu === undefined || req.memory === undefined || c.resources?.limits?.memory === undefined) problems.push(`${where}: needs cpu and memory requests and a memory limit`);
  if (bytesOf(c.resources?.limits?.memory) < bytesOf(req.memory)) problems.push(`${where}: memory limit below the request`);

  const services = docs.filter((x) => x.kind === "Service" && subset(spec<{ selector?: Record<string, string> }>(x).selector, podLabels));
  if (services.length !== 1) problems.push(`${where}: ${services.length} Services select its pods (expected 1)`);
  for (const svc of services) {
    const s = spec<{ type?: string; selector?: Record<string, string>; ports?: { port: number; targetPort?: string | number }[] }>(svc);
    const pools = docs.filter((x) => x.kind === "Deployment" && x !== d && subset(s.selector, spec<{ template: PodTemplate }>(x).template.metadata?.labels));
    if (pools.length > 0) problems.push(`${describe(svc)}: selects the pods of ${pools.map(describe).join(", ")} too`);
    if ((s.type ?? "ClusterIP") !== "ClusterIP") problems.push(`${describe(svc)}: type ${s.type}: it has no login, keep it ClusterIP`);
    if (!s.ports?.some((p) => p.targetPort === "http" || p.targetPort === port || (p.targetPort === undefined && p.port === port))) problems.push(`${describe(svc)}: no port targets ${port}`);
  }
  return problems;
}

function poolProblems(stage: Stage, d: Manifest, docs: readonly Manifest[]): string[] {
  const problems: string[] = [];
  const where = describe(d);
  const depSpec = spec<{ selector: { matchLabels?: Record<string, string> }; template: PodTemplate }>(d);
  const pod = depSpec.template;
  const podLabels = pod.metadata?.labels ?? {};
  if (!subset(depSpec.selector.matchLabels, podLabels)) problems.push(`${where}: selector does not match the pod labels`);
  if (podLabels["app.kubernetes.io/component"] !== stage) problems.push(`${where}: pod label component is not ${stage}`);
  const c = pod.spec.containers[0] as Container;
  if (c.name !== "worker") problems.push(`${where}: container 0 is ${c.name}, expected "worker" (the gpu overlay patches containers/0)`);
  if (c.args?.[0] !== "worker" || c.args?.[1] !== stage) problems.push(`${where}: runs ${JSON.stringify(c.args)}, expected ["worker", "${stage}", ...]`);

  // Settings and graceful termination.
  const env = environmentOf(c, docs, where, problems);
  problems.push(...environmentProblems(env, where));
  let grace = NaN;
  try {
    grace = loadConfig({ env }).shutdownGraceMs;
  } catch {
    // reported by environmentProblems
  }
  const tgps = pod.spec.terminationGracePeriodSeconds ?? 30;
  if (!(tgps * 1000 >= grace + 5000)) problems.push(`${where}: terminationGracePeriodSeconds ${tgps} does not cover shutdownGraceMs ${grace} + 5 s to close`);

  // Metrics port: env, container port, annotation, probes.
  const port = Number(env.MASKFLEET_METRICS_PORT);
  const metrics = c.ports?.find((p) => p.name === "metrics");
  if (!Number.isInteger(port)) problems.push(`${where}: MASKFLEET_METRICS_PORT is not set`);
  if (metrics?.containerPort !== port) problems.push(`${where}: container port "metrics" is ${metrics?.containerPort}, MASKFLEET_METRICS_PORT ${port}`);
  if (pod.metadata?.annotations?.["prometheus.io/scrape"] !== "true" || Number(pod.metadata?.annotations?.["prometheus.io/port"]) !== port) {
    problems.push(`${where}: prometheus.io/scrape and prometheus.io/port do not point at the metrics port`);
  }
  const probePaths = { startupProbe: "/healthz", readinessProbe: "/ready", livenessProbe: "/healthz" } as const;
  for (const [probe, path] of Object.entries(probePaths) as [keyof typeof probePaths, string][]) {
    const get = c[probe]?.httpGet;
    if (get?.path !== path || (get.port !== "metrics" && get.port !== port)) problems.push(`${where}: ${probe} does not GET ${path} on the metrics port`);
  }

  // Security and volumes.
  if (pod.spec.securityContext?.runAsNonRoot !== true) problems.push(`${where}: runAsNonRoot is not set`);
  if (pod.spec.securityContext?.runAsUser === 0) problems.push(`${where}: runs as uid 0`);
  if (c.securityContext?.readOnlyRootFilesystem !== true || c.securityContext.allowPrivilegeEscalation !== false) {
    problems.push(`${where}: needs readOnlyRootFilesystem true and allowPrivilegeEscalation false`);
  }
  const mounts = c.volumeMounts ?? [];
  for (const mnt of mounts) if (!pod.spec.volumes?.some((v) => v.name === mnt.name)) problems.push(`${where}: volumeMount ${mnt.name} has no volume`);
  const needs = ["/tmp", ...(stage === "mask" || stage === "detect" ? [env.MASKFLEET_CACHE ?? "(MASKFLEET_CACHE unset)"] : [])];
  for (const path of needs) if (!mounts.some((m) => m.mountPath === path)) problems.push(`${where}: nothing writable mounted at ${path}`);
  if (pod.spec.serviceAccountName && !docs.some((x) => x.kind === "ServiceAccount" && x.metadata.name === pod.spec.serviceAccountName)) {
    problems.push(`${where}: service account ${pod.spec.serviceAccountName} is not in the manifests`);
  }

  // Resources.
  const req = c.resources?.requests ?? {};
  if (req.cpu === undefined || req.memory === undefined || c.resources?.limits?.memory === undefined) problems.push(`${where}: needs cpu and memory requests and a memory limit`);
  if (bytesOf(c.resources?.limits?.memory) < bytesOf(req.memory)) problems.push(`${where}: memory limit below the request`);
  if (stage === "mask" && !(bytesOf(req.memory) >= 1.5 * 2 ** 30)) problems.push(`${where}: SAM ViT-B needs at least 1.5Gi of memory, requests ${req.memory}`);

  // The PodDisruptionBudget.
  const pdbs = docs.filter((x) => x.kind === "PodDisruptionBudget" && subset(spec<{ selector?: { matchLabels?: Record<string, string> } }>(x).selector?.matchLabels, podLabels));
  if (pdbs.length !== 1) problems.push(`${where}: ${pdbs.length} PodDisruptionBudgets select its pods (expected 1)`);
  else if (spec<{ maxUnavailable?: unknown }>(pdbs[0] as Manifest).maxUnavailable !== 1) problems.push(`${where}: its PodDisruptionBudget should allow maxUnavailable 1`);

  problems.push(...scalingProblems(stage, d, env, docs));
  for (const x of pdbs) if (x.metadata.namespace !== d.metadata.namespace) problems.push(`${describe(x)}: not in the namespace of ${where}`);
  return problems;
}

/** The KEDA ScaledObject of a pool: BullMQ's lists of its queue, the workers' Redis, bounds. */
function scalingProblems(stage: Stage, d: Manifest, env: Record<string, string>, docs: readonly Manifest[]): string[] {
  const where = describe(d);
  const targeting = docs.filter((x) => {
    const ref = x.kind === "ScaledObject" ? spec<{ scaleTargetRef?: { name: string; kind?: string } }>(x).scaleTargetRef : undefined;
    return ref?.name === d.metadata.name && (ref.kind ?? "Deployment") === "Deployment" && x.metadata.namespace === d.metadata.namespace;
  });
  if (targeting.length !== 1) return [`${where}: ${targeting.length} ScaledObjects target it (expected 1)`];
  const so = targeting[0] as Manifest;
  const s = spec<{ minReplicaCount?: number; maxReplicaCount?: number; cooldownPeriod?: number; pollingInterval?: number; triggers: RedisTrigger[] }>(so);
  const problems: string[] = [];
  const sw = describe(so);
  if (s.minReplicaCount === undefined || s.maxReplicaCount === undefined || s.minReplicaCount > s.maxReplicaCount || s.maxReplicaCount < 1) {
    problems.push(`${sw}: needs 0 <= minReplicaCount <= maxReplicaCount, maxReplicaCount >= 1`);
  }
  if (s.cooldownPeriod === undefined || s.pollingInterval === undefined) problems.push(`${sw}: set cooldownPeriod and pollingInterval`);

  const lists = { wait: `${keyPrefix}:${stage}:wait`, active: `${keyPrefix}:${stage}:active` };
  const redisTriggers = s.triggers.filter((t) => t.type === "redis");
  if (!redisTriggers.some((t) => t.metadata.listName === lists.wait)) problems.push(`${sw}: no redis trigger on BullMQ's waiting list ${lists.wait}`);
  const redisUrl = new URL(env.MASKFLEET_REDIS_URL ?? "redis://127.0.0.1:6379");
  const workersRedis = `${redisUrl.hostname}:${redisUrl.port || "6379"}`;
  const workersDb = Number(redisUrl.pathname.slice(1) || 0);
  for (const t of s.triggers) {
    if (t.type !== "redis") {
      problems.push(`${sw}: trigger ${t.type} is not one of the fleet's (redis)`);
      continue;
    }
    const m = t.metadata;
    if (!Object.values(lists).includes(m.listName ?? "")) problems.push(`${sw}: listName ${m.listName} is not a BullMQ list of the ${stage} queue (${Object.values(lists).join(", ")})`);
    if (!(Number(m.listLength) > 0)) problems.push(`${sw}: listLength ${m.listLength} must be a number > 0`);
    const address = m.address ?? (m.addressFromEnv ? env[m.addressFromEnv] : undefined);
    if (address !== workersRedis) problems.push(`${sw}: scales on Redis ${address}, the workers use ${workersRedis} (MASKFLEET_REDIS_URL)`);
    if (Number(m.databaseIndex ?? 0) !== workersDb) problems.push(`${sw}: databaseIndex ${m.databaseIndex ?? 0}, the workers use database ${workersDb}`);
  }
  return problems;
}
