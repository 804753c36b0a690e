#!/usr/bin/env node
// Generates libs/cpu-models/src/catalog.json from libvirt's CPU map and the x86-64 psABI levels table.
//
//   npm run cpu-catalog                                  (= node tools/generate-cpu-catalog.mjs)
//   node tools/generate-cpu-catalog.mjs [cpuMapDir] [--out <file>]
//
// cpuMapDir defaults to libs/cpu-models/data/cpu-map (the libvirt CPU map shipped in the repository with its
// licence, see libs/cpu-models/data/README.md); --out defaults to
// libs/cpu-models/src/catalog.json. The output is deterministic (sorted keys and feature lists), so running
// the script twice gives a byte-identical file; libs/cpu-models/src/catalog-generator.spec.ts checks that
// the committed catalog equals a fresh run. The runtime library only reads the committed JSON.
//
// The policy decisions (which libvirt model presents which mode, the cumulative rule, the TSX branch,
// hypervisor-supplied bits, Linux spellings) are constants below and are explained in
// libs/cpu-models/README.md. The script fails loudly when the data stops matching an expectation, so a
// new libvirt release forces a human decision instead of silently changing a cluster's baseline.
import { readFileSync, writeFileSync, readdirSync, existsSync } from 'node:fs';
import { resolve, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { XMLParser } from 'fast-xml-parser';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

// ---------------------------------------------------------------------------------------------------------
// Source description (README of the reference directory).
const SOURCE = {
  libvirt: {
    project: 'libvirt',
    version: '12.8.0',
    path: 'src/cpu_map/ (installed as /usr/share/libvirt/cpu_map/)',
    files: 'x86_features.xml, x86_vendors.xml, x86_<Model>.xml, index.xml',
    obtainedFrom: 'Debian package libvirt-common 12.8.0-1 (amd64, unstable), files byte-for-byte from /usr/share/libvirt/cpu_map',
    packageSha256: 'f767250c1a7e7eba7971ed3807b9467e3f51a3cdf068a42c9ca2bc34f6dff150',
    libcpuinfoAliases:
      'libcpuinfo_aliases.xml is not installed by the package; it is libvirt 11.3.0\'s (tarball libvirt-11.3.0.tar.xz, ' +
      'sha256 6bcb0c42c4580436fea262ced56f68a6afe20f7390b1bea2116718cc034a0283), the only version the public index holds',
    license: 'LGPL-2.1-or-later',
    inRepository: 'libs/cpu-models/data/cpu-map (see its README.md; LICENSE-libvirt.txt)',
  },
  psabi: {
    document: 'x86-64 psABI, Table 3.1 "Micro-Architecture Levels" (x86-64-ABI/low-level-sys-info.tex)',
    upstream: 'https://gitlab.com/x86-psABIs/x86-64-ABI',
    mirror: 'fadhil-riyanto/x86-64-ABI',
    commit: 'ab2062ad5653913c39124548943b1177330e34c8',
    levelsIntroducedBy: '77566eb03bc6a326811cb7e9a6b9396884b67c7c',
  },
  linuxNames:
    'Linux arch/x86/include/asm/cpufeatures.h spellings as tabulated in shared/reference/cpu-map/README.md; ' +
    "other names are derived (libvirt name with '-' and '.' replaced by '_') and marked linuxNameSource='derived'",
  qemuExtras:
    'QEMU target/i386/cpu.c at commit 0048035a870312f2fd0f3dd28115398d26e419bb, as tabulated in the reference README caveat 1',
  generator: 'tools/generate-cpu-catalog.mjs',
};

// ---------------------------------------------------------------------------------------------------------
// Ladders. `libvirt` is the model whose file supplies the generation's features and which QEMU is started
// with; the `-cpu` string then adds/removes features so the guest sees exactly the mode's set.
// A -noTSX mode libvirt has no file for: the TSX model itself, presented with -hle,-rtm.
function derivedNoTsx(model) {
  return { name: `${model}-noTSX`, libvirt: model };
}
const INTEL = [
  { name: 'Merom', libvirt: 'Conroe', aliases: ['Conroe'], modelName: 'Intel(R) Xeon(R) CPU 5160 @ 3.00GHz' },
  { name: 'Penryn', libvirt: 'Penryn', modelName: 'Intel(R) Xeon(R) CPU E5450 @ 3.00GHz' },
  { name: 'Nehalem', libvirt: 'Nehalem', modelName: 'Intel(R) Xeon(R) CPU X5570 @ 2.93GHz' },
  { name: 'Westmere', libvirt: 'Westmere', modelName: 'Intel(R) Xeon(R) CPU X5670 @ 2.93GHz' },
  { name: 'SandyBridge', libvirt: 'SandyBridge', modelName: 'Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz' },
  { name: 'IvyBridge', libvirt: 'IvyBridge', modelName: 'Intel(R) Xeon(R) CPU E5-2680 v2 @ 2.80GHz' },
  {
    name: 'Haswell', libvirt: 'Haswell', modelName: 'Intel(R) Xeon(R) CPU E5-2690 v3 @ 2.60GHz',
    noTsx: { name: 'Haswell-noTSX', libvirt: 'Haswell-noTSX' },
  },
  {
    name: 'Broadwell', libvirt: 'Broadwell', modelName: 'Intel(R) Xeon(R) CPU E5-2699 v4 @ 2.20GHz',
    noTsx: { name: 'Broadwell-noTSX', libvirt: 'Broadwell-noTSX' },
  },
  {
    name: 'Skylake-Client', libvirt: 'Skylake-Client', modelName: 'Intel(R) Xeon(R) CPU E3-1270 v5 @ 3.60GHz',
    // libvirt has no plain Skylake-Client-noTSX; its -noTSX-IBRS variant is the TSX-less model (+spec-ctrl).
    noTsx: { name: 'Skylake-Client-noTSX', libvirt: 'Skylake-Client-noTSX-IBRS' },
  },
  {
    // "Skylake" in DESIGN.md is a data-centre ladder, so it means the Xeon Scalable part (AVX-512).
    name: 'Skylake-Server', libvirt: 'Skylake-Server', aliases: ['Skylake'], modelName: 'Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz',
    noTsx: { name: 'Skylake-Server-noTSX', libvirt: 'Skylake-Server-noTSX-IBRS', aliases: ['Skylake-noTSX'] },
  },
  {
    name: 'Cascadelake', libvirt: 'Cascadelake-Server', aliases: ['Cascadelake-Server'], modelName: 'Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz',
    noTsx: { name: 'Cascadelake-noTSX', libvirt: 'Cascadelake-Server-noTSX', aliases: ['Cascadelake-Server-noTSX'] },
  },
  {
    name: 'Icelake', libvirt: 'Icelake-Server', aliases: ['Icelake-Server'], modelName: 'Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz',
    noTsx: { name: 'Icelake-noTSX', libvirt: 'Icelake-Server-noTSX', aliases: ['Icelake-Server-noTSX'] },
  },
  // libvirt has no -noTSX model from Sapphire Rapids on, yet these parts usually run with TSX off (the kernel's
  // default tsx=off clears hle/rtm: see the Emerald and Granite Rapids fixtures). Without a -noTSX mode such a
  // host would fall to Icelake-noTSX, so the mode is derived (README decision 2).
  { name: 'SapphireRapids', libvirt: 'SapphireRapids', modelName: 'Intel(R) Xeon(R) Platinum 8480+', noTsx: derivedNoTsx('SapphireRapids') },
  { name: 'GraniteRapids', libvirt: 'GraniteRapids', modelName: 'Intel(R) Xeon(R) 6980P', noTsx: derivedNoTsx('GraniteRapids') },
  { name: 'DiamondRapids', libvirt: 'DiamondRapids', modelName: 'Intel(R) Xeon(R) CPU (Diamond Rapids)', noTsx: derivedNoTsx('DiamondRapids') },
];
const AMD = [
  { name: 'Opteron_G1', libvirt: 'Opteron_G1', modelName: 'AMD Opteron(tm) Processor 252' },
  { name: 'Opteron_G2', libvirt: 'Opteron_G2', modelName: 'Dual-Core AMD Opteron(tm) Processor 2218' },
  { name: 'Opteron_G3', libvirt: 'Opteron_G3', modelName: 'Quad-Core AMD Opteron(tm) Processor 2356' },
  { name: 'Opteron_G4', libvirt: 'Opteron_G4', modelName: 'AMD Opteron(TM) Processor 6274' },
  { name: 'Opteron_G5', libvirt: 'Opteron_G5', modelName: 'AMD Opteron(tm) Processor 6376' },
  { name: 'EPYC', libvirt: 'EPYC', modelName: 'AMD EPYC 7601 32-Core Processor' },
  { name: 'EPYC-Rome', libvirt: 'EPYC-Rome', modelName: 'AMD EPYC 7742 64-Core Processor' },
  { name: 'EPYC-Milan', libvirt: 'EPYC-Milan', modelName: 'AMD EPYC 7763 64-Core Processor' },
  { name: 'EPYC-Genoa', libvirt: 'EPYC-Genoa', modelName: 'AMD EPYC 9654 96-Core Processor' },
  { name: 'EPYC-Turin', libvirt: 'EPYC-Turin', modelName: 'AMD EPYC 9755 128-Core Processor' },
];

// Intel's Atom-derived server cores (E-cores). They lack AVX-512, TSX and (Denverton, Snowridge) AVX, so
// on the main ladder they stop at Westmere..Skylake-Client-noTSX; this second Intel ladder gives a
// cluster of them a named mode of their own (README decision 8).
const INTEL_ECORE = [
  { name: 'Denverton', libvirt: 'Denverton', modelName: 'Intel(R) Atom(TM) CPU C3958 @ 2.00GHz' },
  { name: 'Snowridge', libvirt: 'Snowridge', modelName: 'Intel(R) Atom(TM) P5962B Processor' },
  { name: 'SierraForest', libvirt: 'SierraForest', modelName: 'Intel(R) Xeon(R) 6780E' },
  { name: 'ClearwaterForest', libvirt: 'ClearwaterForest', modelName: 'Intel(R) Xeon(R) CPU (Clearwater Forest)' },
];
// Hygon: libvirt's Dhyana (Zen 1 licensee core) and its -v2 (adds npt, nrip-save, xsaves).
const HYGON = [
  { name: 'Dhyana', libvirt: 'Dhyana', modelName: 'Hygon C86 7185 32-core Processor' },
  { name: 'Dhyana-v2', libvirt: 'Dhyana-v2', modelName: 'Hygon C86 7285 32-core Processor' },
];
// Vendor names as this library spells them (libvirt 12.8.0 calls CentaurHauls "Zhaoxin CentaurHauls"), and
// whether the vendor has an IMC ladder. Zhaoxin/VIA has none: its hosts get no IMC mode (passthrough only),
// although libvirt now has YongFeng models (a Zhaoxin ladder is a later decision, README decision 6).
const VENDOR_NAMES = { 'Zhaoxin CentaurHauls': 'Zhaoxin' };
const VENDOR_HAS_LADDER = { Intel: true, AMD: true, Hygon: true, Zhaoxin: false };
// CPUID vendor strings libvirt does not list: Zhaoxin's newer "  Shanghai  ".
const EXTRA_VENDOR_STRINGS = [{ name: 'Zhaoxin', cpuidVendor: '  Shanghai  ' }];

// Features a ladder may lose for good (absent from the ladder's newest model). Anything else missing from
// an intermediate libvirt file is treated as an omission and carried upward. A difference between this
// expectation and the data stops the generator.
const EXPECTED_LINEAGE_DROPS = {
  intel: [],
  amd: ['fma4', 'tbm', 'xop'],
  hygon: [],
  // Denverton's mpx (gone from every later Intel core) and Snowridge's core-capability (libvirt's
  // Snowridge-v4 drops it too; no later E-core model has it).
  'intel-ecore': ['core-capability', 'mpx'],
};

// Restricted Transactional Memory / Hardware Lock Elision: the only difference between a -noTSX mode and
// its sibling (checked against libvirt's -noTSX files below).
const TSX_FEATURES = ['hle', 'rtm'];

// README caveat 4: KVM/QEMU give a guest these bits whatever the host CPUID says.
const HYPERVISOR_SUPPLIED = ['arat', 'arch-capabilities', 'hypervisor', 'tsc-deadline', 'tsc_adjust', 'x2apic'];

// README caveat 1: bits QEMU's model of that name enables beyond libvirt's file (libvirt spellings).
const QEMU_EXTRAS = {
  Conroe: ['vme'],
  Penryn: ['vme'],
  Nehalem: ['vme'],
  Westmere: ['vme', 'pclmuldq', 'arat'],
  SandyBridge: ['vme', 'xsaveopt', 'arat'],
  IvyBridge: ['xsaveopt', 'arat'],
  Haswell: ['vme', 'f16c', 'rdrand', 'abm', 'xsaveopt', 'arat'],
  'Haswell-noTSX': ['vme', 'f16c', 'rdrand', 'abm', 'xsaveopt', 'arat'],
  Broadwell: ['vme', 'f16c', 'rdrand', 'abm', 'xsaveopt', 'arat'],
  'Broadwell-noTSX': ['vme', 'f16c', 'rdrand', 'abm', 'xsaveopt', 'arat'],
};

// Bits libvirt's file has that QEMU's model of that name does NOT enable (found by the guest CPU survey,
// apps/agent/src/drivers/qemu/guest-cpu-baselines.int.spec.ts; QEMU 7.2 query-cpu-model-expansion agrees):
// the -cpu string adds them, so the guest sees the mode.
const QEMU_LACKS = {
  Opteron_G2: ['rdtscp'],
};

// Linux /proc/cpuinfo spellings that differ from libvirt's (reference README). null = not printed.
const LINUX_NAMES = {
  pclmuldq: 'pclmulqdq', 'sse4.1': 'sse4_1', 'sse4.2': 'sse4_2', 'tsc-deadline': 'tsc_deadline_timer',
  ds: 'dts', cr8legacy: 'cr8_legacy', 'sha-ni': 'sha_ni', cmt: 'cqm', 'md-clear': 'md_clear',
  'arch-capabilities': 'arch_capabilities',
  avx512vnni: 'avx512_vnni', avx512vbmi2: 'avx512_vbmi2', avx512bitalg: 'avx512_bitalg',
  'avx512-vpopcntdq': 'avx512_vpopcntdq', 'avx512-bf16': 'avx512_bf16', 'avx512-fp16': 'avx512_fp16',
  'avx-vnni': 'avx_vnni', 'amx-tile': 'amx_tile', 'amx-int8': 'amx_int8', 'amx-bf16': 'amx_bf16',
  'intel-pt': 'intel_pt', 'bus-lock-detect': 'bus_lock_detect', 'arch-lbr': 'arch_lbr', 'tsx-ldtrk': 'tsxldtrk',
  'nrip-save': 'nrip_save', 'svm-lock': 'svm_lock', 'tsc-scale': 'tsc_scale', 'vmcb-clean': 'vmcb_clean',
  'pause-filter': 'pausefilter', 'v-vmsave-vmload': 'v_vmsave_vmload',
  // not printed (Linux prints synthetic ibrs/ibpb/stibp/ssbd instead; invtsc shows as constant_tsc nonstop_tsc)
  osxsave: null, 'spec-ctrl': null, stibp: null, 'amd-ssbd': null, 'amd-stibp': null, ibpb: null, ibrs: null,
  invtsc: null,
};
// Names the reference README's Merom..IvyBridge table shows as identical in libvirt and Linux.
const LINUX_SAME_IN_REFERENCE = [
  'pni', 'ssse3', 'cx16', 'x2apic', 'popcnt', 'aes', 'xsave', 'avx', 'f16c', 'rdrand', 'fpu', 'vme', 'de', 'pse',
  'tsc', 'msr', 'pae', 'mce', 'cx8', 'apic', 'sep', 'mtrr', 'pge', 'mca', 'cmov', 'pat', 'pse36', 'clflush', 'mmx',
  'fxsr', 'sse', 'sse2', 'fsgsbase', 'smep', 'erms', 'lahf_lm', 'syscall', 'nx', 'rdtscp', 'lm',
];
// Not in the reference; from Linux cpufeatures.h (X86_FEATURE_AUTOIBRS, word 20 bit 8 = 0x80000021:EAX[8]).
// Marked 'derived' like the mechanical spellings: unverified against this reference set.
const LINUX_NAMES_DERIVED = { 'auto-ibrs': 'autoibrs' };

// Linux's synthetic speculation flags and the CPUID bit each stands for, per vendor. parseCpuinfo applies
// these before name normalization (the same words are also libvirt names of other bits).
const CPUINFO_SYNTHETIC = {
  // Older kernels also print VMX capabilities on the flags line; Intel's `vnmi` there is not the SVM bit.
  Intel: { ibrs: ['spec-ctrl'], ibpb: ['spec-ctrl'], stibp: ['stibp'], ssbd: ['ssbd'], vnmi: [] },
  AMD: { ibrs: ['ibrs'], ibpb: ['ibpb'], stibp: ['amd-stibp'], ssbd: ['amd-ssbd'] },
  Hygon: { ibrs: ['ibrs'], ibpb: ['ibpb'], stibp: ['amd-stibp'], ssbd: ['amd-ssbd'] },
  Zhaoxin: { ibrs: ['spec-ctrl'], ibpb: ['spec-ctrl'], stibp: ['stibp'], ssbd: ['ssbd'], vnmi: [] },
};

// psABI ladder: QEMU has no x86-64-vN model in this release, so the level is presented on kvm64.
const PSABI_QEMU_MODEL = 'kvm64';
// The psABI's OSXSAVE is set by the guest OS and Linux never prints it; XSAVE (CPUID.1:ECX[26]) is the
// checkable hardware bit (same convention as the reference README's psABI column).
const PSABI_SUBSTITUTE = { osxsave: 'xsave' };

// ---------------------------------------------------------------------------------------------------------
function parseArgs(argv) {
  let dir = resolve(repoRoot, 'libs/cpu-models/data/cpu-map');
  let out = resolve(repoRoot, 'libs/cpu-models/src/catalog.json');
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') out = resolve(argv[++i]);
    else dir = resolve(argv[i]);
  }
  return { dir, out };
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '',
  isArray: (name) => ['feature', 'alias', 'signature', 'model', 'vendor', 'external_alias'].includes(name),
});
const readXml = (dir, file) => parser.parse(readFileSync(join(dir, file), 'utf8'));
const sorted = (xs) => [...new Set(xs)].sort();
const hex32 = (n) => '0x' + (n >>> 0).toString(16).padStart(8, '0');
const fail = (msg) => {
  throw new Error(`generate-cpu-catalog: ${msg}`);
};

