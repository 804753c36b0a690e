// @flexmig/cpu-models: the CPU baseline catalog (libvirt 12.8.0 cpu_map + x86-64 psABI levels) and pure
// functions over it. No I/O beyond importing the committed catalog.json. Decisions: ../README.md.
export type { Baseline, Catalog, CpuFeature, CpuidRegister, LadderName, Vendor } from './catalog';
export { catalog, noLadderReason } from './catalog';
export { getFeature, normalizeFeatureNames, normalizeVendor } from './features';
export { getBaseline, listBaselines } from './baselines';
export type { BaselineFilter } from './baselines';
export { parseCpuinfo } from './parse-cpuinfo';
export type { ParsedHostCpu } from './parse-cpuinfo';
export { parseCpuidDump } from './parse-cpuid';
export type { CpuidRow } from './parse-cpuid';
export { assertCpuCompatible, evaluateHost, verdict, verifyMode } from './evaluate';
export type { ClusterHost, HostCpuInput, HostEvaluation, LadderStep, ModeVerification, TargetCpu, Verdict } from './evaluate';
export { clusterMode, modesHighestFirst, planCluster } from './cluster';
export type { ClusterModeResult, ClusterPlan } from './cluster';
export { cpuidMasks } from './masks';
export type { CpuidMask } from './masks';
export { simulatedCpuinfo, simulatedHostCpu } from './simulate';
export type { SimulatedHostCpu } from './simulate';
export { compareGuestCpu, compareGuestCpuid, OS_CONTROLLED_FEATURES, TCG_ABSENT_FEATURES } from './guest-cpu';
export type { CompareGuestCpuInput, GuestCpuComparison, GuestCpuExceptionReason } from './guest-cpu';
