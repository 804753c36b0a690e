import { CommanderError } from 'commander';
import { CliError, ExitCode } from './exit-codes';
import { buildProgram } from './program';

/**
 * `flexmig`: the operator's command line (docs/cli.md). Exit codes: 0 ok, 1 migration failed or rolled
 * back, 2 usage, 3 refused (4xx), 4 unreachable (see exit-codes.ts).
 */
async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  // usage errors exit 2 (commander's own default is 1, which here means "the migration failed")
  program.exitOverride();
  for (const c of allCommands(program)) c.exitOverride();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ExitCode.Ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version end here too, with exit code 0; commander has printed the message
      return e.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
    }
    if (e instanceof CliError) {
      process.stderr.write(`flexmig: ${e.message}\n`);
      return e.exitCode;
    }
    process.stderr.write(`flexmig: ${(e as Error)?.stack ?? e}\n`);
    return ExitCode.Failed;
  }
}

function allCommands(c: ReturnType<typeof buildProgram>): ReturnType<typeof buildProgram>[] {
  return c.commands.flatMap((s) => [s, ...allCommands(s)]);
}

// Ctrl-C while following (--wait, --watch, --follow) stops the CLI, not what it asked for
process.once('SIGINT', () => {
  process.stderr.write('\nflexmig: interrupted; what was asked goes on (see `flexmig migrations` or `flexmig evacuations`)\n');
  process.exit(130);
});

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
