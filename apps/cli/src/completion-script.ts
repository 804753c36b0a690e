// Shell completion scripts, generated from the command tree (pure: the tree in, the script out).
import type { Command } from 'commander';

/** The command tree as completion needs it: each command path with its subcommands and options. */
export interface CompletionNode {
  path: string[];
  subcommands: string[];
  options: string[];
}

export function completionTree(program: Command): CompletionNode[] {
  const out: CompletionNode[] = [];
  const walk = (cmd: Command, path: string[]) => {
    const options = cmd.options.flatMap((o) => [o.long, o.short].filter((x): x is string => Boolean(x)));
    out.push({ path, subcommands: cmd.commands.map((c) => c.name()), options: [...options, '--help'] });
    for (const c of cmd.commands) walk(c, [...path, c.name()]);
  };
  walk(program, []);
  return out;
}

/** A bash completion script: completes commands, subcommands, options, and --output's values. */
export function bashCompletion(name: string, tree: CompletionNode[], globalOptions: string[]): string {
  const cases = tree
    .map((n) => `    "${n.path.join(' ')}") words="${[...n.subcommands, ...n.options, ...globalOptions].join(' ')}" ;;`)
    .join('\n');
  const fn = `_${name.replace(/[^a-zA-Z0-9_]/g, '_')}_complete`;
  return `# bash completion for ${name}: source <(${name} completion bash)
${fn}() {
  local cur prev path="" w i words
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  case "$prev" in
    -o|--output) COMPREPLY=( $(compgen -W "table json yaml" -- "$cur") ); return ;;
  esac
  for ((i=1; i<COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$w" in -*) continue ;; esac
    case "\${path:+$path }$w" in
${tree.filter((n) => n.path.length).map((n) => `      "${n.path.join(' ')}") path="${n.path.join(' ')}" ;;`).join('\n')}
    esac
  done
  case "$path" in
${cases}
    *) words="" ;;
  esac
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
}
complete -o default -F ${fn} ${name}
`;
}

/** A zsh completion script: zsh runs the bash one through bashcompinit. */
export function zshCompletion(name: string, tree: CompletionNode[], globalOptions: string[]): string {
  return `#compdef ${name}
# zsh completion for ${name}: source <(${name} completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bashCompletion(name, tree, globalOptions)}`;
}
