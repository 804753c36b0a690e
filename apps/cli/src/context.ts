import { type Command, InvalidArgumentError } from 'commander';
import { ApiClient } from './client';
import { resolveConnection } from './config';
import { parseOutputFormat, render, type OutputFormat } from './output';

/** What every command gets: the API, the output format, and where to print. */
export class Context {
  private client?: ApiClient;

  constructor(
    private readonly globals: { url?: string; token?: string; config?: string; output: string },
    readonly stdout: NodeJS.WriteStream = process.stdout,
    readonly stderr: NodeJS.WriteStream = process.stderr,
  ) {}

  get format(): OutputFormat {
    return parseOutputFormat(this.globals.output);
  }

  /** The API client, made on first use (commands such as `completion` need no URL nor token). */
  get api(): ApiClient {
    this.client ??= new ApiClient(resolveConnection(this.globals));
    return this.client;
  }

  /** Prints `data` in the chosen format (`asTable` for `table`). */
  print(data: unknown, asTable: () => string): void {
    this.stdout.write(`${render(data, this.format, asTable)}\n`);
  }

  /** Where live progress goes: stdout for people (table), stderr when stdout carries JSON or YAML. */
  get live(): NodeJS.WriteStream {
    return this.format === 'table' ? this.stdout : this.stderr;
  }
}

/** Wraps a command's action: builds its Context from the global options, passes the arguments on. */
export function action<A extends unknown[]>(fn: (ctx: Context, ...args: A) => Promise<void> | void) {
  return async (...args: unknown[]): Promise<void> => {
    const cmd = args.at(-1) as Command;
    await fn(new Context(cmd.optsWithGlobals()), ...(args.slice(0, -1) as A));
  };
}

/** A commander option parser from a pure one: its usage errors become commander's (exit 2 with the usage). */
export function optionParser<T>(parse: (value: string) => T) {
  return (value: string): T => {
    try {
      return parse(value);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
  };
}
