/**
 * `maskfleet completion bash|zsh`: a shell completion script made from the command tree itself
 * (commands, visible flags, choices, file and folder values), so it never drifts from the CLI.
 */
import { Argument, type Command, type Option } from "commander";

/** What a value completes to: a fixed list, files, folders, or nothing to offer. */
type Values = { choices: string[] } | "file" | "dir" | "none";

interface Flag {
  names: string[];
  description: string;
  /** Undefined for a switch. */
  values?: Values;
  repeatable: boolean;
}

interface Node {
  path: string[];
  description: string;
  flags: Flag[];
  commands: Node[];
  args: { name: string; values: Values; many: boolean }[];
}

const fileLike = /file|annotations|inputs|spec|value/;
const dirLike = /dir|folder/;

function valuesOf(placeholder: string, choices: readonly string[] | undefined): Values {
  if (choices?.length) return { choices: [...choices] };
  if (dirLike.test(placeholder)) return "dir";
  return fileLike.test(placeholder) ? "file" : "none";
}

function flagOf(o: Option): Flag {
  const placeholder = /<([^>]+)>|\[([^\]]+)\]/.exec(o.flags);
  return {
    names: [o.short, o.long].filter((n): n is string => Boolean(n)),
    description: o.description,
    ...(placeholder && { values: valuesOf(placeholder[1] ?? placeholder[2] ?? "", o.argChoices) }),
    repeatable: o.variadic,
  };
}

function nodeOf(cmd: Command, path: string[]): Node {
  const flags = cmd.options.filter((o) => !o.hidden).map(flagOf);
  flags.push({ names: ["-h", "--help"], description: "show help", repeatable: false });
  const args = (cmd.registeredArguments as readonly Argument[]).map((a) => ({ name: a.name(), values: valuesOf(a.name(), a.argChoices), many: a.variadic }));
  const commands = cmd.commands.filter((c) => c.name() !== "help").map((c) => nodeOf(c, [...path, c.name()]));
  return { path, description: cmd.description(), flags, commands, args };
}

function walk(node: Node): Node[] {
  return [node, ...node.commands.flatMap(walk)];
}

/** The first clause of a description, for a one-line menu. */
const brief = (text: string) => (text.split(/ \(|; /)[0] ?? "").slice(0, 80);

// ---- bash ----------------------------------------------------------------------------------------

const bashWords = (values: Values) =>
  typeof values === "object"
    ? `COMPREPLY=($(compgen -W "${values.choices.join(" ")}" -- "$cur"))`
    : values === "dir"
      ? `COMPREPLY=($(compgen -d -- "$cur"))`
      : values === "file"
        ? `COMPREPLY=($(compgen -f -- "$cur"))`
        : "COMPREPLY=()";

function bashScript(root: Node): string {
  const nodes = walk(root);
  const key = (n: Node) => n.path.join("/");
  const known = nodes.filter((n) => n.path.length).map((n) => `"${n.path.slice(0, -1).join("/")}/${n.path.at(-1)}"`);
  // Value flags grouped by what their values complete to.
  const byValues = new Map<string, string[]>();
  for (const n of nodes)
    for (const f of n.flags) if (f.values) for (const name of f.names) byValues.set(bashWords(f.values), [...(byValues.get(bashWords(f.values)) ?? []), `"${key(n)}:${name}"`]);
  const valueCases = [...byValues].map(([action, pats]) => `    ${pats.join("|")})\n      ${action}; return ;;`).join("\n");
  const wordCases = nodes
    .map((n) => {
      const flags = n.flags.flatMap((f) => f.names).join(" ");
      const subs = n.commands.map((c) => c.path.at(-1)).join(" ");
      const arg = n.args[0];
      const positional = subs
        ? `COMPREPLY=($(compgen -W "${subs}" -- "$cur"))`
        : arg && typeof arg.values === "object"
          ? bashWords(arg.values)
          : arg && arg.values === "none"
            ? "COMPREPLY=()"
            : `COMPREPLY=($(compgen -f -- "$cur"))`;
      return `    "${key(n)}")\n      flags="${flags}"\n      positional() { ${positional}; } ;;`;
    })
    .join("\n");
  return `# bash completion for maskfleet. Load it now: source <(maskfleet completion bash)
# or for every shell: maskfleet completion bash > ~/.local/share/bash-completion/completions/maskfleet
_maskfleet() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} path="" flags i w
  # The command path so far: maskfleet models pull -> "models/pull".
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    case "$path/$w" in
      ${known.join("|")}) path=\${path:+$path/}$w ;;
    esac
  done
  case "$path:$prev" in
${valueCases}
  esac
  case "$path" in
${wordCases}
    *) return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  else
    positional
  fi
}
complete -o default -F _maskfleet maskfleet
`;
}

// ---- zsh -----------------------------------------------------------------------------------------

/** Text inside '...' and [...] of an _arguments spec. */
const zshText = (text: string) =>
  brief(text)
    .replace(/\\/g, "\\\\")
    .replace(/'/g, "'\\''")
    .replace(/([[\]:])/g, "\\$1");

const zshAction = (values: Values, label: string) =>
  typeof values === "object" ? `:${label}:(${values.choices.join(" ")})` : values === "file" ? `:${label}:_files` : values === "dir" ? `:${label}:_files -/` : `:${label}: `;

const zshFunction = (n: Node) => `_maskfleet${n.path.map((p) => `_${p.replace(/-/g, "_")}`).join("")}`;

function zshNode(n: Node): string {
  const specs = n.flags.flatMap((f) => {
    const action = f.values ? zshAction(f.values, "value") : "";
    return f.names.map((name) => `    '${f.repeatable ? "*" : ""}${name}[${zshText(f.description)}]${action}'`);
  });
  if (n.commands.length) {
    const menu = n.commands.map((c) => `    '${c.path.at(-1)}:${zshText(c.description)}'`).join("\n");
    const dispatch = n.commands.map((c) => `      (${c.path.at(-1)}) ${zshFunction(c)} ;;`).join("\n");
    return `${zshFunction(n)}() {
  local -a commands=(
${menu}
  )
  local curcontext=$curcontext state line
  _arguments -C \\
${specs.join(" \\\n")} \\
    '1: :->command' \\
    '*:: :->args'
  case $state in
    (command) _describe -t commands 'maskfleet command' commands ;;
    (args)
      case $words[1] in
${dispatch}
      esac ;;
  esac
}
`;
  }
  const positional = n.args.map((a, i) => `    '${a.many ? "*" : String(i + 1)}${zshAction(a.values, a.name)}'`);
  return `${zshFunction(n)}() {
  _arguments \\
${[...specs, ...positional].join(" \\\n")}
}
`;
}

function zshScript(root: Node): string {
  return `#compdef maskfleet
# zsh completion for maskfleet. Load it now (after compinit): source <(maskfleet completion zsh)
# or for every shell: maskfleet completion zsh > "\${fpath[1]}/_maskfleet"
${walk(root).map(zshNode).join("\n")}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _maskfleet "$@"
else
  compdef _maskfleet maskfleet
fi
`;
}

export function completionScript(program: Command, shell: "bash" | "zsh"): string {
  const root = nodeOf(program, []);
  return shell === "bash" ? bashScript(root) : zshScript(root);
}

export function addCompletionCommand(program: Command): void {
  program
    .command("completion")
    .description("print a shell completion script (bash or zsh); the script's first lines say how to load it")
    .addArgument(new Argument("<shell>", "bash | zsh").choices(["bash", "zsh"]))
    .action((shell: "bash" | "zsh") => {
      process.stdout.write(completionScript(program, shell));
    });
}
