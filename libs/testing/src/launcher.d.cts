import type { ChildProcess } from 'node:child_process';

export declare const root: string;
export declare function sleep(ms: number): Promise<void>;
export declare function freePort(): Promise<number>;
export declare function appEntry(app: string, entry?: string): string;
export declare function stopChild(child: ChildProcess, graceMs?: number): Promise<void>;

export interface LaunchOptions {
  /** For messages (default: the program's name). */
  name?: string;
  /** Added to this process's environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** Also write the output (stdout and stderr) to this file. */
  logFile?: string;
  /** Called with every non-empty output line (to show it on the console). */
  echo?: (line: string) => void;
}

export declare class Launched {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number | undefined;
  readonly logFile: string | undefined;
  /** The last output lines (stdout and stderr interleaved). */
  readonly output: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly running: boolean;
  tail(lines?: number): string;
  waitReady(port: number, timeoutMs?: number): Promise<this>;
  stop(graceMs?: number): Promise<void>;
  kill(): Promise<void>;
}

export declare function launch(command: string, args?: string[], options?: LaunchOptions): Launched;
export declare function launchNode(script: string, args?: string[], options?: LaunchOptions & { via?: string[] }): Launched;
export declare function launchService(app: string, options?: LaunchOptions & { via?: string[]; entry?: string }): Launched;
