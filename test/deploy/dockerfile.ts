/**
 * A small Dockerfile reader for the deploy tests (no hadolint, no Docker engine): instructions with
 * their stage, .dockerignore matching as Docker does it, and the problems the images must not have.
 */

export interface Instruction {
  keyword: string;
  args: string;
  /** 1-based line where the instruction starts. */
  line: number;
  /** Index of its build stage (0 = first FROM). */
  stage: number;
}

/** Instructions with continuation lines joined; comments, blank lines and parser directives skipped. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let pending: { text: string; line: number } | undefined;
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/\r$/, "");
    if (/^\s*#/.test(line) || (!pending && line.trim() === "")) return;
    const continued = /\\\s*$/.test(line);
    const part = line.replace(/\\\s*$/, "");
    pending = pending ? { text: `${pending.text} ${part.trim()}`, line: pending.line } : { text: part.trim(), line: i + 1 };
    if (continued) return;
    const m = /^(\S+)\s*(.*)$/.exec(pending.text) as RegExpExecArray;
    const keyword = (m[1] as string).toUpperCase();
    if (keyword === "FROM") stage++;
    out.push({ keyword, args: (m[2] as string).trim(), line: pending.line, stage });
    pending = undefined;
  });
  return out;
}

/** `.dockerignore` as Docker applies it: the last matching pattern wins, `!` re-includes, a match on a folder covers what is inside. */
export function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const negate = l.startsWith("!");
      const pattern = (negate ? l.slice(1) : l).replace(/^\/+|\/+$/g, "");
      const source = pattern
        .split(/(\*\*|\*|\?)/)
        .map((tok) => (tok === "**" ? ".*" : tok === "*" ? "[^/]*" : tok === "?" ? "[^/]" : tok.replace(/[.+^${}()|[\]\\]/g, "\\$&")))
        .join("");
      return { negate, re: new RegExp(`^${source}$`) };
    });
  return (path) => {
    const parts = path.replace(/^\.?\/+/, "").replace(/\/+$/, "").split("/");
    const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join("/"));
    let ignored = false;
    for (const rule of rules) if (prefixes.some((p) => rule.re.test(p))) ignored = !rule.negate;
    return ignored;
  };
}

/** The arguments of COPY/ADD: flags, sources and the destination (JSON or shell form). */
export function copyArgs(args: string): { flags: Record<string, string>; sources: string[]; dest: string } {
  const flags: Record<string, string> = {};
  let rest = args;
  for (let m = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest); m; m = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest)) {
    flags[m[1] as string] = m[2] ?? "";
    rest = rest.slice(m[0].length);
  }
  const words = rest.startsWith("[") ? (JSON.parse(rest) as string[]) : rest.split(/\s+/);
  return { flags, sources: words.slice(0, -1), dest: words[words.length - 1] as string };
}

/** Values set for a variable by ENV, ARG or an inline `NAME=value command` in RUN, in order. */
export function valuesOf(instructions: readonly Instruction[], name: string): { value: string; instruction: Instruction }[] {
  const out: { value: string; instruction: Instruction }[] = [];
  const re = new RegExp(`(?:^|\\s)${name}(?:=|\\s+)("[^"]*"|'[^']*'|[^\\s"']+)`, "g");
  for (const ins of instructions) {
    if (!["ENV", "ARG", "RUN"].includes(ins.keyword)) continue;
    for (const m of ins.args.matchAll(re)) out.push({ value: (m[1] as string).replace(/^["']|["']$/g, ""), instruction: ins });
  }
  return out;
}

export interface RepoView {
  /** Whether a path (relative to the build context) exists. */
  exists(path: string): boolean;
  /** Whether .dockerignore leaves it out of the build context. */
  ignored(path: string): boolean;
}

/**
 * What an image of this fleet must have: a final stage that runs as a user other than root, a
 * HEALTHCHECK, an ENTRYPOINT, and COPY/ADD sources that exist in the build context and are not
 * excluded by .dockerignore (or come from an earlier stage).
 */
export function dockerfileProblems(text: string, repo: RepoView): string[] {
  const instructions = parseDockerfile(text);
  const problems: string[] = [];
  const froms = instructions.filter((i) => i.keyword === "FROM");
  if (froms.length === 0) return ["no FROM"];
  const stageNames = froms.map((f) => /\s+AS\s+(\S+)\s*$/i.exec(f.args)?.[1]?.toLowerCase());
  const last = froms.length - 1;
  const final = instructions.filter((i) => i.stage === last);

  const user = final.filter((i) => i.keyword === "USER").pop();
  if (!user) problems.push("the final stage sets no USER (it would run as root)");
  else if (/^(root|0)(:|$)/.test(user.args)) problems.push(`line ${user.line}: USER ${user.args} is root`);

  const health = final.filter((i) => i.keyword === "HEALTHCHECK").pop();
  if (!health) problems.push("the final stage has no HEALTHCHECK");
  else if (/^NONE\b/i.test(health.args) || !/\bCMD\b/.test(health.args)) problems.push(`line ${health.line}: HEALTHCHECK runs no command`);

  if (!final.some((i) => i.keyword === "ENTRYPOINT")) problems.push("the final stage has no ENTRYPOINT");

  for (const ins of instructions.filter((i) => i.keyword === "COPY" || i.keyword === "ADD")) {
    const { flags, sources } = copyArgs(ins.args);
    if (flags.from !== undefined) {
      const from = flags.from.toLowerCase();
      const earlier = stageNames.slice(0, ins.stage).includes(from) || (/^\d+$/.test(from) && Number(from) < ins.stage);
      if (!earlier && !/[:/]/.test(from)) problems.push(`line ${ins.line}: ${ins.keyword} --from=${flags.from} names no earlier stage`);
      continue;
    }
    if (sources.length === 0) problems.push(`line ${ins.line}: ${ins.keyword} without a source`);
    for (const src of sources) {
      if (/^https?:\/\//.test(src)) continue;
      if (!repo.exists(src)) problems.push(`line ${ins.line}: ${ins.keyword} ${src}: not in the repository`);
      else if (repo.ignored(src)) problems.push(`line ${ins.line}: ${ins.keyword} ${src}: excluded by .dockerignore`);
    }
  }
  return problems;
}