function loadVendors(dir) {
  const vendors = readXml(dir, 'x86_vendors.xml').cpus.vendor.map((v) => ({ name: VENDOR_NAMES[v.name] ?? v.name, cpuidVendor: v.string }));
  for (const v of EXTRA_VENDOR_STRINGS) {
    if (vendors.some((l) => l.cpuidVendor === v.cpuidVendor)) fail(`vendor string "${v.cpuidVendor}" is now in x86_vendors.xml; check its name`);
    vendors.push(v);
  }
  for (const v of vendors) {
    if (!(v.name in VENDOR_HAS_LADDER)) fail(`vendor ${v.name} (${v.cpuidVendor}) is new in x86_vendors.xml; decide its ladder`);
    v.ladder = VENDOR_HAS_LADDER[v.name];
  }
  return vendors;
}

function loadFeatures(dir) {
  const psabiLinux = new Map(); // libvirt name -> Linux flag, from x86-64-levels.json
  for (const l of JSON.parse(readFileSync(join(dir, 'x86-64-levels.json'), 'utf8')).levels) {
    for (const f of l.features) if (f.libvirt_feature && f.linux_cpuinfo_flag) psabiLinux.set(f.libvirt_feature, f.linux_cpuinfo_flag);
  }
  const raw = readXml(dir, 'x86_features.xml').cpus.feature;
  const libcpuinfo = new Map(); // libvirt name -> libcpuinfo canonical
  for (const a of readXml(dir, 'libcpuinfo_aliases.xml').external_aliases.external_alias) {
    libcpuinfo.set(String(a.name), String(a.canonical));
  }
  const features = raw.map((f) => {
    const name = String(f.name);
    const aliases = (f.alias ?? []).map((a) => ({ name: String(a.name), source: a.source }));
    const qemuAliases = aliases.filter((a) => a.source === 'qemu').map((a) => a.name);
    const linuxAliases = aliases.filter((a) => a.source === 'linux').map((a) => a.name);
    const out = { name, msr: false };
    if (f.cpuid) {
      const c = f.cpuid;
      const regs = ['eax', 'ebx', 'ecx', 'edx'].filter((r) => c[r] !== undefined);
      if (regs.length !== 1) fail(`feature ${name}: expected one register mask`);
      const mask = parseInt(c[regs[0]], 16);
      const bit = Math.log2(mask);
      if (!Number.isInteger(bit)) fail(`feature ${name}: mask ${c[regs[0]]} is not a single bit`);
      out.leaf = hex32(parseInt(c.eax_in, 16));
      out.subleaf = c.ecx_in === undefined ? 0 : parseInt(c.ecx_in, 16);
      out.subleafSignificant = c.ecx_in !== undefined;
      out.register = regs[0].toUpperCase();
      out.bit = bit;
    } else if (f.msr) {
      const m = f.msr;
      const eax = parseInt(m.eax, 16);
      const edx = parseInt(m.edx, 16);
      const [word, mask] = eax !== 0 ? [0, eax] : [32, edx];
      const bit = Math.log2(mask >>> 0);
      if (!Number.isInteger(bit) || (eax !== 0 && edx !== 0)) fail(`feature ${name}: MSR mask is not a single bit`);
      out.msr = true;
      out.msrIndex = hex32(parseInt(m.index, 16));
      out.bit = word + bit;
    } else fail(`feature ${name}: neither cpuid nor msr`);
    if (f.migratable === 'no') out.migratable = false;

    // QEMU spellings: libvirt's own name plus its qemu aliases. The name used in -cpu strings is libvirt's,
    // except where libvirt spells it differently from QEMU (pclmuldq) or uses '_' where QEMU uses '-'.
    const qemuNames = sorted([name, ...qemuAliases]);
    let qemuName = name;
    if (libcpuinfo.has(name) && qemuAliases.includes(libcpuinfo.get(name)) && !name.includes('.')) {
      qemuName = libcpuinfo.get(name);
    } else if (name.includes('_')) {
      qemuName = qemuAliases.find((a) => a === name.replace(/_/g, '-')) ?? name;
    }
    out.qemuName = qemuName;
    out.qemuNames = qemuNames;

    // Linux spelling.
    if (name.startsWith('vmx-') || out.msr) {
      out.linuxName = null; // MSR bits are never on the flags line (VMX ones go to "vmx flags", other names)
      out.linuxNameSource = 'not-printed';
    } else if (Object.prototype.hasOwnProperty.call(LINUX_NAMES, name)) {
      out.linuxName = LINUX_NAMES[name];
      out.linuxNameSource = out.linuxName === null ? 'not-printed' : 'reference';
    } else if (LINUX_SAME_IN_REFERENCE.includes(name) || psabiLinux.get(name) === name) {
      out.linuxName = name;
      out.linuxNameSource = 'reference';
    } else if (LINUX_NAMES_DERIVED[name]) {
      out.linuxName = LINUX_NAMES_DERIVED[name];
      out.linuxNameSource = 'derived';
    } else if (linuxAliases.length > 0) {
      out.linuxName = linuxAliases[0];
      out.linuxNameSource = 'reference';
    } else {
      out.linuxName = name.replace(/[-.]/g, '_');
      out.linuxNameSource = 'derived';
    }
    out.aliases = sorted(aliases.map((a) => a.name));
    return out;
  });
  return features;
}

