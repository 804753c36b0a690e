/**
 * QEMU's seccomp sandbox (`-sandbox`): a guest that breaks out into its QEMU process still cannot use the
 * obsolete system calls, gain privileges, start programs, or change its scheduling and resources. A
 * migration needs none of these (the stream is a TCP socket QEMU opens itself; no `exec:` URIs).
 * QEMU built without seccomp refuses the option; the driver then runs without it and says so.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { QemuProcess } from './qemu-process';

export const SANDBOX_ARGS = ['-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny'] as const;

export type SandboxSupport = { on: true } | { on: false; reason: string };

/** Starts QEMU once (`-machine none`) with the sandbox: whether this binary can run with it. */
export async function probeSandbox(binary: string, runDir: string): Promise<SandboxSupport> {
  const dir = mkdtempSync(join(runDir, 'probe-'));
  try {
    const p = await QemuProcess.launch({
      binary,
      args: ['-machine', 'none', '-nodefaults', '-no-user-config', '-display', 'none', '-S', ...SANDBOX_ARGS],
      qmpSocket: join(dir, 'probe-sandbox.qmp'),
      logFile: join(dir, 'probe-sandbox.log'),
      label: 'sandbox probe',
    });
    await p.quit(1_000);
    return { on: true };
  } catch (e) {
    return { on: false, reason: (e as Error).message };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
