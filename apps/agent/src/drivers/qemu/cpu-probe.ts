/**
 * What QEMU can run on this host, per accelerator, asked of QEMU itself once at driver start:
 * `query-cpu-definitions` (each named model's `unavailable-features` under that accelerator) and
 * `query-cpu-model-expansion {type: full, model: max}` (every feature the accelerator can give a guest).
 * From that: whether a baseline's `-cpu` string starts with `enforce` (and which features it lacks), the
 * accelerator a VM gets, and the host CPU capability flexmig reports.
 */
import { constants, accessSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import { ErrorCode, FlexmigError, HostCpu } from '@flexmig/contracts';
import { catalog, getBaseline, getFeature, listBaselines, normalizeFeatureNames, parseCpuinfo, TCG_ABSENT_FEATURES } from '@flexmig/cpu-models';
import { QemuProcess } from './qemu-process';

export type Accel = 'kvm' | 'tcg';
export type AccelSetting = Accel | 'auto';

export interface AccelProbe {
  accel: Accel;
  /** Named model → the features it lacks under this accelerator (QEMU spellings). */
  unavailable: Map<string, string[]>;
  /** Canonical names of every feature `max` has under this accelerator: what it can present. */
  maxFeatures: Set<string>;
}

export interface CpuProbe {
  /** Accelerators that started (kvm only if /dev/kvm opens and QEMU accepts it). */
  accels: AccelProbe[];
  /** Why KVM is not among them, if it is not. */
  kvmUnavailable?: string;
}

/** Whether /dev/kvm can be opened read-write by this process. */
export function kvmDeviceUsable(): { ok: boolean; reason?: string } {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: `/dev/kvm: ${(e as Error).message}` };
  }
}

/** How long one probe QEMU may take to answer each of its two queries (it answers in milliseconds). */
export const PROBE_QUERY_TIMEOUT_MS = 10_000;
/** Probe QEMUs started per accelerator before giving up: one that does not answer is killed and replaced once. */
const PROBE_ATTEMPTS = 2;

const log = new Logger('qemu');

/**
 * One accelerator's probe. A probe QEMU runs no guest and changes nothing, so one that does not answer in
 * time (seen once on a loaded CI machine: no answer to query-cpu-model-expansion within 30 s) is killed
 * and a fresh one asked; a second silence fails the probe, as any other error does at once.
 */
async function probeAccel(binary: string, accel: Accel, dir: string, queryTimeoutMs: number): Promise<AccelProbe> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await probeOne(binary, accel, dir, attempt, queryTimeoutMs);
    } catch (e) {
      if (!(e instanceof FlexmigError && e.code === ErrorCode.Timeout) || attempt >= PROBE_ATTEMPTS) throw e;
      log.warn(`${e.message}: stopping it and starting another probe QEMU (attempt ${attempt + 1} of ${PROBE_ATTEMPTS})`);
    }
  }
}

async function probeOne(binary: string, accel: Accel, dir: string, attempt: number, queryTimeoutMs: number): Promise<AccelProbe> {
  const name = `probe-${accel}-${attempt}`;
  const p = await QemuProcess.launch({
    binary,
    args: ['-machine', 'none', '-accel', accel, '-nodefaults', '-no-user-config', '-display', 'none', '-S'],
    qmpSocket: join(dir, `${name}.qmp`),
    logFile: join(dir, `${name}.log`),
    label: `CPU probe (${accel})`,
  });
  try {
    const defs = await p.qmp.execute<Array<{ name: string; 'unavailable-features'?: string[] }>>('query-cpu-definitions', undefined, queryTimeoutMs);
    const exp = await p.qmp.execute<{ model: { props?: Record<string, unknown> } }>('query-cpu-model-expansion', { type: 'full', model: { name: 'max' } }, queryTimeoutMs);
    const on = Object.entries(exp.model.props ?? {})
      .filter(([, v]) => v === true)
      .map(([k]) => k);
    return {
      accel,
      unavailable: new Map(defs.map((d) => [d.name, d['unavailable-features'] ?? []])),
      maxFeatures: new Set(normalizeFeatureNames(on).features),
    };
  } finally {
    await p.quit(1_000);
  }
}

/**
 * Starts QEMU with `-machine none` once per accelerator wanted by `setting` and reads what it can run. A
 * probe QEMU that does not answer a query within `queryTimeoutMs` is replaced once (probeAccel).
 */
