/**
 * The agent's files on the host: its state and run directories are 0700 and its files 0600 (they name
 * VMs, migrations and QMP sockets that drive the guests), written atomically, validated when read.
 */
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Where an agent keeps what must outlive it, by default: `/var/lib/flexmig` as root (the FHS place for a
 * service's state), else `$XDG_STATE_HOME/flexmig` (`~/.local/state/flexmig`). Never under /tmp: other
 * users can create names there first, and tmp cleaners remove state that running QEMUs still need.
 */
export function defaultStateBase(env: NodeJS.ProcessEnv = process.env, uid: number | undefined = process.getuid?.()): string {
  if (uid === 0) return '/var/lib/flexmig';
  const xdg = env.XDG_STATE_HOME;
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(homedir(), '.local', 'state'), 'flexmig');
}

/**
 * Creates `dir` (and parents) and makes it 0700, also when it existed with looser permissions. A shared
 * directory (sticky, like /tmp, or another user's) is refused rather than chmod-ed: it is not the agent's
 * to lock down, and others could read or plant files there.
 */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const st = statSync(dir);
  const uid = process.getuid?.();
  if (st.mode & 0o1000 || (uid !== undefined && st.uid !== uid)) {
    throw new Error(`${dir} is a shared directory (mode ${(st.mode & 0o7777).toString(8)}, owner uid ${st.uid}): the agent keeps its state and QEMU files only in a directory of its own`);
  }
  if ((st.mode & 0o777) !== PRIVATE_DIR_MODE) chmodSync(dir, PRIVATE_DIR_MODE);
}

/**
 * Writes `text` to `file` atomically (0600 temp file, rename): a crash of the process leaves the old or
 * the new file. No fsync: the ledger is rewritten inside the guest's downtime (steps 5-7), and what it
 * guards against is an agent restart; after a power loss the host's QEMUs are gone with it.
 */
export function writePrivateFileAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', PRIVATE_FILE_MODE);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  try {
    chmodSync(tmp, PRIVATE_FILE_MODE); // 'w' keeps the mode of a leftover temp file
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Creates an empty 0600 file (for a file another process, e.g. QEMU, then writes into). */
export function createPrivateFile(file: string): void {
  closeSync(openSync(file, 'wx', PRIVATE_FILE_MODE));
}

export type ReadResult<T> = { kind: 'missing' } | { kind: 'ok'; value: T } | { kind: 'invalid'; reason: string };

/** Reads a JSON file and validates it with `schema`; says whether it was missing, valid or not. */
export function readJsonFile<S extends z.ZodType>(file: string, schema: S): ReadResult<z.infer<S>> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    return { kind: 'invalid', reason: (e as Error).message };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { kind: 'invalid', reason: `not JSON: ${(e as Error).message}` };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) return { kind: 'invalid', reason: parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ') };
  return { kind: 'ok', value: parsed.data };
}
