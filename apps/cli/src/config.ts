import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { CliError, ExitCode } from './exit-codes';

export const DEFAULT_URL = 'http://127.0.0.1:3000';
/** How long one API request may take (POST /vms waits for the agent to start the VM: up to 30 s). */
export const DEFAULT_TIMEOUT_MS = 60_000;

/** ~/.config/flexmig/config.yaml (or under XDG_CONFIG_HOME). */
export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.XDG_CONFIG_HOME || path.join(homedir(), '.config'), 'flexmig', 'config.yaml');
}

const ConfigFileSchema = z
  .object({
    url: z.url({ protocol: /^https?$/, error: 'an http:// or https:// URL' }).optional(),
    token: z.string().min(1).optional(),
    /** A file holding the token, e.g. the admin.token `flexmig auth init` writes. */
    tokenFile: z.string().min(1).optional(),
    timeoutMs: z.number().int().min(100).max(3_600_000).optional(),
  })
  .strict();
export type ConfigFile = z.infer<typeof ConfigFileSchema>;

export interface Connection {
  url: string;
  token?: string;
  timeoutMs: number;
  /** Where each value came from, for error messages. */
  source: { url: string; token: string };
}

export interface ConnectionFlags {
  url?: string;
  token?: string;
  config?: string;
}

/** Parses a config file's text; `file` names it in errors. */
export function parseConfigFile(text: string, file: string): ConfigFile {
  let raw: unknown;
  try {
    raw = parse(text) ?? {};
  } catch (e) {
    throw new CliError(`config file ${file} is not valid YAML (${(e as Error).message.split('\n')[0]}): fix it or point --config elsewhere`, ExitCode.Usage);
  }
  const r = ConfigFileSchema.safeParse(raw);
  if (!r.success) {
    const why = r.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`).join('; ');
    throw new CliError(`config file ${file} is invalid: ${why}. Its keys are url, token, tokenFile, timeoutMs`, ExitCode.Usage);
  }
  return r.data;
}

/**
 * Where to reach the API and with which token. Precedence, highest first: the flags (--url, --token),
 * the environment (FLEXMIG_URL, FLEXMIG_TOKEN), the config file (--config, else FLEXMIG_CONFIG, else
 * ~/.config/flexmig/config.yaml; a missing default file is no error), then the default URL.
 */
export function resolveConnection(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env, read = (f: string) => readFileSync(f, 'utf8')): Connection {
  const explicit = flags.config ?? env.FLEXMIG_CONFIG;
  const file = explicit ?? defaultConfigPath(env);
  let config: ConfigFile = {};
  let text: string | undefined;
  try {
    text = read(file);
  } catch (e) {
    if (explicit || (e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new CliError(`cannot read config file ${file}: ${(e as Error).message}`, ExitCode.Usage);
    }
  }
  if (text !== undefined) config = parseConfigFile(text, file);
  let fileToken: string | undefined = config.token;
  if (!fileToken && config.tokenFile) {
    const tokenPath = path.resolve(path.dirname(file), config.tokenFile.replace(/^~(?=\/)/, homedir()));
    try {
      fileToken = read(tokenPath).trim();
    } catch (e) {
      throw new CliError(`cannot read the token file ${tokenPath} named by ${file}: ${(e as Error).message}`, ExitCode.Usage);
    }
  }
  const pick = (flag: string | undefined, envName: string, fromFile: string | undefined): [string | undefined, string] =>
    flag ? [flag, 'the command line'] : env[envName] ? [env[envName], envName] : fromFile ? [fromFile, file] : [undefined, 'nowhere'];
  const [url, urlSource] = pick(flags.url, 'FLEXMIG_URL', config.url);
  const [token, tokenSource] = pick(flags.token, 'FLEXMIG_TOKEN', fileToken);
  const finalUrl = (url ?? DEFAULT_URL).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(finalUrl)) throw new CliError(`the URL ${finalUrl} (from ${urlSource}) is not an http:// or https:// URL`, ExitCode.Usage);
  return {
    url: finalUrl,
    token: token?.trim() || undefined,
    timeoutMs: config.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    source: { url: url ? urlSource : 'the default', token: tokenSource },
  };
}
