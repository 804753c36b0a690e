import type { Command } from 'commander';
import { bashCompletion, completionTree, zshCompletion } from '../completion-script';
import { action } from '../context';
import { usageError } from '../exit-codes';

export function registerCompletion(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script: source <(flexmig completion bash), or zsh')
    .argument('<shell>', 'bash or zsh')
    .action(
      action((ctx, shell: string) => {
        const tree = completionTree(program);
        const globals = program.options.flatMap((o) => [o.long, o.short].filter((x): x is string => Boolean(x)));
        if (shell === 'bash') ctx.stdout.write(bashCompletion(program.name(), tree, globals));
        else if (shell === 'zsh') ctx.stdout.write(zshCompletion(program.name(), tree, globals));
        else throw usageError(`completion ${shell}: the shells are bash and zsh`);
      }),
    );
}