function loadModels(dir) {
  const byName = new Map();
  for (const file of readdirSync(dir).filter((f) => /^x86_.*\.xml$/.test(f))) {
    if (file === 'x86_features.xml' || file === 'x86_vendors.xml') continue;
    for (const m of readXml(dir, file).cpus.model ?? []) byName.set(String(m.name), m);
  }
  const resolved = new Map();
  const resolveModel = (name, seen = []) => {
    if (resolved.has(name)) return resolved.get(name);
    if (seen.includes(name)) fail(`model ancestry cycle: ${[...seen, name].join(' -> ')}`);
    const m = byName.get(name);
    if (!m) fail(`model ${name} not found`);
    let features = new Set();
    let vendor = null;
    let signatures = [];
    const removed = new Set();
    const added = new Set();
    for (const anc of m.model ?? []) {
      // README: inherit vendor, signatures and feature data minus the ancestor's removed features.
      const a = resolveModel(String(anc.name), [...seen, name]);
      features = new Set(a.features);
      vendor = a.vendor;
      signatures = a.signatures;
      for (const r of a.removed) removed.add(r);
    }
    if (m.vendor) vendor = m.vendor[0].name;
    if (m.signature) {
      signatures = m.signature.map((s) => ({ family: Number(s.family), model: Number(s.model) }));
    }
    for (const f of m.feature ?? []) {
      const n = String(f.name);
      if (f.removed === 'yes') removed.add(n);
      else if (f.added === 'yes') added.add(n); // tolerated by libvirt, not part of the model
      else features.add(n);
    }
    for (const r of removed) features.delete(r);
    const r = { name, vendor, signatures, features, removed, added };
    resolved.set(name, r);
    return r;
  };
  return { resolveModel, names: [...byName.keys()] };
}

