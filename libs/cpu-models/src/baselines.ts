import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { Baseline, baselineIndex, BaselineIndex, baselineNames, baselines, LadderName } from './catalog';
import { normalizeVendor } from './features';

export interface BaselineFilter {
  /** 'Intel' | 'AMD' (any case, or a CPUID vendor string); the psABI levels have no vendor. */
  vendor?: string;
  ladder?: LadderName;
}

/** Baselines in catalog order (ladder, then oldest first; a -noTSX mode just before its TSX sibling). */
export function listBaselines(filter: BaselineFilter = {}): Baseline[] {
  const vendor = filter.vendor === undefined ? undefined : normalizeVendor(filter.vendor);
  return baselines.filter((b) => (vendor === undefined || b.vendor === vendor) && (filter.ladder === undefined || b.ladder === filter.ladder));
}

/** Case-insensitive, by canonical name or alias (`Conroe`, `Skylake`, `Cascadelake-Server`, …). */
export function getBaseline(name: string): Baseline {
  return resolveBaseline(name).baseline;
}

export function resolveBaseline(name: string): BaselineIndex {
  const canonical = baselineNames.get(String(name).trim().toLowerCase());
  if (canonical === undefined) {
    const valid = baselines.map((b) => b.name);
    throw new FlexmigError(ErrorCode.UnknownCpuModel, `unknown CPU baseline "${name}"; valid: ${valid.join(', ')}`, {
      name,
      valid,
    });
  }
  return baselineIndex.get(canonical)!;
}