export async function probeCpu(binary: string, setting: AccelSetting, runDir: string, queryTimeoutMs = PROBE_QUERY_TIMEOUT_MS): Promise<CpuProbe> {
  const dir = mkdtempSync(join(runDir, 'probe-'));
  try {
    const out: CpuProbe = { accels: [] };
    if (setting === 'kvm' || setting === 'auto') {
      const dev = kvmDeviceUsable();
      if (!dev.ok) out.kvmUnavailable = dev.reason;
      else {
        try {
          out.accels.push(await probeAccel(binary, 'kvm', dir, queryTimeoutMs));
        } catch (e) {
          out.kvmUnavailable = (e as Error).message;
        }
      }
      if (setting === 'kvm' && out.accels.length === 0) {
        throw new FlexmigError(ErrorCode.Unavailable, `QEMU_ACCEL=kvm but KVM cannot be used on this host: ${out.kvmUnavailable}`);
      }
    }
    if (setting === 'tcg' || setting === 'auto') out.accels.push(await probeAccel(binary, 'tcg', dir, queryTimeoutMs));
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A `-cpu` string split: the named model and its `+f`/`-f`/`f=on|off` modifiers. */
export function parseCpuString(cpu: string): { model: string; add: string[]; remove: string[] } {
  const [model, ...mods] = cpu.split(',');
  const add: string[] = [];
  const remove: string[] = [];
  for (const m of mods) {
    if (m.startsWith('+')) add.push(m.slice(1));
    else if (m.startsWith('-')) remove.push(m.slice(1));
    else if (/=(on|true)$/.test(m)) add.push(m.replace(/=.*$/, ''));
    else if (/=(off|false)$/.test(m)) remove.push(m.replace(/=.*$/, ''));
  }
  return { model: model!, add, remove };
}

/** Canonical name of a QEMU feature spelling when the catalog knows it, else the spelling itself. */
function canonical(name: string): string {
  try {
    return getFeature(name).name;
  } catch {
    return name;
  }
}

/**
 * The features `cpu` (a `-cpu` string) lacks with `enforce` under this accelerator: the named model's
 * `unavailable-features`, minus those the string turns off, plus those it turns on that `max` lacks.
 * Canonical (libvirt) names where the catalog knows them. Empty = it starts.
 */
export function missingFeatures(probe: AccelProbe, cpu: string): string[] {
  const { model, add, remove } = parseCpuString(cpu);
  const unavailable = probe.unavailable.get(model);
  if (!unavailable) throw new FlexmigError(ErrorCode.UnknownCpuModel, `QEMU has no CPU model "${model}" (from -cpu ${cpu})`, { model });
  const removed = new Set(remove.map(canonical));
  const missing = new Set(unavailable.map(canonical).filter((f) => !removed.has(f)));
  for (const f of add.map(canonical)) if (!probe.maxFeatures.has(f)) missing.add(f);
  return [...missing].sort();
}

export interface CpuChoice {
  accel: Accel;
  /** The `-cpu` argument, with `enforce`. */
  cpu: string;
}

/**
 * The accelerator and `-cpu` for a VM of `baselineName`, or a CPU_INCOMPATIBLE refusal naming the
 * missing features. With `auto`: KVM if it is usable and the model lacks nothing there, else TCG.
 */
export function chooseCpu(probe: CpuProbe, baselineName: string, vmLabel: string): CpuChoice {
  const b = getBaseline(baselineName);
  const tried: string[] = [];
  let fewest: string[] | undefined;
  for (const a of probe.accels) {
    let missing: string[];
    try {
      missing = missingFeatures(a, b.qemuCpu);
    } catch (e) {
      tried.push(`${a.accel}: ${(e as Error).message}`);
      continue;
    }
    if (missing.length === 0) return { accel: a.accel, cpu: `${b.qemuCpu},enforce` };
    tried.push(`${a.accel}: ${missing.join(', ')}`);
    if (!fewest || missing.length < fewest.length) fewest = missing;
  }
  throw new FlexmigError(
    ErrorCode.CpuIncompatible,
    `${vmLabel}: this host cannot run CPU baseline ${b.name} (-cpu ${b.qemuCpu},enforce); missing features (${tried.join('; ')})` +
      (probe.kvmUnavailable ? `; KVM not used: ${probe.kvmUnavailable}` : ''),
    { baseline: b.name, qemuCpu: b.qemuCpu, missingFeatures: fewest ?? [], perAccelerator: tried },
    false,
  );
}

/**
 * The host CPU as flexmig reports it: what QEMU can present to a guest under the accelerator(s) this
 * host uses (the stricter source wins where both speak):
 *   1. under KVM the guest runs on the physical CPU: /proc/cpuinfo ∩ features of `max` under KVM
 *      (features /proc/cpuinfo never prints, per the catalog, are taken from QEMU alone);
 *      under TCG QEMU emulates the CPU, so the physical CPU does not limit it: the features of `max`
 *      under TCG (a host that hides a bit, as some clouds hide `mtrr`, still runs it under TCG), and
 *      the bits QEMU's models drop under TCG without an error (`vme`: TCG_ABSENT_FEATURES);
 *      effective = the union over the accelerators;
 *   2. for every baseline of the host's vendor that (1) would claim but whose `-cpu` string QEMU says
 *      it cannot start with `enforce` under any accelerator, the features QEMU names as unavailable under
 *      every accelerator are removed, else one the baseline adds to the one below it, so that
 *      cpu-compat's "highest mode" never exceeds what QEMU runs.
 */
export function effectiveHostCpu(cpuinfoText: string, probe: CpuProbe): HostCpu & { accelerators: Accel[]; droppedByQemu: string[] } {
  const parsed = parseCpuinfo(cpuinfoText);
  const physical = new Set(parsed.features);
  const eff = new Set<string>();
  for (const a of probe.accels) {
    for (const f of a.maxFeatures) {
      if (a.accel === 'tcg' || physical.has(f) || notPrintedByLinux(f)) eff.add(f);
    }
    // QEMU turns these off in every named model under TCG without an `enforce` error, and the guest
    // check excuses them there (libs/cpu-models TCG_ABSENT_FEATURES, 'tcg-cannot-present'): `max` lacks
    // them, yet a model that has them runs. Without them an Intel host under TCG claimed no mode at all:
    // every Intel baseline has `vme` from QEMU's models (on AMD only EPYC and later have it).
    if (a.accel === 'tcg') for (const f of TCG_ABSENT_FEATURES) eff.add(f);
  }
  // cpu-compat's evaluation treats these as present on any hypervisor host (catalog policy)
  const supplied = new Set(catalog.policy.hypervisorSupplied);
  const claims = (fs: readonly string[]) => fs.every((f) => eff.has(f) || supplied.has(f));
  for (let changed = true; changed; ) {
    changed = false;
    const ladder = listBaselines({ vendor: parsed.vendor });
    for (const [i, b] of ladder.entries()) {
      if (!claims(b.features)) continue;
      const perAccel = probe.accels.map((a) => {
        try {
          return missingFeatures(a, b.qemuCpu);
        } catch {
          return ['(model unknown to this QEMU)'];
        }
      });
      if (perAccel.some((m) => m.length === 0)) continue;
      // only what no accelerator has: a feature one lacks and another has stays, since a lower baseline
      // may run where it is (a nested KVM without pni and ssse3 beside a TCG that has them claimed nothing)
      const lackedByAll = perAccel.reduce((all, missing) => all.filter((f) => missing.includes(f)));
      for (const f of lackedByAll) eff.delete(f);
      if (claims(b.features)) {
        // what QEMU lacks is a feature the evaluation assumes anyway (x2apic, tsc-deadline…) or none it
        // names: drop a feature the baseline adds to the one below it, so the host does not claim the baseline
        const lower = new Set(i > 0 ? ladder[i - 1]!.features : []);
        const own = b.features.filter((f) => !supplied.has(f));
        const fresh = own.filter((f) => !lower.has(f));
        eff.delete((fresh.length ? fresh : own)[0]!);
      }
      changed = true;
    }
  }
  const features = [...eff].sort();
  return {
    vendor: parsed.vendor,
    modelName: parsed.modelName ?? 'unknown',
    features,
    accelerators: probe.accels.map((a) => a.accel),
    droppedByQemu: parsed.features.filter((f) => !eff.has(f)),
  };
}

/** A catalog feature that /proc/cpuinfo never prints (so only QEMU can say whether the host has it). */
function notPrintedByLinux(name: string): boolean {
  try {
    const feat = getFeature(name);
    return feat.linuxNameSource === 'not-printed' && !feat.msr;
  } catch {
    return false; // not a catalog feature
  }
}

export function readCpuinfo(): string {
  return readFileSync('/proc/cpuinfo', 'utf8');
}