// ---------------------------------------------------------------------------------------------------------
function build(dir) {
  const vendors = loadVendors(dir);
  const features = loadFeatures(dir);
  const featureByName = new Map(features.map((f) => [f.name, f]));
  const isCpuid = (n) => {
    const f = featureByName.get(n);
    if (!f) fail(`unknown feature ${n}`);
    return !f.msr;
  };
  const { resolveModel } = loadModels(dir);
  for (const n of [...HYPERVISOR_SUPPLIED, ...TSX_FEATURES]) isCpuid(n);

  const baselines = [];
  const qemuCpu = (model, presented, removed, want) => {
    const plus = [...want].filter((f) => !presented.has(f));
    const minus = [...new Set([...presented, ...removed])].filter((f) => !want.has(f) && isCpuid(f));
    const q = (n) => featureByName.get(n).qemuName;
    const adj = [...plus.map((f) => `+${q(f)}`).sort(), ...minus.map((f) => `-${q(f)}`).sort()];
    return [model, ...adj].join(',');
  };

  const buildLadder = (ladder, vendor, defs) => {
    const models = defs.map((d) => resolveModel(d.libvirt));
    for (const m of models) if (m.vendor !== vendor) fail(`${m.name}: vendor ${m.vendor}, expected ${vendor}`);
    // A generation's own features: libvirt's file plus what QEMU's model of the same name also enables
    // (README caveat 1). A guest already started with `-cpu Westmere` expects PCLMULQDQ, so the Westmere
    // mode must present it too.
    const libvirtOf = (m) => new Set([...m.features].filter(isCpuid));
    const cpuidOf = (m) => new Set([...libvirtOf(m), ...(QEMU_EXTRAS[m.name] ?? [])]);
    const top = cpuidOf(models[models.length - 1]);
    // Cumulative rule: mode(i) = (union of the generations 0..i) ∩ (the newest generation).
    const seen = new Set();
    for (const m of models) for (const f of cpuidOf(m)) seen.add(f);
    const drops = sorted([...seen].filter((f) => !top.has(f)));
    if (JSON.stringify(drops) !== JSON.stringify(EXPECTED_LINEAGE_DROPS[ladder])) {
      fail(`${ladder} ladder: lineage drops are [${drops}], expected [${EXPECTED_LINEAGE_DROPS[ladder]}]; decide and update`);
    }
    const acc = new Set();
    defs.forEach((d, i) => {
      const m = models[i];
      const own = cpuidOf(m);
      for (const f of own) if (top.has(f)) acc.add(f);
      const lv = libvirtOf(m);
      const feats = new Set(acc);
      const msrFeatures = sorted([...m.features].filter((f) => !isCpuid(f) && !f.startsWith('vmx-')));
      const hasTsx = TSX_FEATURES.every((t) => feats.has(t));
      const common = {
        kind: 'imc', ladder, vendor, order: i + 1,
        signature: m.signatures[0] ?? null,
        simulatedModelName: d.modelName,
      };
      const presented = new Set([...m.features, ...(QEMU_EXTRAS[m.name] ?? [])].filter((f) => isCpuid(f) && !(QEMU_LACKS[m.name] ?? []).includes(f)));
      baselines.push({
        ...common,
        name: d.name,
        aliases: sorted(d.aliases ?? []),
        tsx: d.noTsx ? true : hasTsx ? true : null,
        libvirtModel: m.name,
        qemuModel: m.name,
        qemuCpu: qemuCpu(m.name, presented, m.removed, feats),
        features: sorted(feats),
        msrFeatures,
        qemuExtras: sorted([...feats].filter((f) => !lv.has(f) && own.has(f))),
        carriedUp: sorted([...feats].filter((f) => !own.has(f))),
        excluded: sorted([...own].filter((f) => !feats.has(f))),
        libvirtRemoved: sorted(m.removed),
      });
      if (d.noTsx) {
        const nm = resolveModel(d.noTsx.libvirt);
        const nOwn = cpuidOf(nm);
        const nLv = libvirtOf(nm);
        const nFeats = new Set([...feats].filter((f) => !TSX_FEATURES.includes(f)));
        // libvirt's -noTSX file must be the TSX model without hle/rtm (an -IBRS one may add spec-ctrl). A
        // derived -noTSX mode (no libvirt file: the TSX model itself, presented with -hle,-rtm) needs a TSX model.
        const derived = d.noTsx.libvirt === d.libvirt;
        if (derived && !TSX_FEATURES.every((t) => own.has(t))) fail(`${d.noTsx.name}: ${m.name} has no TSX to remove`);
        const extra = [...nOwn].filter((f) => !nFeats.has(f) && f !== 'spec-ctrl' && !(derived && TSX_FEATURES.includes(f)));
        const lacking = [...own].filter((f) => !nOwn.has(f) && !TSX_FEATURES.includes(f));
        if (extra.length || lacking.length) fail(`${nm.name} is not ${m.name} minus TSX: +[${extra}] -[${lacking}]`);
        const nPresented = new Set([...nm.features, ...(QEMU_EXTRAS[nm.name] ?? [])].filter((f) => isCpuid(f) && !(QEMU_LACKS[nm.name] ?? []).includes(f)));
        baselines.push({
          ...common,
          name: d.noTsx.name,
          aliases: sorted(d.noTsx.aliases ?? []),
          tsx: false,
          libvirtModel: nm.name,
          qemuModel: nm.name,
          qemuCpu: qemuCpu(nm.name, nPresented, nm.removed, nFeats),
          features: sorted(nFeats),
          msrFeatures: sorted([...nm.features].filter((f) => !isCpuid(f) && !f.startsWith('vmx-'))),
          qemuExtras: sorted([...nFeats].filter((f) => !nLv.has(f) && nOwn.has(f))),
          carriedUp: sorted([...nFeats].filter((f) => !nOwn.has(f))),
          excluded: sorted([...nOwn].filter((f) => !nFeats.has(f))),
          libvirtRemoved: sorted(nm.removed),
        });
      }
    });
  };
  buildLadder('intel', 'Intel', INTEL);
  buildLadder('amd', 'AMD', AMD);
  buildLadder('intel-ecore', 'Intel', INTEL_ECORE);
  buildLadder('hygon', 'Hygon', HYGON);

  // psABI ladder
  const levels = JSON.parse(readFileSync(join(dir, 'x86-64-levels.json'), 'utf8'));
  const kvm64 = resolveModel(PSABI_QEMU_MODEL);
  const levelSets = levels.levels.map((l) =>
    l.features.filter((f) => f.libvirt_feature).map((f) => PSABI_SUBSTITUTE[f.libvirt_feature] ?? f.libvirt_feature),
  );
  for (const set of levelSets) for (const f of set) isCpuid(f);
  const allAbi = new Set(levelSets.flat());
  const accAbi = new Set();
  levels.levels.forEach((l, i) => {
    for (const f of levelSets[i]) accAbi.add(f);
    const feats = new Set(accAbi);
    // kvm64's platform bits (apic, pae, ...) are presented too; its ABI bits above the level are hidden.
    const presentedExtra = [...kvm64.features].filter((f) => !allAbi.has(f) && isCpuid(f));
    const want = new Set([...feats, ...presentedExtra]);
    baselines.push({
      kind: 'psabi', ladder: 'psabi', vendor: null, order: i + 1, signature: null,
      simulatedModelName: `Generic ${l.name} CPU`,
      name: l.name,
      aliases: sorted(i === 0 ? ['x86-64', 'baseline'] : []),
      tsx: null,
      libvirtModel: null,
      qemuModel: PSABI_QEMU_MODEL,
      qemuCpu: qemuCpu(PSABI_QEMU_MODEL, new Set([...kvm64.features].filter(isCpuid)), kvm64.removed, want),
      features: sorted(feats),
      msrFeatures: [],
      presentedExtra: sorted(presentedExtra),
      qemuExtras: [],
      carriedUp: [],
      excluded: [],
      libvirtRemoved: [],
    });
  });

  // Sanity: every ladder is cumulative along its order (TSX branch: noTSX(g) ⊂ g, noTSX chain cumulative).
  for (const a of baselines) for (const b of baselines) {
    if (a.ladder !== b.ladder || a === b) continue;
    const below = a.order < b.order ? !(a.tsx === true && b.tsx === false) : a.order === b.order && a.tsx === false && b.tsx === true;
    if (below && !a.features.every((f) => b.features.includes(f))) fail(`${a.name} is not a subset of ${b.name}`);
  }

  // Every spelling (libvirt name, QEMU alias, Linux name) must name exactly one feature.
  const claim = new Map();
  for (const f of features) {
    for (const s of new Set([f.name, ...f.qemuNames, ...f.aliases, ...(f.linuxName ? [f.linuxName] : [])])) {
      if (claim.has(s) && claim.get(s) !== f.name) fail(`spelling ${s} names both ${claim.get(s)} and ${f.name}`);
      claim.set(s, f.name);
    }
  }

  for (const f of features) delete f.aliases;
  return {
    schemaVersion: 1,
    source: SOURCE,
    policy: {
      tsxFeatures: sorted(TSX_FEATURES),
      hypervisorSupplied: sorted(HYPERVISOR_SUPPLIED),
      cpuinfoSynthetic: CPUINFO_SYNTHETIC,
      expectedLineageDrops: EXPECTED_LINEAGE_DROPS,
      psabiSubstitutes: PSABI_SUBSTITUTE,
    },
    vendors: [...vendors].sort((a, b) => a.name.localeCompare(b.name) || (a.cpuidVendor < b.cpuidVendor ? -1 : 1)),
    features: [...features].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    baselines: baselines.sort((a, b) => (a.ladder < b.ladder ? -1 : a.ladder > b.ladder ? 1 : 0) || a.order - b.order || (a.tsx === b.tsx ? 0 : a.tsx === false ? -1 : 1)),
  };
}

// Deterministic JSON: object keys sorted; arrays of primitives on one line (keeps diffs readable).
function stringify(value, indent = '') {
  if (Array.isArray(value)) {
    if (value.every((v) => v === null || typeof v !== 'object')) return `[${value.map((v) => JSON.stringify(v)).join(', ')}]`;
    const inner = indent + '  ';
    return `[\n${value.map((v) => inner + stringify(v, inner)).join(',\n')}\n${indent}]`;
  }
  if (value && typeof value === 'object') {
    const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort();
    if (keys.length === 0) return '{}';
    const inner = indent + '  ';
    return `{\n${keys.map((k) => `${inner}${JSON.stringify(k)}: ${stringify(value[k], inner)}`).join(',\n')}\n${indent}}`;
  }
  return JSON.stringify(value);
}

const { dir, out } = parseArgs(process.argv.slice(2));
if (!existsSync(join(dir, 'x86_features.xml'))) {
  console.error(`generate-cpu-catalog: no libvirt cpu map at ${dir}`);
  process.exit(2);
}
const catalog = build(dir);
writeFileSync(out, stringify(catalog) + '\n');
console.log(
  `generate-cpu-catalog: wrote ${out}: ${catalog.features.length} features, ${catalog.baselines.length} baselines`,
);
